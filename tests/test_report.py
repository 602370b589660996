"""The end-of-run report: first vs last quarter's training reward and held-out pass@1 before
vs after, from a run folder written by hand; and training.png drawn with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainer_client.logs import plot_run
from trainer_client.report import learning_report, paired_quarter_rewards, quarter_rewards


def write_run(out: Path, rewards: list[float | None], before: list[int], after: list[int]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    records = [{"step": 0, "eval/pass@1": sum(before) / len(before)}]
    records += [{"step": i + 1, "reward": r} for i, r in enumerate(rewards)]
    records[-1]["eval/pass@1"] = sum(after) / len(after)
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "eval").mkdir(exist_ok=True)
    for step, passed in ((0, before), (len(rewards), after)):
        rows = [{"id": f"p{i}", "n": 1, "c": c, "masked": 0, "samples": []} for i, c in enumerate(passed)]
        (out / "eval" / f"step-{step:06d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_quarters_of_the_training_reward() -> None:
    records = [{"step": 0}] + [{"step": s, "reward": r} for s, r in enumerate([0.0, 0.1, 0.2, 0.2, 0.3, None, 0.5, 0.5, 0.6], start=1)]
    q = quarter_rewards(records, resamples=2000)
    assert q is not None and q.steps == 2  # 8 steps with a reward (step 6 has none): quarters of 2
    assert (q.first_steps, q.last_steps) == ((1, 2), (8, 9))
    assert (q.first, q.last) == (pytest.approx(0.05), pytest.approx(0.55))
    # first = (0, 0.1), last = (0.5, 0.6): every resampled difference lies in [0.4, 0.6]
    assert q.difference.estimate == pytest.approx(0.5) and 0.4 - 1e-9 <= q.difference.low < q.difference.high <= 0.6 + 1e-9
    assert quarter_rewards([{"step": 1, "reward": 0.5}]) is None  # one step: nothing to compare


def test_learning_report_and_plot(tmp_path: Path) -> None:
    before = [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    after = [1, 1, 1, 0, 1, 1, 1, 0, 0, 0]  # 4 gained, none lost
    write_run(tmp_path, [0.1, 0.1, 0.2, 0.3, 0.3, 0.4, 0.5, 0.5], before, after)
    report = learning_report(tmp_path, 8, resamples=2000)
    assert report.reward is not None and report.reward.first_steps == (1, 2) and report.reward.last_steps == (7, 8)
    assert report.heldout is not None and report.heldout.paired == 10
    assert (report.heldout.before_pass_at_1, report.heldout.after_pass_at_1) == (0.2, 0.6)
    assert (report.heldout.passed_only_before, report.heldout.passed_only_after) == (0, 4)
    assert report.heldout.mcnemar_p == pytest.approx(0.125)  # 2 / 2^4
    lines = report.lines()
    assert lines[0].startswith("training reward, steps 1-2 vs 7-8: 0.100 -> 0.500, difference +0.400 (95% CI [")
    assert lines[1].startswith("held-out greedy pass@1, step 0 vs 8 (10 problems): 0.200 -> 0.600, difference +0.400 (95% CI [")
    assert "McNemar p = 0.125 (0 lost, 4 gained)" in lines[1]
    assert report.heldout.difference.low > 0  # four gains, no loss: the interval excludes 0

    png = plot_run(tmp_path / "metrics.jsonl", tmp_path / "training.png", report)
    assert png is not None and png.stat().st_size > 1000
    # the report asked about a step that was not evaluated: no held-out comparison
    assert learning_report(tmp_path, 5, resamples=100).heldout is None


def test_paired_quarters_compare_each_problem_with_itself() -> None:
    """Paired by problem, each problem's mean group reward in the first quarter against the
    last; a problem sampled in one quarter only, or never scored (all masked), is left out."""

    def step(number: int, groups: list[tuple[str, float | None]]) -> dict[str, Any]:
        scored = [r for _, r in groups if r is not None]
        return {"step": number, "reward": sum(scored) / len(scored), "groups": [{"problem": p, "reward": r, "kept": True} for p, r in groups]}

    records = [
        step(1, [("a", 0.2), ("b", 0.9), ("only-first", 0.0)]),
        step(2, [("a", 0.4), ("b", 0.9), ("masked", None)]),
        step(3, [("c", 0.0)]),
        step(4, [("b", 1.0)]),
        step(5, [("a", 0.5)]),
        step(6, [("x", 0.0)]),
        step(7, [("b", 1.0), ("a", 0.6), ("only-last", 0.0)]),
        step(8, [("a", 0.7), ("masked", None)]),
    ]
    paired = paired_quarter_rewards(records, resamples=2000)
    assert paired is not None and paired.problems == 2  # steps 1-2 against 7-8: a and b
    # a: mean(0.2, 0.4) = 0.3 -> mean(0.6, 0.7) = 0.65; b: 0.9 -> 1.0
    assert (paired.first, paired.last) == (pytest.approx(0.6), pytest.approx(0.825))
    assert paired.difference.estimate == pytest.approx(0.225)
    assert 0.1 - 1e-9 <= paired.difference.low <= paired.difference.high <= 0.35 + 1e-9  # resampled from (0.35, 0.1)
    assert paired_quarter_rewards([{"step": 1, "reward": 0.5}, {"step": 2, "reward": 0.6}]) is None  # no groups logged
