"""Typed views of the contract's messages, and builders for requests.

Trainers and tools use these instead of raw protobuf messages; they need only this
package (grpcio + protobuf), never Docker or the server.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from codereward.v1 import reward_pb2 as pb

from . import codec


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

    @classmethod
    def from_pb(cls, value: int) -> Verdict:
        return cls(pb.Verdict.Name(value))

    def to_pb(self) -> int:
        return int(pb.Verdict.Value(self.value))


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
) -> pb.Problem:
    return pb.Problem(
        id=id,
        language="python",
        setup_code=setup_code,
        tests=list(tests),
        entry_point=entry_point,
        program_names=list(program_names),
        limits=pb.Limits(time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb, output_limit_bytes=output_limit_bytes),
    )


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
