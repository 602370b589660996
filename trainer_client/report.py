"""Did the run learn? What `grpo-train` prints at its end and `training.png` shows.

- The training reward of the first quarter of steps against the last quarter (each step's
  `reward` from metrics.jsonl, itself over every group sampled in the step), with a
  bootstrap CI of the difference (`stats.bootstrap_mean_difference`: the steps of each
  quarter resampled apart). Training problems differ from step to step, so this is noisy;
  the held-out comparison is the one that says whether the model got better.
- The same, paired by problem: each problem sampled in both quarters (the `groups` of
  metrics.jsonl) with its mean group reward in each, and a paired bootstrap CI over those
  problems (`stats.paired_bootstrap`). Problems differ in difficulty far more than a model
  changes in a short run; pairing takes that difference out, so a small training set seen
  several times (`train_limit`) shows whether the model got better on it.
- Held-out greedy pass@1 before training and after it, on problems never trained on, paired
  by problem (`compare.compare`: paired bootstrap CI and McNemar's exact test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compare import Comparison, compare, read_outcomes
from .stats import Interval, bootstrap_mean_difference, paired_bootstrap


@dataclass(frozen=True)
class QuarterRewards:
    steps: int
    """Steps in each quarter."""
    first_steps: tuple[int, int]
    last_steps: tuple[int, int]
    first: float
    last: float
    difference: Interval


@dataclass(frozen=True)
class PairedRewards:
    problems: int
    """Problems sampled in both the first and the last quarter."""
    first: float
    last: float
    difference: Interval


@dataclass(frozen=True)
class LearningReport:
    reward: QuarterRewards | None
    """None with fewer than 2 steps that have a reward."""
    paired: PairedRewards | None
    """None when no problem was sampled (with a scored completion) in both quarters."""
    heldout: Comparison | None
    """None without both evaluations (before and after)."""
    heldout_steps: tuple[int, int] = (0, 0)

    def lines(self) -> list[str]:
        out = []
        if self.reward is not None:
            r, ci = self.reward, self.reward.difference
            out.append(
                f"training reward, steps {r.first_steps[0]}-{r.first_steps[1]} vs {r.last_steps[0]}-{r.last_steps[1]}: "
                f"{r.first:.3f} -> {r.last:.3f}, difference {ci.estimate:+.3f} ({ci.confidence:.0%} CI [{ci.low:+.3f}, {ci.high:+.3f}], "
                "bootstrap over steps)"
            )
        if self.paired is not None:
            p, ci = self.paired, self.paired.difference
            out.append(
                f"training reward on the {p.problems} problems sampled in both quarters: {p.first:.3f} -> {p.last:.3f}, "
                f"difference {ci.estimate:+.3f} ({ci.confidence:.0%} CI [{ci.low:+.3f}, {ci.high:+.3f}], paired bootstrap over problems)"
            )
        if self.heldout is not None:
            h, ci = self.heldout, self.heldout.difference
            test = (
                ""
                if h.mcnemar_p is None
                else f"; McNemar p = {h.mcnemar_p:.3g} ({h.passed_only_before} lost, {h.passed_only_after} gained)"
            )
            out.append(
                f"held-out greedy pass@1, step {self.heldout_steps[0]} vs {self.heldout_steps[1]} ({h.paired} problems): "
                f"{h.before_pass_at_1:.3f} -> {h.after_pass_at_1:.3f}, difference {ci.estimate:+.3f} "
                f"({ci.confidence:.0%} CI [{ci.low:+.3f}, {ci.high:+.3f}], paired bootstrap{test})"
            )
        return out


def quarter_rewards(records: Sequence[dict[str, Any]], *, resamples: int = 10_000, seed: int = 0) -> QuarterRewards | None:
    """First against last quarter of the steps with a reward (a quarter is at least one step)."""
    quarters = _quarters(records)
    if quarters is None:
        return None
    first, last = quarters
    size = len(first)
    a, b = [r["reward"] for r in first], [r["reward"] for r in last]
    return QuarterRewards(
        steps=size,
        first_steps=(first[0]["step"], first[-1]["step"]),
        last_steps=(last[0]["step"], last[-1]["step"]),
        first=sum(a) / size,
        last=sum(b) / size,
        difference=bootstrap_mean_difference(a, b, resamples=resamples, seed=seed),
    )


def _quarters(records: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    steps = [r for r in records if r.get("step", 0) > 0 and r.get("reward") is not None]
    if len(steps) < 2:
        return None
    size = max(1, len(steps) // 4)
    return steps[:size], steps[-size:]


def _problem_means(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    rewards: dict[str, list[float]] = {}
    for record in records:
        for group in record.get("groups") or []:
            if group.get("reward") is not None:
                rewards.setdefault(group["problem"], []).append(group["reward"])
    return {problem: sum(values) / len(values) for problem, values in rewards.items()}


def paired_quarter_rewards(records: Sequence[dict[str, Any]], *, resamples: int = 10_000, seed: int = 0) -> PairedRewards | None:
    """First against last quarter (the steps of quarter_rewards), on the problems sampled in
    both: each problem's mean group reward in each quarter, paired."""
    quarters = _quarters(records)
    if quarters is None:
        return None
    first, last = (_problem_means(q) for q in quarters)
    common = sorted(first.keys() & last.keys())
    if not common:
        return None
    before, after = [first[p] for p in common], [last[p] for p in common]
    return PairedRewards(
        problems=len(common),
        first=sum(before) / len(common),
        last=sum(after) / len(common),
        difference=paired_bootstrap(before, after, resamples=resamples, seed=seed),
    )


def learning_report(output_dir: Path, last_step: int, *, resamples: int = 10_000, seed: int = 0) -> LearningReport:
    """From a run's metrics.jsonl and its held-out evaluation files of step 0 and `last_step`."""
    from .logs import read_metrics

    metrics = output_dir / "metrics.jsonl"
    records = [r for r in read_metrics(metrics) if r["step"] <= last_step] if metrics.exists() else []
    reward = quarter_rewards(records, resamples=resamples, seed=seed)
    paired = paired_quarter_rewards(records, resamples=resamples, seed=seed)
    before, after = (output_dir / "eval" / f"step-{step:06d}.jsonl" for step in (0, last_step))
    heldout = None
    if last_step > 0 and before.exists() and after.exists():
        try:
            heldout = compare(read_outcomes(before), read_outcomes(after), resamples=resamples, seed=seed)
        except ValueError:  # nothing scored in both (every reward masked): nothing to compare
            heldout = None
    return LearningReport(reward=reward, paired=paired, heldout=heldout, heldout_steps=(0, last_step))
