"""The gVisor runtime (`runsc`, Debian's package, ptrace platform): the same runner works
under it. Experimental: these tests cover verdicts and the main hacks; see the README for
what is known not to hold yet under gVisor."""

from __future__ import annotations

import pytest

from sandboxes.pool import SandboxPool
from sandboxes.types import AssertTest, Verdict

from .helpers import ADD_TESTS, GOOD_ADD, assert_pool_healthy, call, io, problem
from .test_sandbox_attacks import ALWAYS_EQUAL, EARLY_EXITS, WRONG_ANSWER_TEST

pytestmark = [pytest.mark.docker, pytest.mark.gvisor]


@pytest.fixture
def runtime() -> str:
    return "runsc"


async def test_the_three_test_forms_under_gvisor(pool: SandboxPool) -> None:
    program = (
        "import sys\ndef add(a, b):\n    return a + b\nif __name__ == '__main__':\n    print(add(*map(int, sys.stdin.read().split())))\n"
    )
    checks = problem(*ADD_TESTS, io("2 3", "5"), call([2, 3], 5), call([2, 3], 6), entry_point="add")
    result = await pool.run(checks, program)
    assert [t.verdict for t in result.tests] == [Verdict.PASSED] * 4 + [Verdict.FAILED]


async def test_a_timeout_under_gvisor_leaves_the_pool_healthy(pool: SandboxPool) -> None:
    result = await pool.run(problem(AssertTest("pass")), "import time\ntime.sleep(60)\n")
    assert result.verdict is Verdict.TIMEOUT
    await assert_pool_healthy(pool)


@pytest.mark.parametrize("attack", ["os._exit(0)", "exit inside the function"])
async def test_early_exit_does_not_pass_under_gvisor(pool: SandboxPool, attack: str) -> None:
    result = await pool.run(problem(WRONG_ANSWER_TEST), EARLY_EXITS[attack])
    assert result.verdict is Verdict.RUNTIME_ERROR


async def test_always_equal_does_not_pass_under_gvisor(pool: SandboxPool) -> None:
    result = await pool.run(problem(WRONG_ANSWER_TEST, call([], 42), entry_point="answer"), ALWAYS_EQUAL)
    assert [t.verdict for t in result.tests] == [Verdict.FAILED, Verdict.FAILED]
    assert (await pool.run(problem(*ADD_TESTS), GOOD_ADD)).verdict is Verdict.PASSED
