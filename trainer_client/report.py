"""Did the run learn? What `grpo-train` prints at its end and `training.png` shows.

- The training reward of the first quarter of steps against the last quarter (each step's
  `reward` from metrics.jsonl, itself over every group sampled in the step), with a
  bootstrap CI of the difference (`stats.bootstrap_mean_difference`: the steps of each
  quarter resampled apart). Training problems differ from step to step, so this is noisy;
  the held-out comparison is the one that says whether the model got better.
- Held-out greedy pass@1 before training and after it, on problems never trained on, paired
  by problem (`compare.compare`: paired bootstrap CI and McNemar's exact test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compare import Comparison, compare, read_outcomes
from .stats import Interval, bootstrap_mean_difference


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
class LearningReport:
    reward: QuarterRewards | None
    """None with fewer than 2 steps that have a reward."""
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
    steps = [(r["step"], r["reward"]) for r in records if r.get("step", 0) > 0 and r.get("reward") is not None]
    if len(steps) < 2:
        return None
    size = max(1, len(steps) // 4)
    first, last = steps[:size], steps[-size:]
    a, b = [v for _, v in first], [v for _, v in last]
    return QuarterRewards(
        steps=size,
        first_steps=(first[0][0], first[-1][0]),
        last_steps=(last[0][0], last[-1][0]),
        first=sum(a) / size,
        last=sum(b) / size,
        difference=bootstrap_mean_difference(a, b, resamples=resamples, seed=seed),
    )


def learning_report(output_dir: Path, last_step: int, *, resamples: int = 10_000, seed: int = 0) -> LearningReport:
    """From a run's metrics.jsonl and its held-out evaluation files of step 0 and `last_step`."""
    from .logs import read_metrics

    metrics = output_dir / "metrics.jsonl"
    records = [r for r in read_metrics(metrics) if r["step"] <= last_step] if metrics.exists() else []
    reward = quarter_rewards(records, resamples=resamples, seed=seed)
    before, after = (output_dir / "eval" / f"step-{step:06d}.jsonl" for step in (0, last_step))
    heldout = None
    if last_step > 0 and before.exists() and after.exists():
        try:
            heldout = compare(read_outcomes(before), read_outcomes(after), resamples=resamples, seed=seed)
        except ValueError:  # nothing scored in both (every reward masked): nothing to compare
            heldout = None
    return LearningReport(reward=reward, heldout=heldout, heldout_steps=(0, last_step))
