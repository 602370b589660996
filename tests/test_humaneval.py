"""All 164 HumanEval canonical solutions pass in the sandbox; the same functions returning
None all fail. (The speed of this is measured in bench/, not asserted here.)"""

from __future__ import annotations

import asyncio

import pytest

from sandboxes.datasets import humaneval_tasks
from sandboxes.pool import SandboxPool
from sandboxes.types import Verdict

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
