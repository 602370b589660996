"""Small builders shared by the tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sandboxes.pool import SandboxPool
from sandboxes.types import AssertTest, CallTest, IoTest, Limits, Problem, TestCase, Verdict

GOOD_ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS: tuple[TestCase, ...] = (AssertTest("assert add(1, 2) == 3"), AssertTest("assert add(-1, 1) == 0"))


def problem(*tests: TestCase, entry_point: str = "", setup_code: str = "", limits: Limits | None = None) -> Problem:
    return Problem(id="t", tests=tests, entry_point=entry_point, setup_code=setup_code, limits=limits or Limits())


def call(args: list[Any], expected: Any) -> CallTest:
    return CallTest(args_json=json.dumps(args), expected_json=json.dumps(expected))


def io(stdin: str, expected: str) -> IoTest:
    return IoTest(stdin=stdin, expected_stdout=expected)


async def assert_pool_healthy(pool: SandboxPool) -> None:
    """The pool still gives the right answers, both ways, on every container."""
    good = problem(*ADD_TESTS)
    results = await asyncio.gather(*(pool.run(good, GOOD_ADD) for _ in range(2 * pool.config.workers)))
    assert all(r.verdict is Verdict.PASSED for r in results), results
    wrong = await pool.run(good, "def add(a, b):\n    return a - b\n")
    assert wrong.verdict is Verdict.FAILED, wrong


LEFTOVER_PROBE = """\
import os, time
time.sleep(0.2)
def uid(pid):  # the judge, older than any program's process, runs under its own uid
    try:
        return int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("Uid:")).split()[1])
    except OSError:
        return -1
def others():  # the program's, older than this process: newer ones are the runner's next spare
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and 1 < int(p) < os.getpid() and uid(p) == os.getuid())
"""


async def assert_nothing_left(pool: SandboxPool) -> None:
    """The next job on the same container finds no process of an earlier program's uid and
    no file it planted (`/tmp/job/tampered`)."""
    checks = problem(AssertTest("assert others() == []"), AssertTest("import os\nassert not os.path.exists('/tmp/job/tampered')"))
    result = await pool.run(checks, LEFTOVER_PROBE)
    assert result.verdict is Verdict.PASSED, [t.detail for t in result.tests]


def parse_metrics(text: str) -> dict[str, float]:
    """Our samples in a Prometheus text exposition: `name{labels}` -> value."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("codereward_"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def tiny_llama(vocab_size: int, **overrides: Any) -> Any:
    """A randomly initialised model of SmolLM2's architecture (Llama), two layers of width 32:
    real forward and backward passes in milliseconds. Seed torch first for repeatable weights."""
    import transformers

    sizes: dict[str, Any] = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    return transformers.AutoModelForCausalLM.from_config(transformers.LlamaConfig(vocab_size=vocab_size, **{**sizes, **overrides}))
