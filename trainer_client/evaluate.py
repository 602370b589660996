"""Held-out evaluation through the reward server: greedy pass@1, or pass@k from n samples.

With one sample per problem (the default) the completion is greedy. With `samples` = n > 1,
each problem gets n sampled completions and pass@k is Chen et al.'s unbiased estimator
(`stats.pass_at_k`) averaged over problems. A program passes when every test passes
(ALL_OR_NOTHING). Programs the sandbox could not run (`SANDBOX_ERROR`) are left out of n and
reported as `masked`, never counted as failures; a problem with fewer than k scored samples is
left out of pass@k.

Rows (one JSON line per problem in an eval file): `id`, `n` (scored samples), `c` (passing
ones), `masked`, and `samples`, one `{verdict, reward, completion, program}` per sample; n and
c are enough to recompute pass@k (`grpo-eval compare` reads them).
"""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reward_api.types import GroupScore

from .data import TrainProblem
from .rewards import RewardWorker, score_request
from .sampling import Sampler
from .stats import pass_at_k


@dataclass(frozen=True)
class ProblemOutcome:
    id: str
    n: int
    """Scored samples (masked ones left out)."""
    c: int
    """Samples whose program passed every test."""
    masked: int = 0


@dataclass
class EvalResult:
    outcomes: list[ProblemOutcome] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Per problem: id, n, c, masked and the samples (module docstring)."""
    ks: tuple[int, ...] = (1,)
    """The k of pass@k that metrics() reports."""

    @property
    def passed(self) -> int:
        return sum(o.c for o in self.outcomes)

    @property
    def scored(self) -> int:
        return sum(o.n for o in self.outcomes)

    @property
    def masked(self) -> int:
        return sum(o.masked for o in self.outcomes)

    def pass_at(self, k: int) -> float | None:
        """Mean pass@k over the problems with at least k scored samples (None: there are none)."""
        values = [pass_at_k(o.n, o.c, k) for o in self.outcomes if o.n >= k]
        return sum(values) / len(values) if values else None

    @property
    def pass_at_1(self) -> float:
        return self.pass_at(1) or 0.0

    def metrics(self, prefix: str = "eval/") -> dict[str, float | None]:
        out: dict[str, float | None] = {f"{prefix}pass@{k}": self.pass_at(k) for k in self.ks}
        out[f"{prefix}pass@1"] = self.pass_at_1
        out.update({f"{prefix}passed": self.passed, f"{prefix}scored": self.scored, f"{prefix}masked": self.masked})
        return out


def evaluate(
    sampler: Sampler,
    worker: RewardWorker,
    problems: Sequence[TrainProblem],
    *,
    batch_size: int = 16,
    samples: int = 1,
    ks: Sequence[int] = (1,),
    mode: str = "ALL_OR_NOTHING",
    progress: Any = None,
) -> EvalResult:
    """pass@k of the sampler's model on `problems`: one greedy completion each when `samples`
    is 1, else `samples` sampled ones (at the sampler's temperature). Each group is sent to
    the reward server as soon as it is generated; `batch_size` bounds the sequences of one
    generate call (at least one problem's samples). A sample passes when its reward is 1
    (`mode` FRACTION: every test passed)."""
    if samples < 1:
        raise ValueError(f"samples={samples} must be at least 1")
    too_big = [k for k in ks if not 1 <= k <= samples]
    if too_big:
        raise ValueError(f"pass@k for k={too_big} needs at least k samples per problem (samples={samples})")
    order = sorted(range(len(problems)), key=lambda i: len(problems[i].instruction))  # less padding per batch
    per_call = max(1, batch_size // samples)
    pending: list[tuple[int, list[str], list[str], concurrent.futures.Future[GroupScore]]] = []
    for start in range(0, len(order), per_call):
        chunk = order[start : start + per_call]

        def submit(group: int, texts: list[str], chunk: list[int] = chunk) -> None:
            index = chunk[group]
            request, codes = score_request(problems[index], texts, mode=mode, request_id=f"eval-{index}")
            pending.append((index, texts, codes, worker.submit(request)))

        sampler.sample(
            [problems[i].instruction for i in chunk],
            samples,
            greedy=samples == 1,
            on_group_done=submit,
            response_prefixes=[problems[i].response_prefix for i in chunk],
        )
        if progress is not None:
            progress.update(len(chunk))
    result = EvalResult(ks=tuple(sorted(set(ks) | {1})))
    for index, texts, codes, future in sorted(pending, key=lambda p: p[0]):
        scores = future.result().results
        rewards = [s.reward for s in scores]
        result.verdicts.update(s.verdict.value for s in scores)
        outcome = ProblemOutcome(
            problems[index].id,
            n=sum(r is not None for r in rewards),
            c=sum(r == 1.0 for r in rewards),
            masked=sum(r is None for r in rewards),
        )
        result.outcomes.append(outcome)
        result.rows.append(
            {
                "id": outcome.id,
                "n": outcome.n,
                "c": outcome.c,
                "masked": outcome.masked,
                "samples": [
                    {"verdict": s.verdict.value, "reward": s.reward, "completion": text, "program": code}
                    for s, text, code in zip(scores, texts, codes)
                ],
            }
        )
    return result
