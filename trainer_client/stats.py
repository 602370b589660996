"""The statistics of evaluation and of the training curve, as small pure functions.

- `pass_at_k`: the unbiased estimator of Chen et al., "Evaluating Large Language Models
  Trained on Code" (2021), §2.1: from n samples of which c pass,
  pass@k = 1 - C(n-c, k) / C(n, k), computed as the product 1 - Π_{i=n-c+1..n} (1 - k/i)
  (their Figure 3), which neither overflows nor loses precision for large n.
- `paired_bootstrap`: the percentile bootstrap of the mean of paired differences (Efron &
  Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13): problems are resampled
  with replacement, each keeping its two outcomes, so the CI reflects which problems were drawn.
- `bootstrap_mean_difference`: the same for two independent samples (each resampled apart),
  for the training reward of the first quarter of steps against the last.
- `mcnemar_exact`: McNemar's test on paired binary outcomes, exact form: under the null the
  discordant pairs split as Binomial(b + c, 1/2); two-sided p = min(1, 2·P(X ≤ min(b, c))).

Every resampling is seeded: the same inputs give the same interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples, drawn without replacement from n of which
    c pass, passes."""
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k} with n={n} samples (sample at least k per problem)")
    if n - c < k:  # every draw of k contains a passing sample
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.estimate:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def _percentiles(values: list[float], confidence: float) -> tuple[float, float]:
    """The (1-confidence)/2 and (1+confidence)/2 order statistics of `values` (sorted here)."""
    values.sort()
    tail = (1.0 - confidence) / 2.0
    low = values[min(len(values) - 1, math.floor(tail * len(values)))]
    high = values[max(0, math.ceil((1.0 - tail) * len(values)) - 1)]
    return low, high


def _check(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} must be in (0, 1), e.g. 0.95")
    if resamples < 1:
        raise ValueError(f"resamples={resamples} must be at least 1 (10000 is usual)")


def paired_bootstrap(
    before: Sequence[float], after: Sequence[float], *, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> Interval:
    """CI of mean(after - before) over paired items (one per problem)."""
    if len(before) != len(after):
        raise ValueError(f"paired_bootstrap: {len(before)} values before, {len(after)} after; pair them by problem first")
    if not before:
        raise ValueError("paired_bootstrap: no paired values")
    _check(confidence, resamples)
    diffs = [b - a for a, b in zip(before, after)]
    n = len(diffs)
    rng = random.Random(seed)
    means = [sum(rng.choices(diffs, k=n)) / n for _ in range(resamples)]
    low, high = _percentiles(means, confidence)
    return Interval(sum(diffs) / n, low, high, confidence, resamples, seed)


def bootstrap_mean_difference(
    first: Sequence[float], second: Sequence[float], *, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> Interval:
    """CI of mean(second) - mean(first) for two independent samples."""
    if not first or not second:
        raise ValueError(f"bootstrap_mean_difference: need values on both sides (got {len(first)} and {len(second)})")
    _check(confidence, resamples)
    rng = random.Random(seed)
    a, b = list(first), list(second)

    def resampled_mean(values: list[float]) -> float:
        return sum(rng.choices(values, k=len(values))) / len(values)

    diffs = [resampled_mean(b) - resampled_mean(a) for _ in range(resamples)]
    low, high = _percentiles(diffs, confidence)
    return Interval(sum(b) / len(b) - sum(a) / len(a), low, high, confidence, resamples, seed)


def mcnemar_exact(only_before: int, only_after: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts: problems passed only before
    (b) and only after (c). 1.0 when there are none."""
    if only_before < 0 or only_after < 0:
        raise ValueError(f"mcnemar_exact: counts must be >= 0, got {only_before}, {only_after}")
    n = only_before + only_after
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_before, only_after) + 1))
    return min(1.0, 2 * tail / 2**n)
