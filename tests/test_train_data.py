"""Problem loaders on real HumanEval and MBPP records, and our JSONL format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reward_api.datasets import split_check
from trainer_client.data import load_problems, mbpp_entry_point

MBPP_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp"


def test_humaneval_demo_split_is_disjoint_and_complete() -> None:
    train, heldout = load_problems("humaneval-demo"), load_problems("humaneval-demo-heldout")
    assert len(train) == 82 and len(heldout) == 82
    assert not {p.id for p in train} & {p.id for p in heldout}
    first = train[0]
    assert first.problem.setup_code == "from typing import List\n"
    assert "`has_close_elements`" in first.instruction and first.prompt_prefix.startswith("from typing import List")
    assert "check(has_close_elements)" in first.problem.tests[0].assert_code
    assert "check(" not in first.instruction  # the tests are not shown


@pytest.mark.parametrize(
    ("test", "name"),
    [
        ('assert remove_Occ("hello","l") == "heo"', "remove_Occ"),
        ("assert set(similar_elements((3, 4), (5, 4))) == set((4,))", "similar_elements"),
        ("assert math.isclose(area(2), 12.56, rel_tol=0.01)", "area"),
        ("assert not is_not_prime(2)", "is_not_prime"),
    ],
)
def test_mbpp_entry_point(test: str, name: str) -> None:
    assert mbpp_entry_point(test) == name


@pytest.mark.skipif(not (MBPP_DIR / "train.jsonl").exists(), reason="MBPP lives in ../shared/data (not in this repository)")
def test_mbpp_train_split_loads_with_a_fair_prompt() -> None:
    problems = load_problems(f"mbpp:{MBPP_DIR / 'train.jsonl'}")
    assert len(problems) > 300
    for p in problems:
        assert f"`{p.entry_point}`" in p.instruction and p.entry_point in p.problem.tests[0].assert_code
        # the form of the tests: the first assert, without the test_setup_code that precedes it
        asserts = [t.assert_code.strip().splitlines()[-1] for t in p.problem.tests]
        assert asserts[0] in p.instruction
        assert all(a not in p.instruction for a in asserts[1:] if a != asserts[0])  # only one


def test_our_jsonl_format(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    record = {
        "id": "add",
        "prompt": "Write add(a, b).",
        "entry_point": "add",
        "tests": [
            {"assert": "assert add(1, 2) == 3"},
            {"call": {"args": [2, 3], "expected": 5}},
            {"io": {"stdin": "1 2\n", "expected_stdout": "3\n"}},
        ],
    }
    path.write_text(json.dumps(record) + "\n")
    (problem,) = load_problems(str(path))
    assert [t.WhichOneof("kind") for t in problem.problem.tests] == ["assert_code", "call", "io"]
    assert json.loads(problem.problem.tests[1].call.args_json) == [2, 3]
    path.write_text(json.dumps(record) + "\n\n" + json.dumps({"id": "x", "prompt": "p", "tests": [{"run": "x"}]}) + "\n")
    # The line of the file, blank lines counted.
    with pytest.raises(ValueError, match=r"p.jsonl:3: tests\[0\]: a test needs one of assert, call, io"):
        load_problems(str(path))
    path.write_text(json.dumps(record) + "\n{'id': 'x'}\n")
    with pytest.raises(ValueError, match=r"p.jsonl:2: not JSON"):
        load_problems(str(path))
    with pytest.raises(ValueError, match="dataset 'nope'"):
        load_problems("nope")


def test_humaneval_prompt_styles() -> None:
    (whole, *_) = load_problems("humaneval-demo")
    assert whole.response_prefix == "" and "```python\nfrom typing import List" in whole.instruction
    (prefill, *_) = load_problems("humaneval-demo:prefill")
    assert prefill.response_prefix == "```python\n" + prefill.prompt_prefix and prefill.instruction == whole.instruction
    (cont, *_) = load_problems("humaneval-demo:continue")
    assert cont.response_prefix == prefill.response_prefix and "def " not in cont.instruction
    with pytest.raises(ValueError, match="prompt style 'nope'"):
        load_problems("humaneval:nope")


def test_split_check_keeps_what_each_assert_needs() -> None:
    source = (
        "import math\n\n\ndef check(f):\n    x = 2\n    assert f(x) == 4\n    assert True, 'marker'\n    y = x + 1\n    assert f(y) == 9\n"
    )
    first, second = split_check(source, "square")
    assert "import math" in first and first.count("assert") == 1 and "f(x) == 4" in first and "y = x + 1" not in first
    assert second.count("assert") == 1 and "x = 2" in second and "y = x + 1" in second and "f(y) == 9" in second
    assert all(t.rstrip().endswith("check(square)") for t in (first, second))
    namespace: dict[str, object] = {}
    exec(second, {"square": lambda v: v * v}, namespace)  # runs: the kept statements define y
    looped = "def check(f):\n    for i in range(3):\n        assert f(i) == i * i\n    assert f(5) == 25\n"
    assert split_check(looped, "square") == [looped + "\ncheck(square)\n"]  # an assert in a loop: whole


def test_fraction_reward_splits_humaneval_into_asserts() -> None:
    whole = load_problems("humaneval-demo")
    split = load_problems("humaneval-demo", per_assert=True)
    assert [p.id for p in whole] == [p.id for p in split]
    assert all(len(p.problem.tests) == 1 for p in whole)
    assert sum(len(p.problem.tests) for p in split) > 5 * len(split)


def test_mbpp_by_dataset_name_through_the_datasets_library(tmp_path: Path) -> None:
    """`mbpp:NAME[:SPLIT]` goes through `datasets.load_dataset`, as a hub name does online; here
    NAME is a local folder of split files, which the same call reads."""
    pytest.importorskip("datasets")

    def record(task_id: int, name: str) -> str:
        tests = [f"assert {name}(1, 2) == 3", f"assert {name}(2, 2) == 4"]
        return json.dumps(
            {"task_id": task_id, "text": f"Write {name}.", "code": "", "test_list": tests, "test_setup_code": "", "challenge_test_list": []}
        )

    (tmp_path / "train.jsonl").write_text(record(1, "add") + "\n" + record(2, "plus") + "\n")
    (tmp_path / "validation.jsonl").write_text(record(3, "total") + "\n")
    train = load_problems(f"mbpp:{tmp_path}")
    assert [(p.id, p.entry_point, len(p.problem.tests)) for p in train] == [("mbpp/1", "add", 2), ("mbpp/2", "plus", 2)]
    (held_out,) = load_problems(f"mbpp:{tmp_path}:validation")
    assert held_out.id == "mbpp/3" and "`total`" in held_out.instruction
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train.jsonl").write_text(json.dumps({"task_id": 9, "text": "x", "test_list": ["print(1)"]}) + "\n")
    with pytest.raises(ValueError, match=r"\[train\]:1: cannot find the function"):
        load_problems(f"mbpp:{tmp_path / 'bad'}")


def test_data_order_is_a_fresh_permutation_each_epoch() -> None:
    pytest.importorskip("torch", reason="trainer_client.trainer needs torch (the trainer extra)")
    from trainer_client.trainer import problem_at

    first = [problem_at(i, 5, seed=1) for i in range(5)]
    second = [problem_at(i, 5, seed=1) for i in range(5, 10)]
    assert sorted(first) == sorted(second) == list(range(5))
    assert first != second  # (for this seed) epochs differ in order
    assert [problem_at(i, 5, seed=1) for i in range(5)] == first  # and the order is a function of the position alone
