"""Competitive-programming datasets as problems: CodeContests (DeepMind), TACO and APPS,
LiveCodeBench (code generation) and open-r1's Codeforces, read from local files (JSONL, JSON,
Parquet) or through `datasets.load_dataset` for hub names.

Each row becomes a `ContestProblem`: the contract's `pb.Problem` (io tests for stdin/stdout
problems; for call-based ones, Python assert tests that call the function or the LeetCode-style
`Solution().method`), the statement a model is shown, and the dataset's reference (and known
wrong) solutions where it has them. Rows that cannot be judged faithfully are skipped with a
reason (`Skipped`), never judged approximately: interactive problems, rows without tests.
open-r1 Codeforces' `generated_checker` (problems with more than one right answer) becomes the
problem's checker (Python, its OPEN_R1 protocol).

Formats (the fields read; other fields are ignored):
- codecontests: name, description, public_tests / private_tests / generated_tests
  ({"input": [...], "output": [...]}), solutions / incorrect_solutions ({"language": [id],
  "solution": [...]}, ids 1 Python 2, 2 C++, 3 Python 3, 4 Java), time_limit ({"seconds",
  "nanos"}), memory_limit_bytes.
- taco / apps: question, starter_code, input_output (JSON text: {"inputs", "outputs",
  "fn_name"?}), solutions (JSON text: a list of Python programs), time_limit ("2 seconds"),
  memory_limit ("256 megabytes") where TACO has them.
- livecodebench: question_title, question_content, starter_code, public_test_cases and
  private_test_cases (JSON text, the private ones possibly compressed as LiveCodeBench ships
  them: base64 of zlib of a pickled string, read here without running any pickled code),
  metadata (JSON text: {"func_name"}); test cases {"input", "output", "testtype": "stdin" |
  "functional"}.
- codeforces: id, title, description, input_format, output_format, note, examples and
  official_tests ([{"input", "output"}]), time_limit (seconds), memory_limit (MB),
  generated_checker, interaction_format, input_mode.
"""

from __future__ import annotations

import base64
import collections
import io
import json
import pickle
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codereward.v1 import reward_pb2 as pb

from .datasets import read_jsonl
from .types import assert_test, io_test, make_problem

LANGUAGES = ("python", "cpp", "java", "javascript")
MAX_TESTS = 256  # the server's default `max_tests`
MAX_TEST_BYTES = 64 * 1024  # the server's default `max_test_bytes`: larger tests are left out
MAX_MEMORY_MB = 512  # the server's largest memory limit by default (SandboxConfig.max_limits)
MAX_TIME_S = 30.0
# What call-based Python answers assume is imported (LeetCode's and LiveCodeBench's harnesses do the same).
CALL_SETUP = "from typing import *\nimport collections, heapq, bisect, itertools, functools, math, string, re\nfrom collections import *\n"


class Skipped(ValueError):
    """A row that cannot be judged faithfully; the message says why."""


@dataclass(frozen=True)
class ContestProblem:
    problem: pb.Problem
    statement: str
    starter_code: str = ""
    call: str = ""  # call-based problems: the function (or `Solution().method`) the tests call
    solutions: tuple[tuple[str, str], ...] = ()  # (language, program) known to be accepted
    wrong_solutions: tuple[tuple[str, str], ...] = ()  # (language, program) known to be rejected
    dropped_tests: int = 0  # tests left out: over MAX_TEST_BYTES, or past MAX_TESTS


def _text(value: Any) -> str:
    """A test's input or output: datasets store a string, or a list of lines."""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value) + ("\n" if value else "")
    return "" if value is None else str(value)


def _io_problem(
    id: str, pairs: Iterable[tuple[Any, Any]], language: str, time_limit_s: float = 0.0, memory_limit_mb: int = 0
) -> tuple[pb.Problem, int]:
    tests: list[pb.TestCase] = []
    dropped = 0
    for stdin, expected in pairs:
        stdin, expected = _text(stdin), _text(expected)
        if len(stdin.encode()) + len(expected.encode()) > MAX_TEST_BYTES or len(tests) >= MAX_TESTS:
            dropped += 1
            continue
        tests.append(io_test(stdin, expected))
    if not tests:
        raise Skipped("no test fits the server's limits" if dropped else "no tests")
    limits = {"time_limit_s": min(time_limit_s, MAX_TIME_S), "memory_limit_mb": min(memory_limit_mb, MAX_MEMORY_MB)}
    return make_problem(id, tests, language=language, **limits), dropped  # type: ignore[arg-type]


