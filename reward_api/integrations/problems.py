"""What the adapters share: a problem described by plain data (a dataset row, verl's
`ground_truth`) turned into a `Problem`, and a trainer's completion turned into the program.

Tests are given as in our JSONL problem format (`reward_api.types.parse_tests`); `parse_tests`
and `auto_fail_fast` live in `reward_api.types` and can be imported from here too.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from codereward.v1 import reward_pb2 as pb
from reward_api import codec
from reward_api.extract import extract_code, prompt_setup
from reward_api.types import ScoringMode, make_problem, parse_tests
from reward_api.types import auto_fail_fast as auto_fail_fast  # re-exported (module docstring)

SCORING_MODES: tuple[str, ...] = typing.get_args(ScoringMode)

Extractor = Callable[[str, str, str], str]
"""(completion text, entry point, prompt prefix) -> program; `extract_code` by default."""


def problem_from_spec(spec: Any, *, field: str = "ground_truth") -> tuple[pb.Problem, str, str]:
    """(problem, entry point, prompt prefix) from a problem spec: an object with `tests` and
    optional `id`, `entry_point`, `setup_code`, `prompt_prefix`, `time_limit_s`, `memory_limit_mb`,
    `language` (python, cpp, java, javascript: the others take io tests), `output_check`
    ({"mode": "LINES" | "EXACT" | "TOKENS" | "FLOATS", "abs_tolerance", "rel_tolerance"}: how an
    io test's stdout is compared), `subtasks` ([{"points", "tests": [indices], "name"}], for
    the SUBTASKS modes) and `checker` ({"language", "code", "protocol": "TESTLIB" | "OPEN_R1"}:
    a program that judges each io test's output instead) (or its JSON text), or a bare list of
    tests."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError as exc:
            raise ValueError(f"{field}: not JSON ({exc}); expected a problem spec or a list of tests") from None
    if not isinstance(spec, Mapping):
        spec = {"tests": spec}
    if spec.get("tests") is None:
        raise ValueError(f"{field}: missing `tests` (keys: {sorted(spec)})")
    entry_point = str(spec.get("entry_point") or "")
    prefix = str(spec.get("prompt_prefix") or "")
    tests = parse_tests(spec["tests"], f"{field}.tests")
    # What the prompt defines besides the entry point (HumanEval's helpers) is trusted setup:
    # the tests read it from there, never from the program.
    setup_code = str(spec.get("setup_code") or "") + (prompt_setup(prefix, entry_point) if prefix and entry_point else "")
    names = spec.get("program_names")
    if names is None and entry_point:  # the classes the tests build (MBPP's `Pair`): the program's
        try:
            names = codec.program_names([t.assert_code for t in tests if t.WhichOneof("kind") == "assert_code"], setup_code, entry_point)
        except SyntaxError:
            names = ()
    problem = make_problem(
        str(spec.get("id") or ""),
        tests,
        entry_point=entry_point,
        setup_code=setup_code,
        program_names=[str(n) for n in names or ()],
        time_limit_s=float(spec.get("time_limit_s") or 0.0),
        memory_limit_mb=int(spec.get("memory_limit_mb") or 0),
        language=str(spec.get("language") or "python"),
        output_check=_output_check(spec.get("output_check"), f"{field}.output_check"),
    )
    problem.subtasks.extend(_subtasks(spec.get("subtasks"), f"{field}.subtasks"))
    checker = _checker(spec.get("checker"), f"{field}.checker")
    if checker is not None:
        problem.checker.CopyFrom(checker)
    return problem, entry_point, prefix


def _checker(value: Any, field: str) -> pb.Checker | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("code"), str):
        raise ValueError(f"{field}: expected an object such as {{\"language\": \"cpp\", \"code\": \"...\", \"protocol\": \"TESTLIB\"}}, got {value!r}")
    unknown = sorted(set(value) - {"language", "code", "protocol"})
    if unknown:
        raise ValueError(f"{field}: unknown keys {unknown} (known: language, code, protocol)")
    protocol = str(value.get("protocol") or "").upper()
    protocols = [name for name in pb.Checker.Protocol.keys() if name != "PROTOCOL_UNSPECIFIED"]
    if protocol not in protocols:
        raise ValueError(f"{field}.protocol={value.get('protocol')!r}: choose one of {', '.join(protocols)}")
    return pb.Checker(language=str(value.get("language") or "python"), code=value["code"], protocol=pb.Checker.Protocol.Value(protocol))


