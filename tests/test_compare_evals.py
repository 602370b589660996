"""`grpo-eval compare` on two small evaluation files: pairing by id, pass@1, the paired
bootstrap CI and McNemar's test, as a table and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_client.cli import eval_main
from trainer_client.compare import compare, read_outcomes
from trainer_client.stats import mcnemar_exact


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def single(outcomes: dict[str, int | None]) -> list[dict[str, object]]:
    """Rows of a one-sample evaluation: per id, 1 (passed), 0 (failed) or None (masked)."""
    return [
        {"id": i, "n": int(v is not None), "c": int(v == 1), "masked": int(v is None), "samples": [{"reward": v}]}
        for i, v in outcomes.items()
    ]


def test_compare_two_single_sample_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # p1..p10: 2 passed only before, 6 only after, 1 both, 1 neither; p11 masked after; p12 before only.
    before = {**{f"p{i}": 0 for i in range(1, 11)}, "p11": 1, "p12": 1}
    before.update({"p1": 1, "p2": 1, "p9": 1})
    after = {**{f"p{i}": 0 for i in range(1, 11)}, "p11": None, "p13": 1}
    after.update({f"p{i}": 1 for i in (3, 4, 5, 6, 7, 8, 9)})
    a, b = write(tmp_path / "before.jsonl", single(before)), write(tmp_path / "after.jsonl", single(after))

    assert eval_main(["compare", str(a), str(b), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["paired"], result["unscored"], result["only_in_before"], result["only_in_after"]) == (10, 1, 1, 1)
    assert (result["before_pass_at_1"], result["after_pass_at_1"]) == (pytest.approx(0.3), pytest.approx(0.7))
    assert (result["passed_only_before"], result["passed_only_after"]) == (2, 6)
    assert result["mcnemar_p"] == pytest.approx(2 * (1 + 8 + 28) / 256)  # 0.289
    ci = result["difference"]
    assert ci["estimate"] == pytest.approx(0.4) and ci["resamples"] == 10_000 and ci["low"] < 0.4 < ci["high"]

    assert eval_main(["compare", str(a), str(b)]) == 0
    table = capsys.readouterr().out
    assert "pass@1" in table and "0.300" in table and "0.700" in table
    assert "+0.400, 95% CI [" in table and "2 passed only before, 6 only after: p = 0.289" in table
    assert "problems in one file only" in table and "left out (all masked)" in table


def test_compare_reads_many_samples_and_the_older_format(tmp_path: Path) -> None:
    many = write(tmp_path / "many.jsonl", [{"id": "a", "n": 4, "c": 1}, {"id": "b", "n": 4, "c": 4}, {"id": "c", "n": 2, "c": 0}])
    old = write(
        tmp_path / "old.jsonl", [{"id": "a", "verdict": "PASSED", "reward": 1.0}, {"id": "b", "reward": 0.0}, {"id": "c", "reward": None}]
    )
    assert read_outcomes(old)["c"].n == 0 and read_outcomes(old)["a"].c == 1
    result = compare(read_outcomes(old), read_outcomes(many), resamples=100)
    assert result.paired == 2 and result.unscored == 1
    assert (result.before_pass_at_1, result.after_pass_at_1) == (0.5, pytest.approx((0.25 + 1.0) / 2))
    assert result.mcnemar_p is None  # several samples per problem: no pairs of binary outcomes


def test_compare_names_the_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "good.jsonl", [{"id": "a", "n": 1, "c": 1}])
    bad = write(tmp_path / "bad.jsonl", [{"id": "a", "n": 1, "c": 1}, {"id": "b", "n": 1, "c": 2}])
    assert eval_main(["compare", str(good), str(bad)]) == 2
    assert "bad.jsonl:2: c=2 must be between 0 and n=1" in capsys.readouterr().err
    (tmp_path / "broken.jsonl").write_text('{"id": "a", "n": 1, "c": 1}\n\n{"id": "b", "n": 1,\n')
    assert eval_main(["compare", str(good), str(tmp_path / "broken.jsonl")]) == 2
    assert "broken.jsonl:3: not JSON" in capsys.readouterr().err
    other = write(tmp_path / "other.jsonl", [{"id": "z", "n": 1, "c": 1}])
    assert eval_main(["compare", str(good), str(other)]) == 2
    assert "no problem is scored in both files" in capsys.readouterr().err


def test_compare_help_is_conventional(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        eval_main(["compare", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: grpo-eval compare [-h]") and "before" in out and "--resamples" in out
    with pytest.raises(SystemExit):
        eval_main(["--help"])
    assert "grpo-eval compare BEFORE.jsonl AFTER.jsonl" in capsys.readouterr().out


def test_mcnemar_of_the_example_by_hand() -> None:
    assert mcnemar_exact(2, 6) == pytest.approx(0.2890625)
