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