def _call_problem(id: str, call: str, cases: Iterable[tuple[list[Any], Any, bool]], language: str) -> tuple[pb.Problem, int]:
    """Assert tests `call(*args) == expected`; `lenient`: APPS's rule, where an expected list of
    one value also takes that value, and a tuple answer equals a list."""
    if language != "python":
        raise Skipped(f"call-based problem: only Python answers can be called, not {language}")
    tests: list[pb.TestCase] = []
    dropped = 0
    for args, expected, lenient in cases:
        code = f"_result = {call}(*{args!r})\n_expected = {expected!r}\n"
        if lenient:
            code += (
                "if isinstance(_result, tuple):\n    _result = list(_result)\n"
                "assert _result == _expected or (isinstance(_expected, list) and len(_expected) == 1 and _result == _expected[0]), "
                "f'expected {_expected!r}, got {_result!r}'\n"
            )
        else:
            code += "assert _result == _expected, f'expected {_expected!r}, got {_result!r}'\n"
        if len(code.encode()) > MAX_TEST_BYTES or len(tests) >= MAX_TESTS:
            dropped += 1
            continue
        tests.append(assert_test(code))
    if not tests:
        raise Skipped("no test fits the server's limits" if dropped else "no tests")
    return make_problem(id, tests, setup_code=CALL_SETUP), dropped


def _caller(starter_code: str, name: str) -> str:
    return f"Solution().{name}" if re.search(r"^\s*class\s+Solution\b", starter_code or "", re.MULTILINE) else name


# -- CodeContests ----------------------------------------------------------------------------------

CODECONTESTS_LANGUAGES = {1: "python2", 2: "cpp", 3: "python", 4: "java"}


def _pairs(tests: Any) -> list[tuple[Any, Any]]:
    if not tests:
        return []
    return list(zip(tests.get("input") or [], tests.get("output") or []))


def _solutions(value: Any) -> tuple[tuple[str, str], ...]:
    if not value:
        return ()
    names = [CODECONTESTS_LANGUAGES.get(int(v), "unknown") for v in value.get("language") or []]
    return tuple((n, s) for n, s in zip(names, value.get("solution") or []) if n in LANGUAGES)


def codecontests_problem(row: dict[str, Any], language: str = "python") -> ContestProblem:
    pairs = _pairs(row.get("public_tests")) + _pairs(row.get("private_tests")) + _pairs(row.get("generated_tests"))
    limit = row.get("time_limit") or {}
    time_s = float(limit.get("seconds") or 0) + float(limit.get("nanos") or 0) / 1e9
    memory_mb = int(row.get("memory_limit_bytes") or 0) // (1024 * 1024)
    problem, dropped = _io_problem(f"codecontests/{row['name']}", pairs, language, time_s, memory_mb)
    return ContestProblem(
        problem,
        str(row.get("description") or ""),
        solutions=_solutions(row.get("solutions")),
        wrong_solutions=_solutions(row.get("incorrect_solutions")),
        dropped_tests=dropped,
    )


# -- TACO / APPS ------------------------------------------------------------------------------------


def _json_field(row: dict[str, Any], name: str, default: Any) -> Any:
    value = row.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise Skipped(f"{name} is not JSON") from None
    return value


def _seconds(text: Any) -> float:
    match = re.search(r"([\d.]+)\s*(?:s\b|sec|second)", str(text or ""))
    return float(match.group(1)) if match else 0.0


def _megabytes(text: Any) -> int:
    match = re.search(r"(\d+)\s*(?:mb\b|megabyte|mib)", str(text or ""), re.IGNORECASE)
    return int(match.group(1)) if match else 0


