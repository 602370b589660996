"""The generated `basics` problems (trainer_client/basics.py): the same on every call, held-out
families never trained on, every reference solution passes its tests in the sandbox, and a
function that only knows the example shown in the prompt does not."""

from __future__ import annotations

import asyncio

import pytest

from reward_server.convert import to_problem
from sandboxes.pool import SandboxPool
from sandboxes.types import Verdict
from trainer_client import basics
from trainer_client.data import load_problems


def test_instances_are_a_function_of_the_seed_and_distinct() -> None:
    first, second = basics.basics_records("train"), basics.basics_records("train")
    assert first == second
    ids = [r["id"] for r in first]
    assert len(ids) == len(set(ids)) == (len(basics.FAMILIES) - len(basics.HELDOUT_FAMILIES)) * basics.TRAIN_INSTANCES
    examples = [r["tests"][0] for r in first]
    assert len(examples) == len(set(examples)), "two instances show the same example test"
    assert all(len(set(r["tests"])) == len(r["tests"]) >= 3 for r in first)


def test_heldout_families_are_never_trained_on() -> None:
    train = {r["entry_point"] for r in basics.basics_records("train")}
    heldout = {r["entry_point"] for r in basics.basics_records("heldout")}
    assert heldout == set(basics.HELDOUT_FAMILIES)
    assert not train & heldout
    assert basics.HELDOUT_FAMILIES <= {f.name for f in basics.FAMILIES}


def test_no_answer_covers_more_than_half_the_tests() -> None:
    """Otherwise a constant (`return False`, `return 21`) would earn partial or whole credit."""
    for part in ("train", "heldout"):
        for record in basics.basics_records(part):
            answers = [t.rsplit("== ", 1)[-1] for t in record["tests"]]
            assert max(answers.count(a) for a in answers) <= (len(answers) + 1) // 2, record["id"]


def test_load_problems_joins_sources_with_plus() -> None:
    joined = load_problems("basics-heldout+humaneval-demo-heldout")
    assert len(joined) == len(basics.basics_records("heldout")) + 82
    assert joined[0].id.startswith("basics/") and joined[-1].id.startswith("HumanEval/")
    with pytest.raises(ValueError, match="basics-heldout"):
        load_problems("basics-heldout+nonsense")


def test_instruction_shows_only_the_first_test() -> None:
    record = basics.basics_records("heldout")[0]
    text = basics.instruction(record)
    assert record["tests"][0] in text and f"`{record['entry_point']}(" in text
    assert not any(t in text for t in record["tests"][1:])


@pytest.mark.docker
async def test_references_pass_and_example_only_answers_fail(pool: SandboxPool) -> None:
    records = basics.basics_records("train") + basics.basics_records("heldout")
    problems = {p.id: to_problem(p.problem) for p in load_problems("basics+basics-heldout")}
    results = await asyncio.gather(*(pool.run(problems[r["id"]], r["reference"]) for r in records))
    failing = {
        r["id"]: [t.detail for t in res.tests if t.verdict is not Verdict.PASSED]
        for r, res in zip(records, results)
        if res.verdict is not Verdict.PASSED
    }
    assert failing == {}
    # A program that returns the example's answer whatever it is given, on every problem.
    memorised = []
    for record in records:
        expected = record["tests"][0].rsplit("== ", 1)[1] if "== " in record["tests"][0] else "None"
        memorised.append((record, f"def {record['entry_point']}(*args):\n    return {expected}\n"))
    cheats = await asyncio.gather(*(pool.run(problems[r["id"]], program) for r, program in memorised))
    assert [r["id"] for (r, _), result in zip(memorised, cheats) if result.verdict is Verdict.PASSED] == []
