"""Output comparison modes (exact, tokens, floats with tolerances) and subtask scoring (IOI's
all-tests-pass subtasks, per-test partial credit): the comparison and the scores against values
worked out by hand, the contract's validation of both, and one request of each over a real
server with real Docker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from codereward.v1 import reward_pb2 as pb
from reward_api.client import AsyncRewardClient, RewardServiceError
from reward_api.types import Verdict as ApiVerdict
from reward_api.types import io_test, make_problem, make_request
from reward_server.config import ServerConfig
from reward_server.convert import to_mode, to_problem
from reward_server.errors import InvalidRequest
from reward_server.server import RewardServer
from reward_server.validation import validate
from sandboxes.compare import compare_stdout
from sandboxes.config import SandboxConfig
from sandboxes.types import OutputCheck, OutputMode, ProgramResult, ScoringMode, Subtask, TestResult, Verdict

EXACT, TOKENS = OutputCheck(OutputMode.EXACT), OutputCheck(OutputMode.TOKENS)


def floats(abs_tol: float = 0.0, rel_tol: float = 0.0) -> OutputCheck:
    return OutputCheck(OutputMode.FLOATS, abs_tol, rel_tol)


def test_exact_is_byte_for_byte_and_points_at_the_first_difference() -> None:
    assert compare_stdout("1 2\n", "1 2\n", EXACT) is None
    assert compare_stdout("1 2\n", "1 2", EXACT) == "output differs at character 4 (line 1): expected '\\n', got ''"
    assert compare_stdout("a\nb\n", "a\nc\n", EXACT) == "output differs at character 3 (line 2): expected 'b\\n', got 'c\\n'"
    assert compare_stdout("7\n", "7.0\n", EXACT) is not None  # LINES would take it
    assert compare_stdout("7\n", "7.0\n") is None


def test_tokens_ignore_how_whitespace_splits_them_and_compare_text() -> None:
    assert compare_stdout("1 2\n3\n", "1\n2 3", TOKENS) is None
    assert compare_stdout("1 2 3\n", "1  2\t3\n\n", TOKENS) is None
    assert compare_stdout("1 2 3\n", "1 2\n", TOKENS) == "expected 3 tokens of output, got 2"
    assert compare_stdout("7\n", "7.0\n", TOKENS) == "token 1: expected '7', got '7.0'"
    assert compare_stdout("YES\n", "yes\n", TOKENS) is not None


def test_floats_take_either_tolerance_relative_to_the_expected_value() -> None:
    # |1.0 - 1.0005| = 5e-4: inside an absolute 1e-3, outside 1e-4.
    assert compare_stdout("1.0\n", "1.0005\n", floats(abs_tol=1e-3)) is None
    assert compare_stdout("1.0\n", "1.0005\n", floats(abs_tol=1e-4)) == "token 1: expected '1.0', got '1.0005'"
    # Relative to the expected value: 1e6 vs 1000999 differs by 999 = 9.99e-4 * 1e6.
    assert compare_stdout("1000000\n", "1000999\n", floats(rel_tol=1e-3)) is None
    assert compare_stdout("1000000\n", "1001001\n", floats(rel_tol=1e-3)) is not None
    # Either one suffices (testlib's doubleCompare): absolute 1e-9 fails, relative 1e-3 holds.
    assert compare_stdout("1000000\n", "1000999\n", floats(abs_tol=1e-9, rel_tol=1e-3)) is None
    # Exact arithmetic: 0.1 + 0.2 style rounding does not leak in; no float overflow on big tokens.
    assert compare_stdout("0.3\n", "0.30000000000000004\n", floats(abs_tol=1e-15)) is None
    assert compare_stdout("1e400\n", "1e400\n", floats(abs_tol=1e-6)) is None
    assert compare_stdout("1e400\n", "2e400\n", floats(rel_tol=0.1)) is not None
    # Words compare as text; a word never matches a number, nor "nan" anything but itself.
    assert compare_stdout("Case 1: 0.5\n", "Case 1: 0.5000001\n", floats(abs_tol=1e-6)) is None
    assert compare_stdout("nan\n", "0\n", floats(abs_tol=1e9)) is not None
    assert compare_stdout("1.5\n", "abc\n", floats(abs_tol=1e9)) is not None


def results(*verdicts: Verdict) -> ProgramResult:
    return ProgramResult.from_tests(tuple(TestResult(v) for v in verdicts))


P, F = Verdict.PASSED, Verdict.FAILED
SUBTASKS = (Subtask(20, (0, 1)), Subtask(30, (2, 3, 4)), Subtask(50, (0, 5)))


@pytest.mark.parametrize(
    ("verdicts", "ioi", "per_test"),
    [
        # Subtask 1 (20) and 3 (50) share test 0. Worked out by hand:
        ((P, P, P, P, P, P), 1.0, 1.0),
        ((P, P, F, P, P, P), 0.70, (20 + 30 * 2 / 3 + 50) / 100),
        ((F, P, P, P, P, P), 0.30, (20 / 2 + 30 + 50 / 2) / 100),
        ((P, F, P, P, F, F), 0.0, (20 / 2 + 30 * 2 / 3 + 50 / 2) / 100),
        ((F, F, F, F, F, F), 0.0, 0.0),
    ],
)
def test_subtask_scores_are_points_earned_over_total(verdicts: tuple[Verdict, ...], ioi: float, per_test: float) -> None:
    result = results(*verdicts)
    assert result.reward(ScoringMode.SUBTASKS, SUBTASKS) == pytest.approx(ioi)
    assert result.reward(ScoringMode.SUBTASK_TESTS, SUBTASKS) == pytest.approx(per_test)


def test_without_subtasks_the_problem_is_one_subtask_and_faults_stay_masked() -> None:
    assert results(P, P).reward(ScoringMode.SUBTASKS) == 1.0
    assert results(P, F).reward(ScoringMode.SUBTASKS) == 0.0
    assert results(P, F, P, P).reward(ScoringMode.SUBTASK_TESTS) == 0.75
    assert results(P, Verdict.SANDBOX_ERROR).reward(ScoringMode.SUBTASKS, (Subtask(1, (0,)),)) is None
    assert results(P, Verdict.SKIPPED).reward(ScoringMode.SUBTASKS, (Subtask(1, (0, 1)),)) == 0.0


def request(problem: pb.Problem, mode: str = "SUBTASKS") -> pb.ScoreRequest:
    return make_request(problem, ["print(1)"], mode=mode)


def with_check(**check: object) -> pb.ScoreRequest:
    return request(make_problem("p", [io_test("", "1\n")], output_check=pb.OutputCheck(**check)))  # type: ignore[arg-type]


def with_subtasks(*subtasks: tuple[float, list[int]], tests: int = 3) -> pb.ScoreRequest:
    return request(make_problem("p", [io_test("", "1\n")] * tests, subtasks=subtasks))


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (with_check(mode=pb.OutputCheck.FLOATS), "problem.output_check: FLOATS needs abs_tolerance or rel_tolerance above 0"),
        (with_check(mode=pb.OutputCheck.FLOATS, abs_tolerance=-1), "problem.output_check.abs_tolerance: -1.0 must be a finite number >= 0"),
        (with_check(mode=pb.OutputCheck.FLOATS, rel_tolerance=float("nan")), "problem.output_check.rel_tolerance: nan must be"),
        (with_check(mode=9), "problem.output_check.mode: 9 is not a mode; use one of LINES, EXACT, TOKENS, FLOATS"),
        (with_subtasks((1, [0, 3])), "problem.subtasks[0].tests[1]: 3 is not a test index (the problem has 3 tests)"),
        (with_subtasks((1, [0]), (2, [])), "problem.subtasks[1].tests: empty; a subtask needs at least one test"),
        (with_subtasks((1, [1, 1])), "problem.subtasks[0].tests[1]: test 1 is listed twice"),
        (with_subtasks((float("inf"), [0])), "problem.subtasks[0].points: inf must be a finite number >= 0"),
        (with_subtasks((0, [0]), (0, [1])), "problem.subtasks: the points add up to 0"),
    ],
)
def test_bad_checks_and_subtasks_are_refused_naming_the_field(req: pb.ScoreRequest, message: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        validate(req, ServerConfig(), SandboxConfig())
    assert str(error.value).startswith(message), str(error.value)


def test_the_contract_carries_checks_subtasks_and_modes_to_the_domain() -> None:
    req = request(
        make_problem(
            "p",
            [io_test("", "1\n")] * 3,
            output_check=pb.OutputCheck(mode=pb.OutputCheck.FLOATS, abs_tolerance=1e-6, rel_tolerance=1e-4),
            subtasks=[(40, [0]), (60, [1, 2])],
        ),
        mode="SUBTASK_TESTS",
    )
    validate(req, ServerConfig(), SandboxConfig())
    problem = to_problem(req.problem)
    assert problem.output_check == OutputCheck(OutputMode.FLOATS, 1e-6, 1e-4)
    assert problem.subtasks == (Subtask(40, (0,)), Subtask(60, (1, 2)))
    assert to_problem(make_problem("q", [io_test("", "")])).output_check == OutputCheck()
    assert [to_mode(v) for v in pb.ScoringMode.values()] == list(ScoringMode)


# -- over a real server ----------------------------------------------------------------------------

CIRCLE = """
import math
r = float(input())
print(f"{math.pi * r * r:.{DIGITS}f}")
"""


@pytest.fixture
async def client(fast_config: SandboxConfig) -> AsyncIterator[AsyncRewardClient]:
    server = RewardServer(ServerConfig(port=0, metrics_port=0, grace_s=5.0, sandbox=fast_config))
    await server.start()
    try:
        async with AsyncRewardClient(f"127.0.0.1:{server.port}", retry_timeout_s=2.0) as c:
            yield c
    finally:
        await server.stop(grace_s=0)


@pytest.mark.docker
async def test_float_answers_are_judged_by_the_problems_tolerance_over_the_wire(client: AsyncRewardClient) -> None:
    tests = [io_test("1\n", "3.14159265\n"), io_test("10\n", "314.159265\n")]
    check = pb.OutputCheck(mode=pb.OutputCheck.FLOATS, abs_tolerance=1e-4)
    programs = [CIRCLE.replace("DIGITS", "6"), CIRCLE.replace("DIGITS", "2")]  # 314.159265 vs 314.16: off by 7e-4
    group = await client.score_group(make_problem("circle", tests, output_check=check), programs, mode="FRACTION")
    assert group.rewards == [1.0, 0.0]
    assert group.results[1].tests[0].detail == "token 1: expected '3.14159265', got '3.14'"


@pytest.mark.docker
async def test_subtasks_score_over_the_wire_and_bad_ones_are_refused(client: AsyncRewardClient) -> None:
    # n -> n * 2, but the program is wrong for n >= 100: subtask 1 (small n, 30 points) passes.
    tests = [io_test(f"{n}\n", f"{2 * n}\n") for n in (1, 5, 100, 1000)]
    problem = make_problem("double", tests, subtasks=[(30, [0, 1]), (70, [1, 2, 3])])
    program = "n = int(input())\nprint(2 * n if n < 100 else n)\n"
    ioi = await client.score_group(problem, [program], mode="SUBTASKS")
    per_test = await client.score_group(problem, [program], mode="SUBTASK_TESTS")
    assert ioi.results[0].verdict is ApiVerdict.FAILED
    assert ioi.rewards == [pytest.approx(0.30)]
    assert per_test.rewards == [pytest.approx(0.30 + 0.70 / 3)]
    bad = make_problem("double", tests, subtasks=[(30, [0, 4])])
    with pytest.raises(RewardServiceError, match=r"problem.subtasks\[0\].tests\[1\]: 4 is not a test index"):
        await client.score_group(bad, [program], mode="SUBTASKS")