def taco_problem(row: dict[str, Any], language: str = "python") -> ContestProblem:
    """A TACO or APPS row (the two share their fields)."""
    spec = _json_field(row, "input_output", {})
    inputs, outputs = spec.get("inputs") or [], spec.get("outputs") or []
    starter = str(row.get("starter_code") or "")
    solutions = tuple(("python", str(s)) for s in _json_field(row, "solutions", []))
    row_id = row.get("problem_id", row.get("id", row.get("name", "")))
    id = f"taco/{row_id}"
    if spec.get("fn_name"):
        call = _caller(starter, str(spec["fn_name"]))
        problem, dropped = _call_problem(id, call, ((list(a), e, True) for a, e in zip(inputs, outputs)), language)
    else:
        problem, dropped = _io_problem(id, zip(inputs, outputs), language, _seconds(row.get("time_limit")), _megabytes(row.get("memory_limit")))
        call = ""
    return ContestProblem(problem, str(row.get("question") or ""), starter, call, solutions, dropped_tests=dropped)


# -- LiveCodeBench ----------------------------------------------------------------------------------


class _StringsOnly(pickle.Unpickler):
    """LiveCodeBench's private tests are a pickled string: nothing but plain data is read."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset")


def _test_cases(value: Any) -> list[dict[str, Any]]:
    if not value:
        return []
    if isinstance(value, list):
        return value
    try:
        return list(json.loads(value))
    except ValueError:
        pass
    try:
        text = _StringsOnly(io.BytesIO(zlib.decompress(base64.b64decode(value)))).load()
        return list(json.loads(text))
    except Exception as exc:  # noqa: BLE001 — a corrupt field: the row is skipped, saying why
        raise Skipped(f"private_test_cases could not be read ({type(exc).__name__})") from None


def livecodebench_problem(row: dict[str, Any], language: str = "python") -> ContestProblem:
    cases = _test_cases(row.get("public_test_cases")) + _test_cases(row.get("private_test_cases"))
    starter = str(row.get("starter_code") or "")
    id = f"livecodebench/{row.get('question_id', row.get('question_title', ''))}"
    statement = str(row.get("question_content") or "")
    if any(c.get("testtype") == "functional" for c in cases):
        name = str(_json_field(row, "metadata", {}).get("func_name") or "")
        if not name:
            raise Skipped("functional tests without metadata.func_name")
        call = _caller(starter, name)

        def parsed() -> Iterable[tuple[list[Any], Any, bool]]:
            for case in cases:
                try:
                    args = [json.loads(line) for line in str(case["input"]).split("\n") if line.strip()]
                    yield args, json.loads(case["output"]), False
                except ValueError:
                    raise Skipped("a functional test is not JSON") from None

        problem, dropped = _call_problem(id, call, parsed(), language)
        return ContestProblem(problem, statement, starter, call, dropped_tests=dropped)
    problem, dropped = _io_problem(id, ((c.get("input"), c.get("output")) for c in cases), language)
    return ContestProblem(problem, statement, starter, dropped_tests=dropped)


# -- open-r1 Codeforces -----------------------------------------------------------------------------


def codeforces_problem(row: dict[str, Any], language: str = "python") -> ContestProblem:
    if row.get("interaction_format"):
        raise Skipped("interactive problem")
    if row.get("input_mode") not in (None, "", "stdio"):
        raise Skipped(f"reads files ({row.get('input_mode')}), not stdin")
    tests = row.get("official_tests") or row.get("examples") or []
    pairs = [(t.get("input"), t.get("output")) for t in tests]
    time_s, memory_mb = float(row.get("time_limit") or 0), int(float(row.get("memory_limit") or 0))
    problem, dropped = _io_problem(f"codeforces/{row.get('id', '')}", pairs, language, time_s, memory_mb)
    if row.get("generated_checker"):  # more than one right answer: open-r1's Python checker judges
        problem.checker.CopyFrom(pb.Checker(language="python", code=str(row["generated_checker"]), protocol=pb.Checker.OPEN_R1))
    parts = [row.get("title"), row.get("description"), _section("Input", row.get("input_format")), _section("Output", row.get("output_format"))]
    for number, example in enumerate(row.get("examples") or [], start=1):
        parts.append(f"Example {number}\nInput:\n{_text(example.get('input'))}Output:\n{_text(example.get('output'))}")
    parts.append(_section("Note", row.get("note")))
    return ContestProblem(problem, "\n\n".join(str(p).strip() for p in parts if p), dropped_tests=dropped)


def _section(title: str, text: Any) -> str:
    return f"{title}\n{text}" if text else ""


# -- reading rows -----------------------------------------------------------------------------------

FORMATS: dict[str, Callable[[dict[str, Any], str], ContestProblem]] = {
    "codecontests": codecontests_problem,
    "taco": taco_problem,
    "apps": taco_problem,
    "livecodebench": livecodebench_problem,
    "codeforces": codeforces_problem,
}


def load_rows(source: str, split: str = "train") -> list[dict[str, Any]]:
    """Rows from a local .jsonl, .json (a list) or .parquet file, or a `datasets.load_dataset`
    name (a hub dataset, or a local dataset folder) with `split`."""
    path = Path(source)
    if path.is_file():
        if path.suffix == ".jsonl":
            return [dict(r) for r in read_jsonl(path)]
        if path.suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise ValueError(f"{source}: expected a JSON list of rows")
            return [dict(r) for r in rows]
    elif source.endswith((".jsonl", ".json", ".parquet")):
        raise ValueError(f"{source}: no such file")
    try:
        import datasets
    except ImportError:
        raise ValueError(f"{source}: reading it needs `pip install datasets`") from None
    try:
        if path.is_file():  # parquet
            loaded = datasets.load_dataset("parquet", data_files=str(path), split="train")
        else:
            loaded = datasets.load_dataset(source, split=split)
    except Exception as exc:  # noqa: BLE001 — datasets raises many kinds; the message says which
        raise ValueError(f"{source}: datasets.load_dataset failed: {exc}") from None
    return [dict(r) for r in loaded]


def contest_problems(
    format: str, rows: Sequence[dict[str, Any]], language: str = "python"
) -> tuple[list[ContestProblem], collections.Counter[str]]:
    """The rows' problems in `language`, and how many rows were skipped for each reason."""
    if format not in FORMATS:
        raise ValueError(f"dataset format {format!r}: use one of {', '.join(FORMATS)}")
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r}: use one of {', '.join(LANGUAGES)}")
    problems, skipped = [], collections.Counter[str]()
    for row in rows:
        try:
            problems.append(FORMATS[format](row, language))
        except Skipped as reason:
            skipped[str(reason)] += 1
        except (KeyError, TypeError, AttributeError) as exc:
            skipped[f"malformed row ({type(exc).__name__}: {exc})"] += 1
    return problems, skipped


