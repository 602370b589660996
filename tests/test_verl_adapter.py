"""The verl adapter, called as verl calls it (verl itself does not install beside torch 2.13.0
CPU here): per response, batched, async, loaded from a file path, on real MBPP records."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codereward.v1 import reward_pb2 as pb
from reward_api import types
from reward_api.datasets import mbpp_tests
from reward_api.integrations import problems, verl
from reward_api.integrations.problems import problem_from_spec
from reward_api.types import GroupScore, parse_tests
from trainer_client.data import mbpp_entry_point

from .server_proc import ServerProcess

MBPP_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp" / "train.jsonl"


@pytest.fixture(scope="module")
def server(sandbox_image: str) -> Iterator[ServerProcess]:
    process = ServerProcess(sandbox_image)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def mbpp() -> list[dict[str, Any]]:
    if not MBPP_TRAIN.exists():
        pytest.skip("MBPP lives in ../shared/data (not in this repository)")
    with open(MBPP_TRAIN, encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(4), f)]


def rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """verl parquet rows (data_source, prompt, ability, reward_model.ground_truth, extra_info)."""
    return [
        verl.verl_row(
            r["text"],
            [t.assert_code for t in mbpp_tests(r)],
            entry_point=mbpp_entry_point(r["test_list"][0]),
            data_source="mbpp",
            extra_info={"split": "train", "index": i},
        )
        for i, r in enumerate(records)
    ]


def answer(code: str) -> str:
    return f"Here is the function.\n```python\n{code}\n```\nIt passes the tests."


def test_test_specs_in_every_form() -> None:
    tests = parse_tests(
        '[{"assert": "assert f(1) == 1", "call": null, "io": null}, {"call": {"args": "[1, 2]", "expected": 3}}, '
        '{"io": {"stdin": "1\\n", "expected_stdout": "2\\n"}}, "assert True"]'
    )
    assert [t.WhichOneof("kind") for t in tests] == ["assert_code", "call", "io", "assert_code"]
    assert (tests[1].call.args_json, tests[1].call.expected_json) == ("[1, 2]", "3")
    assert problems.parse_tests is types.parse_tests and problems.auto_fail_fast is types.auto_fail_fast  # importable from both
    problem, entry_point, prefix = problem_from_spec({"tests": ["assert f(0) == 0"], "entry_point": "f", "setup_code": "import math"})
    assert (problem.entry_point, problem.setup_code, entry_point, prefix) == ("f", "import math", "f", "")
    with pytest.raises(ValueError, match=r"ground_truth: missing `tests`"):
        problem_from_spec({"entry_point": "f"})
    with pytest.raises(ValueError, match=r"ground_truth.tests: no tests"):
        problem_from_spec("[]")
    with pytest.raises(ValueError, match=r"ground_truth: not JSON"):
        problem_from_spec("assert f(0) == 0")


def _answer(results: list[tuple[str, float | None]]) -> GroupScore:
    msg = pb.ScoreResponse(request_id="r")
    for cid, reward in results:
        result = msg.results.add(
            id=cid, verdict=pb.Verdict.Value("PASSED" if reward == 1.0 else "FAILED" if reward is not None else "SANDBOX_ERROR")
        )
        if reward is not None:
            result.reward = reward
    return GroupScore.from_pb(msg)


def test_sandbox_error_is_never_a_silent_zero() -> None:
    group = [_answer([("0", 1.0), ("1", None), ("2", 0.0), ("3", 1.0)])]
    with pytest.raises(verl.SandboxErrorResult, match="response 1 of request r: SANDBOX_ERROR"):
        verl._rewards(4, group, "raise")
    assert verl._rewards(4, group, "group_mean") == [1.0, 2 / 3, 0.0, 1.0]  # zero advantage under GRPO
    assert verl._rewards(4, group, 0.25) == [1.0, 0.25, 0.0, 1.0]
    with pytest.raises(verl.SandboxErrorResult):
        verl._rewards(1, [_answer([("0", None)])], "group_mean")  # nothing to take the mean of
    with pytest.raises(ValueError, match="on_sandbox_error='group_mean'"):
        verl.compute_score("mbpp", "x", '["assert True"]', target="127.0.0.1:1", on_sandbox_error="group_mean")


def test_no_target_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(verl.ENV_TARGETS, raising=False)
    with pytest.raises(ValueError, match="CODEREWARD_TARGETS"):
        verl.compute_score("mbpp", "x = 1", '["assert True"]')


@pytest.mark.docker
def test_compute_score_on_mbpp_with_verls_arguments(server: ServerProcess, mbpp: list[dict[str, Any]]) -> None:
    reward_kwargs = {"target": server.target}  # custom_reward_function.reward_kwargs, merged by verl
    for row, record, other in zip(rows(mbpp), mbpp, mbpp[1:] + mbpp[:1]):
        kwargs = {
            "data_source": row["data_source"],
            "ground_truth": row["reward_model"]["ground_truth"],
            "extra_info": row["extra_info"],
            **reward_kwargs,
        }
        assert verl.compute_score(solution_str=answer(record["code"]), **kwargs) == 1.0, record["task_id"]
        assert verl.compute_score(solution_str=answer(other["code"]), **kwargs) == 0.0, record["task_id"]
    assert verl.compute_score(solution_str="I don't know.", **kwargs) == 0.0


@pytest.mark.docker
def test_batched_and_async_variants_agree(server: ServerProcess, mbpp: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(verl.ENV_TARGETS, server.target)  # the other way to name the server
    table = rows(mbpp)
    # A chunk as verl's batch manager sends it: the responses of each prompt side by side.
    data_sources, solutions, truths, extras = [], [], [], []
    for row, record, other in zip(table, mbpp, mbpp[1:] + mbpp[:1]):
        for code in (record["code"], other["code"]):
            data_sources.append(row["data_source"])
            solutions.append(answer(code))
            truths.append(row["reward_model"]["ground_truth"])
            extras.append(row["extra_info"])
    expected = [1.0, 0.0] * len(table)
    assert (
        verl.compute_score_batch(data_sources=data_sources, solution_strs=solutions, ground_truths=truths, extra_infos=extras) == expected
    )

    async def both() -> tuple[list[float], list[float]]:
        single = await asyncio.gather(
            *(verl.compute_score_async(d, s, t, e) for d, s, t, e in zip(data_sources, solutions, truths, extras))
        )
        batched = await verl.compute_score_batch_async(data_sources, solutions, truths, extras)
        await verl.close_async_clients()
        return list(single), batched

    single, batched = asyncio.run(both())
    assert single == expected and batched == expected


@pytest.mark.docker
def test_loads_from_a_file_path_as_verl_does(server: ServerProcess) -> None:
    """verl's `custom_reward_function.path` loads a file with spec_from_file_location, outside
    its package: the module must import its siblings absolutely."""
    spec = importlib.util.spec_from_file_location("custom_module_test", verl.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    truth = json.dumps({"tests": [{"call": {"args": [2, 3], "expected": 6}}], "entry_point": "mul"})
    score = module.compute_score("custom", "def mul(a, b):\n    return a * b\n", truth, {}, target=server.target, mode="FRACTION")
    assert score == 1.0


CONTEST_SPEC = {
    "language": "cpp",
    "tests": [{"io": {"stdin": f"{n}\n", "expected_stdout": f"{1 / n:.6f}\n"}} for n in (3, 7, 9, 11)],
    "output_check": {"mode": "FLOATS", "abs_tolerance": 1e-6},
    "subtasks": [{"points": 40, "tests": [0, 1], "name": "small"}, {"points": 60, "tests": [2, 3]}],
}
RECIPROCAL = "#include <cstdio>\nint main() { int n; std::scanf(\"%d\", &n); std::printf(\"%.9f\\n\", n < 9 ? 1.0 / n : 0.5); }\n"


def test_a_contest_spec_keeps_its_language_output_check_subtasks_and_checker() -> None:
    checked, _, _ = problem_from_spec({**CONTEST_SPEC, "checker": {"language": "cpp", "code": "int main() {}", "protocol": "open_r1"}})
    assert (checked.checker.language, checked.checker.code, checked.checker.protocol) == ("cpp", "int main() {}", pb.Checker.OPEN_R1)
    problem, _, _ = problem_from_spec(json.dumps(CONTEST_SPEC))
    assert not problem.HasField("checker")
    assert problem.language == "cpp" and problem.output_check.mode == pb.OutputCheck.FLOATS
    assert problem.output_check.abs_tolerance == 1e-6
    assert [(s.points, list(s.tests), s.name) for s in problem.subtasks] == [(40, [0, 1], "small"), (60, [2, 3], "")]
    for bad, message in (
        ({"output_check": {"mode": "ROUGH"}}, r"ground_truth.output_check.mode='ROUGH': choose one of LINES, EXACT, TOKENS, FLOATS"),
        ({"output_check": {"tolerance": 1}}, r"ground_truth.output_check: unknown keys \['tolerance'\]"),
        ({"subtasks": [{"points": 1}]}, r"ground_truth.subtasks\[0\]: expected"),
        ({"subtasks": [{"points": "x", "tests": [0]}]}, r"ground_truth.subtasks\[0\]: points must be a number"),
        ({"subtasks": "all"}, r"ground_truth.subtasks: expected a list"),
        ({"checker": "print(1)"}, r"ground_truth.checker: expected an object"),
        ({"checker": {"code": "print(1)", "protocol": "DIFF"}}, r"ground_truth.checker.protocol='DIFF': choose one of TESTLIB, OPEN_R1"),
        ({"checker": {"code": "print(1)"}}, r"ground_truth.checker.protocol=None: choose one of TESTLIB, OPEN_R1"),
        ({"checker": {"code": "print(1)", "args": []}}, r"ground_truth.checker: unknown keys \['args'\]"),
    ):
        with pytest.raises(ValueError, match=message):
            problem_from_spec({**CONTEST_SPEC, **bad})


@pytest.mark.docker
def test_a_cpp_answer_is_scored_with_its_tolerance_and_subtasks(server: ServerProcess) -> None:
    """The answer's C++ block is what runs (not its Python one); 1/n printed with 9 digits
    passes under FLOATS, not under EXACT; wrong on tests 2 and 3 it keeps the first subtask."""
    completion = f"In Python:\n```python\nprint(1 / int(input()))\n```\nIn C++:\n```cpp\n{RECIPROCAL}```\n"
    score = lambda spec, mode: verl.compute_score("contest", completion, json.dumps(spec), target=server.target, mode=mode)  # noqa: E731
    assert score(CONTEST_SPEC, "SUBTASKS") == pytest.approx(0.4)  # subtask "small" passed, the other not
    assert score(CONTEST_SPEC, "FRACTION") == pytest.approx(0.5)
    assert score({**CONTEST_SPEC, "output_check": {"mode": "EXACT"}}, "FRACTION") == 0.0  # 0.333333333 is not 0.333333
