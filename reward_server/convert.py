"""Translation between the contract's messages and the sandbox's domain types."""

from __future__ import annotations

from codereward.v1 import reward_pb2 as pb
from sandboxes.types import (
    AssertTest,
    CallTest,
    Checker,
    CheckerProtocol,
    IoTest,
    Limits,
    OutputCheck,
    OutputMode,
    Problem,
    ProgramResult,
    ScoringMode,
    Subtask,
    TestCase,
)


def to_problem(msg: pb.Problem) -> Problem:
    tests: list[TestCase] = []
    for test in msg.tests:
        kind = test.WhichOneof("kind")
        if kind == "assert_code":
            tests.append(AssertTest(test.assert_code))
        elif kind == "io":
            tests.append(IoTest(test.io.stdin, test.io.expected_stdout))
        else:
            tests.append(CallTest(test.call.args_json, test.call.expected_json))
    limits = Limits(msg.limits.time_limit_s, msg.limits.memory_limit_mb, msg.limits.output_limit_bytes)
    check = msg.output_check
    return Problem(
        id=msg.id,
        tests=tuple(tests),
        setup_code=msg.setup_code,
        entry_point=msg.entry_point,
        program_names=tuple(msg.program_names),
        language=msg.language or "python",
        limits=limits,
        output_check=OutputCheck(OutputMode(pb.OutputCheck.Mode.Name(check.mode)), check.abs_tolerance, check.rel_tolerance),
        subtasks=tuple(Subtask(s.points, tuple(s.tests), s.name) for s in msg.subtasks),
        checker=to_checker(msg.checker) if msg.HasField("checker") else None,
    )


def to_checker(msg: pb.Checker) -> Checker:
    return Checker(msg.language or "python", msg.code, CheckerProtocol(pb.Checker.Protocol.Name(msg.protocol)))


def to_mode(mode: int) -> ScoringMode:
    return ScoringMode(pb.ScoringMode.Name(mode))


def to_completion_result(
    completion_id: str, result: ProgramResult, mode: ScoringMode, deduplicated: bool, subtasks: tuple[Subtask, ...] = ()
) -> pb.CompletionResult:
    msg = pb.CompletionResult(
        id=completion_id,
        verdict=pb.Verdict.Value(result.verdict.value),
        tests=[pb.TestResult(verdict=pb.Verdict.Value(t.verdict.value), wall_time_s=t.wall_time_s, detail=t.detail) for t in result.tests],
        passed=result.passed,
        total=result.total,
        wall_time_s=result.wall_time_s,
        deduplicated=deduplicated,
    )
    reward = result.reward(mode, subtasks)
    if reward is not None:
        msg.reward = reward
    return msg