FENCES = {"python": "python", "cpp": "cpp", "java": "java", "javascript": "javascript"}
LANGUAGE_NAMES = {"python": "Python 3", "cpp": "C++17", "java": "Java (class Main)", "javascript": "JavaScript (Node.js)"}


def instruction(problem: ContestProblem, language: str = "python") -> str:
    """What a model is asked: the statement, then how to answer."""
    fence = FENCES[language]
    if problem.call:
        return (
            f"{problem.statement.strip()}\n\nComplete this code; the tests call `{problem.call}`:\n"
            f"```python\n{problem.starter_code.rstrip()}\n```\nAnswer with the complete code in one ```python code block."
        )
    return (
        f"{problem.statement.strip()}\n\nWrite a {LANGUAGE_NAMES[language]} program that reads the input from standard input "
        f"and writes the answer to standard output. Answer with the whole program in one ```{fence} code block."
    )


def contest_requests(
    problems: Sequence[ContestProblem],
    samples: dict[str, list[str]] | None = None,
    mode: str = "ALL_OR_NOTHING",
    language: str = "python",
    max_solutions: int = 8,
) -> Iterable[pb.ScoreRequest]:
    """One request per problem: with the samples given for its id, or with up to `max_solutions`
    of its reference solutions in `language` (problems with none are left out)."""
    from .types import make_request

    for contest in problems:
        problem_id = contest.problem.id
        if samples is not None:
            codes = samples.get(problem_id, [])
        else:
            codes = [code for lang, code in contest.solutions if lang == language][:max_solutions]
        if codes:
            yield make_request(contest.problem, codes, mode=mode, request_id=problem_id)
