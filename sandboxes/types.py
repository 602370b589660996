"""Domain types of a scoring job: problems, tests, limits, verdicts, results.

These mirror the wire contract (`proto/codereward/v1/reward.proto`) but know nothing of
protobuf or gRPC: the reward server translates between the two at its edge.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .runner.protocol import Verdict

# When tests disagree, the program's verdict is the first non-PASSED one in test order,
# except that an infrastructure fault anywhere makes the whole program a SANDBOX_ERROR.
_PROGRAM_FAULTS = frozenset(Verdict) - {Verdict.PASSED, Verdict.SKIPPED, Verdict.SANDBOX_ERROR}


class ScoringMode(enum.Enum):
    ALL_OR_NOTHING = "ALL_OR_NOTHING"  # reward 1.0 when every test passed, else 0.0
    FRACTION = "FRACTION"  # reward = passed / total
    SUBTASKS = "SUBTASKS"  # IOI: a subtask's points when all its tests passed, over the total points
    SUBTASK_TESTS = "SUBTASK_TESTS"  # a subtask's points shared equally among its tests


class OutputMode(enum.Enum):
    LINES = "LINES"  # line by line, numbers with a small tolerance (compare.py)
    EXACT = "EXACT"  # byte for byte
    TOKENS = "TOKENS"  # the same whitespace-separated tokens
    FLOATS = "FLOATS"  # tokens; numbers within abs_tolerance or rel_tolerance


@dataclass(frozen=True)
class OutputCheck:
    """How an io test's stdout is compared with the expected one."""

    mode: OutputMode = OutputMode.LINES
    abs_tolerance: float = 0.0
    rel_tolerance: float = 0.0


class CheckerProtocol(enum.Enum):
    """How a checker is called and how it answers (`checkers.py`)."""

    TESTLIB = "TESTLIB"  # checker <input> <output> <answer>; exit 0 accepted, 1 wrong answer, 2 presentation error, 3 failed
    OPEN_R1 = "OPEN_R1"  # checker <input> <answer> <output>; exit 0, the last token on stdout 1 (accepted) or 0


@dataclass(frozen=True)
class Checker:
    """A program that decides whether an io test's output is right, for problems with more than
    one right answer. It replaces the comparison with the expected output."""

    language: str
    code: str
    protocol: CheckerProtocol = CheckerProtocol.TESTLIB


@dataclass(frozen=True)
class Subtask:
    """Tests scored together: `points` when all of `tests` (indices into Problem.tests) pass."""

    points: float
    tests: tuple[int, ...]
    name: str = ""


@dataclass(frozen=True)
class Limits:
    """Per-test resource limits; 0 means "the server's default"."""

    time_limit_s: float = 0.0
    memory_limit_mb: int = 0
    output_limit_bytes: int = 0


@dataclass(frozen=True)
class AssertTest:
    """Python statements run after setup_code and the program; pass = no exception."""

    code: str


@dataclass(frozen=True)
class IoTest:
    """The program runs as `__main__` with `stdin`; its stdout must match, line by line."""

    stdin: str
    expected_stdout: str


@dataclass(frozen=True)
class CallTest:
    """`entry_point(*args)` must return `expected` (both JSON texts), compared as JSON values."""

    args_json: str
    expected_json: str


TestCase = AssertTest | IoTest | CallTest


@dataclass(frozen=True)
class Problem:
    id: str
    tests: tuple[TestCase, ...]
    setup_code: str = ""
    entry_point: str = ""
    language: str = "python"
    limits: Limits = field(default_factory=Limits)
    program_names: tuple[str, ...] = ()  # names besides the entry point that tests read from the program
    output_check: OutputCheck = field(default_factory=OutputCheck)
    subtasks: tuple[Subtask, ...] = ()
    checker: Checker | None = None  # io tests only; the expected output is then the checker's answer file


@dataclass(frozen=True)
class TestResult:
    __test__ = False  # not a pytest test class

    verdict: Verdict
    wall_time_s: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class ProgramResult:
    """What one program earned on one problem."""

    verdict: Verdict
    tests: tuple[TestResult, ...]
    wall_time_s: float = 0.0

    @property
    def passed(self) -> int:
        return sum(t.verdict is Verdict.PASSED for t in self.tests)

    @property
    def total(self) -> int:
        return len(self.tests)

    def reward(self, mode: ScoringMode, subtasks: tuple[Subtask, ...] = ()) -> float | None:
        """The program's reward; None for an infrastructure fault (trainers mask it). Without
        subtasks, the subtask modes take the whole problem as one subtask."""
        if self.verdict is Verdict.SANDBOX_ERROR:
            return None
        if mode is ScoringMode.FRACTION:
            return self.passed / self.total if self.total else 0.0
        if mode in (ScoringMode.SUBTASKS, ScoringMode.SUBTASK_TESTS):
            return subtask_score(self.tests, subtasks or (Subtask(1.0, tuple(range(self.total))),), mode)
        return 1.0 if self.verdict is Verdict.PASSED else 0.0

    @classmethod
    def from_tests(cls, tests: tuple[TestResult, ...], wall_time_s: float = 0.0) -> ProgramResult:
        return cls(verdict=program_verdict(tests), tests=tests, wall_time_s=wall_time_s)

    @classmethod
    def sandbox_error(cls, n_tests: int, detail: str) -> ProgramResult:
        """Every test marked SANDBOX_ERROR: the infrastructure, not the program, failed."""
        test = TestResult(Verdict.SANDBOX_ERROR, 0.0, detail[:MAX_DETAIL_BYTES])
        return cls(verdict=Verdict.SANDBOX_ERROR, tests=(test,) * n_tests)


MAX_DETAIL_BYTES = 4096


def subtask_score(tests: tuple[TestResult, ...], subtasks: tuple[Subtask, ...], mode: ScoringMode) -> float:
    """Points earned over total points: a subtask earns its points when every one of its tests
    passed (SUBTASKS), or its points times the share of its tests that passed (SUBTASK_TESTS)."""
    total = sum(s.points for s in subtasks)
    if total <= 0:
        return 0.0
    earned = 0.0
    for subtask in subtasks:
        passed = sum(tests[i].verdict is Verdict.PASSED for i in subtask.tests if i < len(tests))
        if mode is ScoringMode.SUBTASKS:
            earned += subtask.points if subtask.tests and passed == len(subtask.tests) else 0.0
        elif subtask.tests:
            earned += subtask.points * passed / len(subtask.tests)
    return earned / total


def program_verdict(tests: tuple[TestResult, ...]) -> Verdict:
    verdicts = [t.verdict for t in tests]
    if Verdict.SANDBOX_ERROR in verdicts:
        return Verdict.SANDBOX_ERROR
    for v in verdicts:
        if v in _PROGRAM_FAULTS:
            return v
    return Verdict.PASSED
