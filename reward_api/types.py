"""Typed views of the contract's messages, and builders for tests, problems and requests.

Trainers and tools use these instead of raw protobuf messages; they need only this
package (grpcio + protobuf), never Docker or the server.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from codereward.v1 import reward_pb2 as pb

from . import codec

ScoringMode = Literal["ALL_OR_NOTHING", "FRACTION", "SUBTASKS", "SUBTASK_TESTS"]
"""The names of the contract's `ScoringMode` values."""


class Verdict(enum.Enum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    SYNTAX_ERROR = "SYNTAX_ERROR"
    TIMEOUT = "TIMEOUT"
    MEMORY_LIMIT = "MEMORY_LIMIT"
    OUTPUT_LIMIT = "OUTPUT_LIMIT"
    SKIPPED = "SKIPPED"
    SANDBOX_ERROR = "SANDBOX_ERROR"
    COMPILE_ERROR = "COMPILE_ERROR"

    @classmethod
    def from_pb(cls, value: int) -> Verdict:
        return cls(pb.Verdict.Name(value))


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest test class

    verdict: Verdict
    wall_time_s: float
    detail: str


@dataclass(frozen=True)
class CompletionScore:
    id: str
    reward: float | None  # None: SANDBOX_ERROR, to be masked, never counted as 0
    verdict: Verdict
    passed: int
    total: int
    wall_time_s: float
    tests: tuple[TestOutcome, ...]
    deduplicated: bool = False

    @property
    def masked(self) -> bool:
        return self.reward is None

    @classmethod
    def from_pb(cls, msg: pb.CompletionResult) -> CompletionScore:
        return cls(
            id=msg.id,
            reward=msg.reward if msg.HasField("reward") else None,
            verdict=Verdict.from_pb(msg.verdict),
            passed=msg.passed,
            total=msg.total,
            wall_time_s=msg.wall_time_s,
            tests=tuple(TestOutcome(Verdict.from_pb(t.verdict), t.wall_time_s, t.detail) for t in msg.tests),
            deduplicated=msg.deduplicated,
        )


@dataclass(frozen=True)
class GroupScore:
    request_id: str
    results: tuple[CompletionScore, ...]
    raw: pb.ScoreResponse | None = field(default=None, compare=False, repr=False)
    """The message this was read from."""

    @property
    def rewards(self) -> list[float | None]:
        return [r.reward for r in self.results]

    @classmethod
    def from_pb(cls, msg: pb.ScoreResponse) -> GroupScore:
        return cls(msg.request_id, tuple(CompletionScore.from_pb(r) for r in msg.results), raw=msg)


def assert_test(code: str) -> pb.TestCase:
    return pb.TestCase(assert_code=code)


def io_test(stdin: str, expected_stdout: str) -> pb.TestCase:
    return pb.TestCase(io=pb.IoTest(stdin=stdin, expected_stdout=expected_stdout))


def call_test(args: Sequence[Any], expected: Any) -> pb.TestCase:
    """`entry_point(*args) == expected`, in typed JSON: tuples, sets, dicts with any keys,
    bytes, Fraction, Decimal, complex, named tuples and dataclasses keep their types."""
    return pb.TestCase(call=pb.CallTest(args_json=codec.dumps(list(args)), expected_json=codec.dumps(expected)))


def parse_tests(spec: Any, field: str = "tests") -> list[pb.TestCase]:
    """Test cases from plain data (our JSONL problem format, a dataset row, verl's
    `ground_truth`); errors name `field` and the offending index. The spec is a list, or its
    JSON text:

        [{"assert": "assert add(1, 2) == 3"},
         {"call": {"args": [2, 3], "expected": 5}},
         {"io": {"stdin": "2 3\\n", "expected_stdout": "5\\n"}},
         "assert add(0, 0) == 0"]               # a bare string is an assert test (MBPP's test_list)

    Keys whose value is None are ignored, so rows that went through Arrow (which fills the
    other branches of a union with nulls) read the same."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError as exc:
            raise ValueError(f"{field}: a string must be the JSON text of a list of tests ({exc})") from None
    if isinstance(spec, Mapping) or not isinstance(spec, Sequence) or isinstance(spec, (str, bytes)):
        raise ValueError(f"{field}: expected a list of tests, got {type(spec).__name__}")
    if not spec:
        raise ValueError(f"{field}: no tests (a problem needs at least one)")
    return [_test(item, f"{field}[{i}]") for i, item in enumerate(spec)]


def _test(item: Any, where: str) -> pb.TestCase:
    if isinstance(item, str):
        return assert_test(item)
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: expected a string or an object, got {type(item).__name__}")
    present = {k: v for k, v in item.items() if v is not None}
    try:
        if "assert" in present:
            return assert_test(str(present["assert"]))
        if "call" in present:
            call = present["call"]
            return call_test(_json_or_value(call["args"]), _json_or_value(call["expected"]))
        if "io" in present:
            return io_test(str(present["io"]["stdin"]), str(present["io"]["expected_stdout"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{where}: missing field {exc}") from None
    raise ValueError(f"{where}: a test needs one of assert, call, io; got {sorted(present)}")


def _json_or_value(value: Any) -> Any:
    """`args` / `expected` may be given as JSON text (the only way Arrow stores mixed types)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def make_problem(
    id: str,
    tests: Iterable[pb.TestCase],
    *,
    entry_point: str = "",
    setup_code: str = "",
    program_names: Sequence[str] = (),
    time_limit_s: float = 0.0,
    memory_limit_mb: int = 0,
    output_limit_bytes: int = 0,
    language: str = "python",
    output_check: pb.OutputCheck | None = None,
    subtasks: Sequence[tuple[float, Sequence[int]]] = (),
    checker: pb.Checker | None = None,
) -> pb.Problem:
    """A problem; `language` other than python ("cpp", "java", "javascript") takes io tests only.
    `output_check`: how io tests' stdout is compared (e.g. `pb.OutputCheck(mode=pb.OutputCheck.FLOATS,
    abs_tolerance=1e-6)`); `subtasks`: (points, test indices) pairs, for the SUBTASKS modes;
    `checker`: a program that judges each io test's output instead (`pb.Checker(language="cpp",
    code=..., protocol=pb.Checker.TESTLIB)`), for problems with more than one right answer."""
    return pb.Problem(
        id=id,
        language=language,
        setup_code=setup_code,
        tests=list(tests),
        entry_point=entry_point,
        program_names=list(program_names),
        limits=pb.Limits(time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb, output_limit_bytes=output_limit_bytes),
        output_check=output_check,
        subtasks=[pb.Subtask(points=points, tests=list(tests)) for points, tests in subtasks],
        checker=checker,
    )


def auto_fail_fast(mode: str, fail_fast: bool | None) -> bool:
    """`fail_fast` as given, or by default on with ALL_OR_NOTHING: the reward and the program's
    verdict are the same, and the tests after a failure (a hang costs its time limit each) are
    not run."""
    return mode == "ALL_OR_NOTHING" if fail_fast is None else fail_fast


def make_request(
    problem: pb.Problem,
    codes: Sequence[str],
    *,
    mode: str = "ALL_OR_NOTHING",
    fail_fast: bool = False,
    request_id: str | None = None,
    completion_ids: Sequence[str] | None = None,
) -> pb.ScoreRequest:
    """A ScoreRequest for one group of programs (completion ids default to "0", "1", ...)."""
    ids = list(completion_ids) if completion_ids is not None else [str(i) for i in range(len(codes))]
    if len(ids) != len(codes):
        raise ValueError(f"completion_ids: {len(ids)} ids for {len(codes)} programs")
    return pb.ScoreRequest(
        request_id=request_id or uuid.uuid4().hex,
        problem=problem,
        completions=[pb.Completion(id=i, code=c) for i, c in zip(ids, codes)],
        mode=pb.ScoringMode.Value(mode),
        fail_fast=fail_fast,
    )
