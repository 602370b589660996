"""Two evaluation files compared problem by problem: `grpo-eval compare BEFORE.jsonl AFTER.jsonl`.

An evaluation file is what `grpo-eval -o` and the trainer (`OUTPUT_DIR/eval/step-N.jsonl`)
write: one JSON line per problem with `id`, `n` (scored samples) and `c` (passing ones);
files written before n and c existed (one `reward` per line) are read as n = 1 (0 when the
reward is masked), c = 1 when the reward is 1. Problems are paired by id; those in one file
only, or without a scored sample in either, are counted and left out.

Per problem, pass@1 is c/n (0 or 1 with one sample). The difference of the means gets a paired
bootstrap CI (`stats.paired_bootstrap`); with one sample per problem in both files,
McNemar's exact test on the problems that changed (`stats.mcnemar_exact`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reward_api.datasets import read_jsonl_lines

from .evaluate import ProblemOutcome
from .stats import Interval, mcnemar_exact, paired_bootstrap


def read_outcomes(path: Path) -> dict[str, ProblemOutcome]:
    """Per problem id, its outcome in an evaluation file; errors name the file and line."""
    outcomes: dict[str, ProblemOutcome] = {}
    for number, row in read_jsonl_lines(path):
        try:
            if "n" in row:
                outcome = ProblemOutcome(str(row["id"]), int(row["n"]), int(row["c"]), int(row.get("masked", 0)))
            else:
                reward = row["reward"]
                outcome = ProblemOutcome(str(row["id"]), int(reward is not None), int(reward == 1.0), int(reward is None))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not an evaluation row (need id, n, c): {exc!r}") from None
        if not 0 <= outcome.c <= outcome.n:
            raise ValueError(f"{path}:{number}: c={outcome.c} must be between 0 and n={outcome.n}")
        if outcome.id in outcomes:
            raise ValueError(f"{path}:{number}: problem {outcome.id!r} appears twice")
        outcomes[outcome.id] = outcome
    return outcomes


@dataclass(frozen=True)
class Comparison:
    paired: int
    """Problems with a scored sample in both files."""
    only_in_before: int
    only_in_after: int
    unscored: int
    """Problems in both files without a scored sample in one of them (all masked)."""
    before_pass_at_1: float
    after_pass_at_1: float
    difference: Interval
    passed_only_before: int | None
    """Discordant problems (one sample per problem in both files); None otherwise."""
    passed_only_after: int | None
    mcnemar_p: float | None


def compare(
    before: dict[str, ProblemOutcome],
    after: dict[str, ProblemOutcome],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Comparison:
    common = [i for i in before if i in after]
    scored = [i for i in common if before[i].n and after[i].n]
    if not scored:
        raise ValueError(f"no problem is scored in both files ({len(common)} ids in common)")
    a = [before[i].c / before[i].n for i in scored]
    b = [after[i].c / after[i].n for i in scored]
    only_before = only_after = p = None
    if all(before[i].n == 1 and after[i].n == 1 for i in scored):
        only_before = sum(before[i].c > after[i].c for i in scored)
        only_after = sum(after[i].c > before[i].c for i in scored)
        p = mcnemar_exact(only_before, only_after)
    return Comparison(
        paired=len(scored),
        only_in_before=len(before) - len(common),
        only_in_after=len(after) - len(common),
        unscored=len(common) - len(scored),
        before_pass_at_1=sum(a) / len(a),
        after_pass_at_1=sum(b) / len(b),
        difference=paired_bootstrap(a, b, resamples=resamples, seed=seed, confidence=confidence),
        passed_only_before=only_before,
        passed_only_after=only_after,
        mcnemar_p=p,
    )


def format_comparison(result: Comparison, before_name: str, after_name: str) -> str:
    """A readable table of a Comparison."""
    width = max(len(before_name), len(after_name), 8)
    ci = result.difference
    lines = [
        f"{'':<28}{before_name:>{width}}  {after_name:>{width}}",
        f"{'pass@1':<28}{result.before_pass_at_1:>{width}.3f}  {result.after_pass_at_1:>{width}.3f}",
        f"{'problems paired':<28}{result.paired:>{width}}",
    ]
    if result.only_in_before or result.only_in_after:
        lines.append(f"{'problems in one file only':<28}{result.only_in_before:>{width}}  {result.only_in_after:>{width}}")
    if result.unscored:
        lines.append(f"{'left out (all masked)':<28}{result.unscored:>{width}}")
    lines.append(
        f"{'difference (after - before)':<28}{ci.estimate:+.3f}, {ci.confidence:.0%} CI [{ci.low:+.3f}, {ci.high:+.3f}]"
        f" (paired bootstrap, {ci.resamples} resamples, seed {ci.seed})"
    )
    if result.mcnemar_p is None:
        lines.append(f"{'McNemar exact test':<28}skipped: needs one sample per problem in both files")
    else:
        lines.append(
            f"{'McNemar exact test':<28}{result.passed_only_before} passed only before, {result.passed_only_after} only after:"
            f" p = {result.mcnemar_p:.4g}"
        )
    return "\n".join(lines)
