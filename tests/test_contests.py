"""Competitive-programming datasets (reward_api/contests.py): rows in each format, written here,
become the problems, limits and reference solutions they describe; rows that cannot be judged
faithfully are skipped with their reason; LiveCodeBench's compressed tests are read without
running pickled code; the CLI and the trainer read them; and in the sandbox (real Docker) each
format's accepted solutions pass and its wrong ones fail."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from codereward.v1 import reward_pb2 as pb
from reward_api import contests
from reward_api.extract import extract_code
from reward_server.config import ServerConfig
from reward_server.convert import to_problem
from reward_server.validation import validate
from sandboxes.config import SandboxConfig
from sandboxes.pool import SandboxPool
from sandboxes.types import Verdict
from trainer_client.data import load_problems

DOUBLE_PY = "n = int(input())\nprint(2 * n)\n"
DOUBLE_CPP = '#include <cstdio>\nint main() { long long n; scanf("%lld", &n); printf("%lld\\n", 2 * n); }\n'
WRONG_PY = "n = int(input())\nprint(n + 2)\n"  # right for n = 2 only

CODECONTESTS = {
    "name": "1_A. Double",
    "description": "Print twice n.",
    "public_tests": {"input": ["2\n"], "output": ["4\n"]},
    "private_tests": {"input": ["5\n", "7\n"], "output": ["10\n", "14\n"]},
    "generated_tests": {"input": ["1000000000\n"], "output": ["2000000000\n"]},
    "solutions": {"language": [3, 2, 1, 4], "solution": [DOUBLE_PY, DOUBLE_CPP, "print 2*input()", "class Main {}"]},
    "incorrect_solutions": {"language": [3], "solution": [WRONG_PY]},
    "time_limit": {"seconds": 2, "nanos": 500000000},
    "memory_limit_bytes": 256 * 1024 * 1024,
}

TACO_IO = {
    "problem_id": 17,
    "question": "Print twice n.",
    "solutions": json.dumps([DOUBLE_PY]),
    "starter_code": "",
    "input_output": json.dumps({"inputs": ["2\n", ["5"]], "outputs": ["4\n", ["10"]]}),  # a list of lines, as some rows have
    "time_limit": "1 second",
    "memory_limit": "128 megabytes",
}
TWO_SUM = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
TWO_SUM_SOLUTION = (
    "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
    "        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
    "                return (seen[target - x], i)\n            seen[x] = i\n"
)
TACO_CALL = {
    "problem_id": 18,
    "question": "Two sum.",
    "solutions": json.dumps([TWO_SUM_SOLUTION]),
    "starter_code": TWO_SUM,
    # APPS's rule: an expected list of one value also takes the value; a tuple answer equals a list.
    "input_output": json.dumps({"fn_name": "twoSum", "inputs": [[[2, 7, 11, 15], 9], [[3, 3], 6]], "outputs": [[[0, 1]], [0, 1]]}),
}


def lcb_private(cases: list[dict[str, Any]]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


LCB_STDIN = {
    "question_title": "Double",
    "question_content": "Print twice n.",
    "question_id": "abc001_a",
    "starter_code": "",
    "public_test_cases": json.dumps([{"input": "2\n", "output": "4\n", "testtype": "stdin"}]),
    "private_test_cases": lcb_private([{"input": "9\n", "output": "18\n", "testtype": "stdin"}]),
    "metadata": "{}",
}
LCB_FUNCTIONAL = {
    "question_title": "Two sum",
    "question_content": "Two sum.",
    "question_id": "1",
    "starter_code": TWO_SUM,
    "public_test_cases": json.dumps([{"input": "[2, 7, 11, 15]\n9", "output": "[0, 1]", "testtype": "functional"}]),
    "private_test_cases": json.dumps([{"input": "[3, 2, 4]\n6", "output": "[1, 2]", "testtype": "functional"}]),
    "metadata": json.dumps({"func_name": "twoSum"}),
}
CODEFORCES = {
    "id": "1A",
    "title": "Double",
    "description": "Print twice n.",
    "input_format": "One integer n.",
    "output_format": "2n.",
    "note": None,
    "examples": [{"input": "2\n", "output": "4\n"}],
    "official_tests": [{"input": "2\n", "output": "4\n"}, {"input": "8\n", "output": "16\n"}],
    "time_limit": 1.0,
    "memory_limit": 256.0,
    "generated_checker": None,
    "interaction_format": None,
    "input_mode": "stdio",
}


# "Print two non-negative integers that add up to n": open-r1's checker protocol (input, correct
# output, solution output; prints 1 or 0).
CODEFORCES_CHECKED = dict(
    CODEFORCES,
    id="2A",
    official_tests=[{"input": "4\n", "output": "1 3\n"}, {"input": "9\n", "output": "4 5\n"}],
    generated_checker=(
        "import sys\nn = int(open(sys.argv[1]).read())\nwords = open(sys.argv[3]).read().split()\n"
        "ok = len(words) == 2 and all(w.isdigit() for w in words) and int(words[0]) + int(words[1]) == n\nprint(1 if ok else 0)\n"
    ),
)


def test_codecontests_rows_give_every_test_the_limits_and_the_solutions_by_language() -> None:
    contest = contests.codecontests_problem(CODECONTESTS, "cpp")
    problem = contest.problem
    assert problem.id == "codecontests/1_A. Double" and problem.language == "cpp"
    assert [(t.io.stdin, t.io.expected_stdout) for t in problem.tests] == [
        ("2\n", "4\n"), ("5\n", "10\n"), ("7\n", "14\n"), ("1000000000\n", "2000000000\n")
    ]
    assert (problem.limits.time_limit_s, problem.limits.memory_limit_mb) == (2.5, 256)
    assert contest.solutions == (("python", DOUBLE_PY), ("cpp", DOUBLE_CPP), ("java", "class Main {}"))  # Python 2 left out
    assert contest.wrong_solutions == (("python", WRONG_PY),)
    validate(pb.ScoreRequest(problem=problem, completions=[pb.Completion(code="x")]), ServerConfig(), SandboxConfig())


def test_limits_past_the_servers_largest_are_lowered_to_it() -> None:
    largest = SandboxConfig().max_limits
    assert (contests.MAX_TIME_S, contests.MAX_MEMORY_MB) == (largest.time_limit_s, largest.memory_limit_mb)
    row = dict(CODECONTESTS, time_limit={"seconds": 60, "nanos": 0}, memory_limit_bytes=2048 * 1024 * 1024)
    problem = contests.codecontests_problem(row).problem
    assert (problem.limits.time_limit_s, problem.limits.memory_limit_mb) == (largest.time_limit_s, largest.memory_limit_mb)
    validate(pb.ScoreRequest(problem=problem, completions=[pb.Completion(code="x")]), ServerConfig(), SandboxConfig())


def test_taco_rows_stdin_and_call_based() -> None:
    io = contests.taco_problem(TACO_IO)
    assert [(t.io.stdin, t.io.expected_stdout) for t in io.problem.tests] == [("2\n", "4\n"), ("5\n", "10\n")]
    assert (io.problem.limits.time_limit_s, io.problem.limits.memory_limit_mb) == (1.0, 128)
    call = contests.taco_problem(TACO_CALL)
    assert call.call == "Solution().twoSum" and call.problem.setup_code == contests.CALL_SETUP
    # The generated asserts hold for the reference solution and fail for a wrong one (run here,
    # as the judge runs them: setup, program, test in one namespace).
    for code, holds in ((TWO_SUM_SOLUTION, True), (TWO_SUM_SOLUTION.replace("(seen[target - x], i)", "[i, i]"), False)):
        for test in call.problem.tests:
            scope: dict[str, Any] = {}
            exec(contests.CALL_SETUP + code, scope)
            if holds:
                exec(test.assert_code, scope)
            else:
                with pytest.raises(AssertionError, match="expected"):
                    exec(test.assert_code, scope)
    with pytest.raises(contests.Skipped, match="only Python answers can be called, not cpp"):
        contests.taco_problem(TACO_CALL, "cpp")


def test_livecodebench_reads_compressed_tests_and_functional_ones() -> None:
    stdin = contests.livecodebench_problem(LCB_STDIN)
    assert [(t.io.stdin, t.io.expected_stdout) for t in stdin.problem.tests] == [("2\n", "4\n"), ("9\n", "18\n")]
    functional = contests.livecodebench_problem(LCB_FUNCTIONAL)
    assert functional.call == "Solution().twoSum" and len(functional.problem.tests) == 2
    scope: dict[str, Any] = {}
    exec(contests.CALL_SETUP + TWO_SUM_SOLUTION.replace("return (seen[target - x], i)", "return [seen[target - x], i]"), scope)
    for test in functional.problem.tests:
        exec(test.assert_code, scope)


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_exploit_in_livecodebench_tests_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    row = dict(LCB_STDIN, private_test_cases=base64.b64encode(zlib.compress(pickle.dumps(_Exploit(str(marker))))).decode())
    problems, skipped = contests.contest_problems("livecodebench", [row])
    assert problems == [] and not marker.exists()
    assert skipped == {"private_test_cases could not be read (UnpicklingError)": 1}


def test_codeforces_rows_and_what_is_skipped_with_its_reason() -> None:
    contest = contests.codeforces_problem(CODEFORCES)
    assert [t.io.expected_stdout for t in contest.problem.tests] == ["4\n", "16\n"]
    assert "Example 1\nInput:\n2\nOutput:\n4" in contest.statement and contest.statement.startswith("Double")
    rows = [
        CODEFORCES,
        dict(CODEFORCES, interaction_format="Flush after each query."),
        dict(CODEFORCES, input_mode="file"),
        dict(CODEFORCES, official_tests=[], examples=[]),
        dict(CODEFORCES, official_tests=[{"input": "1" * contests.MAX_TEST_BYTES, "output": "2\n"}], examples=[]),
        {"title": "no id at all", "examples": "not a list"},
    ]
    problems, skipped = contests.contest_problems("codeforces", rows)
    assert len(problems) == 1
    assert skipped == {
        "interactive problem": 1,
        "reads files (file), not stdin": 1,
        "no tests": 1,
        "no test fits the server's limits": 1,
        "malformed row (AttributeError: 'str' object has no attribute 'get')": 1,
    }


def test_a_codeforces_generated_checker_becomes_the_problems_open_r1_checker() -> None:
    checker = "import sys\nprint(1)\n"
    problem = contests.codeforces_problem(dict(CODEFORCES, generated_checker=checker)).problem
    assert (problem.checker.language, problem.checker.code, problem.checker.protocol) == ("python", checker, pb.Checker.OPEN_R1)
    assert not contests.codeforces_problem(CODEFORCES).problem.HasField("checker")
    validate(pb.ScoreRequest(problem=problem, completions=[pb.Completion(code="x")]), ServerConfig(), SandboxConfig())


def test_tests_past_the_servers_limits_are_left_out_and_counted() -> None:
    many = {"input": [f"{i}\n" for i in range(300)], "output": [f"{2 * i}\n" for i in range(300)]}
    contest = contests.codecontests_problem(dict(CODECONTESTS, public_tests=many, private_tests=None, generated_tests=None))
    assert len(contest.problem.tests) == contests.MAX_TESTS and contest.dropped_tests == 300 - contests.MAX_TESTS


def test_rows_load_from_jsonl_json_and_parquet_files(tmp_path: Path) -> None:
    import datasets

    rows = [CODEFORCES, dict(CODEFORCES, id="1B")]
    (tmp_path / "cf.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "cf.json").write_text(json.dumps(rows))
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "cf.parquet"))
    for name in ("cf.jsonl", "cf.json", "cf.parquet"):
        problems, skipped = contests.contest_problems("codeforces", contests.load_rows(str(tmp_path / name)))
        assert [p.problem.id for p in problems] == ["codeforces/1A", "codeforces/1B"] and not skipped, name
    with pytest.raises(ValueError, match="no such file"):
        contests.load_rows(str(tmp_path / "missing.jsonl"))


def test_convert_writes_requests_of_the_reference_solutions_and_reports_skips(tmp_path: Path) -> None:
    data = tmp_path / "cc.jsonl"
    data.write_text(json.dumps(CODECONTESTS) + "\n" + json.dumps(dict(CODECONTESTS, name="empty", public_tests=None, private_tests=None, generated_tests=None)) + "\n")
    out = tmp_path / "requests.jsonl"
    command = [str(Path(sys.executable).parent / "reward-client"), "convert", "codecontests", "--data", str(data), "--language", "cpp", "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "skipped 1 rows: no tests" in done.stderr
    requests = [json_format.Parse(line, pb.ScoreRequest()) for line in out.read_text().splitlines()]
    assert len(requests) == 1 and requests[0].problem.language == "cpp"
    assert [c.code for c in requests[0].completions] == [DOUBLE_CPP]


def test_the_trainer_asks_for_the_language_and_extracts_its_block(tmp_path: Path) -> None:
    data = tmp_path / "cc.jsonl"
    data.write_text(json.dumps(CODECONTESTS) + "\n")
    (problem,) = load_problems(f"codecontests@cpp:{data}")
    assert problem.problem.language == "cpp" and "C++17 program" in problem.instruction and "```cpp" in problem.instruction
    answer = f"Here it is:\n```python\nprint('not this')\n```\n```cpp\n{DOUBLE_CPP}```\nDone."
    assert extract_code(answer, language="cpp") == DOUBLE_CPP
    assert extract_code(DOUBLE_CPP, language="cpp") == DOUBLE_CPP  # no fence: the completion
    (python,) = load_problems(f"taco:{_write(tmp_path / 'taco.jsonl', TACO_CALL)}")
    assert "Solution().twoSum" in python.instruction and TWO_SUM.strip() in python.instruction


def _write(path: Path, row: dict[str, Any]) -> Path:
    path.write_text(json.dumps(row) + "\n")
    return path


# -- fidelity in the sandbox -------------------------------------------------------------------------


@pytest.mark.docker
async def test_each_formats_accepted_solutions_pass_and_wrong_ones_fail(fast_config: SandboxConfig, docker_client: Any) -> None:
    wrong_two_sum = TWO_SUM_SOLUTION.replace("(seen[target - x], i)", "[i, i]")
    cases = [
        (contests.codecontests_problem(CODECONTESTS, "cpp"), DOUBLE_CPP, DOUBLE_CPP.replace("2 * n", "n + 2")),
        (contests.codecontests_problem(CODECONTESTS), DOUBLE_PY, WRONG_PY),
        (contests.taco_problem(TACO_IO), DOUBLE_PY, WRONG_PY),
        (contests.taco_problem(TACO_CALL), TWO_SUM_SOLUTION, wrong_two_sum),
        (contests.livecodebench_problem(LCB_STDIN), DOUBLE_PY, WRONG_PY),
        (contests.livecodebench_problem(LCB_FUNCTIONAL), TWO_SUM_SOLUTION.replace("(seen[target - x], i)", "[seen[target - x], i]"), wrong_two_sum),
        (contests.codeforces_problem(CODEFORCES), DOUBLE_PY, WRONG_PY),
        (contests.codeforces_problem(CODEFORCES_CHECKED), "n = int(input())\nprint(0, n)", "n = int(input())\nprint(1, n)"),
    ]
    async with SandboxPool(fast_config, client=docker_client) as pool:
        results = await asyncio.gather(*(pool.run(to_problem(c.problem), code) for c, *codes in cases for code in codes))
    for (contest, *_), accepted, wrong in zip(cases, results[0::2], results[1::2]):
        assert accepted.verdict is Verdict.PASSED, (contest.problem.id, accepted)
        assert wrong.verdict is Verdict.FAILED, (contest.problem.id, wrong)