def _output_check(value: Any, field: str) -> pb.OutputCheck | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{field}: expected an object such as {{\"mode\": \"FLOATS\", \"abs_tolerance\": 1e-6}}, got {value!r}")
    unknown = sorted(set(value) - {"mode", "abs_tolerance", "rel_tolerance"})
    if unknown:
        raise ValueError(f"{field}: unknown keys {unknown} (known: mode, abs_tolerance, rel_tolerance)")
    mode = str(value.get("mode") or "LINES").upper()
    modes = list(pb.OutputCheck.Mode.keys())
    if mode not in modes:
        raise ValueError(f"{field}.mode={value.get('mode')!r}: choose one of {', '.join(modes)}")
    try:
        tolerances = {k: float(value.get(k) or 0.0) for k in ("abs_tolerance", "rel_tolerance")}
    except (TypeError, ValueError):
        raise ValueError(f"{field}: abs_tolerance and rel_tolerance must be numbers, got {dict(value)!r}") from None
    return pb.OutputCheck(mode=pb.OutputCheck.Mode.Value(mode), **tolerances)


def _subtasks(value: Any, field: str) -> list[pb.Subtask]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{field}: expected a list of {{\"points\", \"tests\"}} objects, got {value!r}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or "points" not in item or "tests" not in item:
            raise ValueError(f"{field}[{i}]: expected {{\"points\": P, \"tests\": [indices], \"name\": optional}}, got {item!r}")
        try:
            points, tests = float(item["points"]), [int(t) for t in item["tests"]]
        except (TypeError, ValueError):
            raise ValueError(f"{field}[{i}]: points must be a number and tests a list of test indices, got {dict(item)!r}") from None
        out.append(pb.Subtask(points=points, tests=tests, name=str(item.get("name") or "")))
    return out


def completion_text(completion: Any) -> str:
    """The answer in a completion: a string as is; for a conversation (a list of messages, as TRL
    gives for chat datasets), the text of the last assistant message."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        for message in reversed(completion):
            if isinstance(message, Mapping) and message.get("role", "assistant") == "assistant":
                return _content_text(message.get("content"))
        return ""
    raise TypeError(f"completion: expected a string or a list of messages, got {type(completion).__name__}")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # Content blocks: [{"type": "text", "text": ...}, {"type": "image", ...}]
    return "".join(str(block.get("text") or "") for block in content if isinstance(block, Mapping) and block.get("type", "text") == "text")


def check_mode(mode: str) -> str:
    if mode not in SCORING_MODES:
        raise ValueError(f"mode={mode!r}: use ALL_OR_NOTHING (1 only when every test passes) or FRACTION (passed / total)")
    return mode


def default_extract(text: str, entry_point: str, prompt_prefix: str, language: str = "python") -> str:
    """The trainer's own extraction (fences, several blocks, bare code, body-only answers);
    for another language, the fenced block of that language."""
    return extract_code(text, entry_point, prompt_prefix, language=language)


def program_of(extract: Extractor, text: str, problem: pb.Problem, entry_point: str, prefix: str) -> str:
    """The program of a completion: the default extraction knows the problem's language; a
    user's extractor is called as documented (text, entry point, prefix)."""
    if extract is default_extract:
        return default_extract(text, entry_point, prefix, language=problem.language or "python")
    return extract(text, entry_point, prefix)
