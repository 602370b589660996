"""What the adapters share: a problem described by plain data (a dataset row, verl's
`ground_truth`) turned into a `Problem`, and a trainer's completion turned into the program.

The test specification is the one of our JSONL problem format (see `trainer_client.data`):

    [{"assert": "assert add(1, 2) == 3"},
     {"call": {"args": [2, 3], "expected": 5}},
     {"io": {"stdin": "2 3\\n", "expected_stdout": "5\\n"}},
     "assert add(0, 0) == 0"]                   # a bare string is an assert test (MBPP's test_list)

given as a list or as its JSON text. Keys whose value is None are ignored, so rows that went
through Arrow (which fills the other branches of a union with nulls) read the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from codereward.v1 import reward_pb2 as pb
from reward_api import codec
from reward_api.extract import extract_code, prompt_setup
from reward_api.types import assert_test, call_test, io_test, make_problem

SCORING_MODES = ("ALL_OR_NOTHING", "FRACTION")

Extractor = Callable[[str, str, str], str]
"""(completion text, entry point, prompt prefix) -> program; `extract_code` by default."""


def parse_tests(spec: Any, field: str = "tests") -> list[pb.TestCase]:
    """Test cases from a spec (module docstring); errors name `field` and the offending index."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError as exc:
            raise ValueError(f"{field}: a string must be the JSON text of a list of tests ({exc})") from None
    if isinstance(spec, Mapping) or not isinstance(spec, Sequence) or isinstance(spec, (str, bytes)):
        raise ValueError(f"{field}: expected a list of tests, got {type(spec).__name__}")
    if not spec:
        raise ValueError(f"{field}: no tests (a problem needs at least one)")
    return [_test(item, f"{field}[{i}]") for i, item in enumerate(spec)]


def _test(item: Any, where: str) -> pb.TestCase:
    if isinstance(item, str):
        return assert_test(item)
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: expected a string or an object, got {type(item).__name__}")
    present = {k: v for k, v in item.items() if v is not None}
    try:
        if "assert" in present:
            return assert_test(str(present["assert"]))
        if "call" in present:
            call = present["call"]
            return call_test(_json_or_value(call["args"]), _json_or_value(call["expected"]))
        if "io" in present:
            return io_test(str(present["io"]["stdin"]), str(present["io"]["expected_stdout"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{where}: missing field {exc}") from None
    raise ValueError(f"{where}: a test needs one of assert, call, io; got {sorted(present)}")


def _json_or_value(value: Any) -> Any:
    """`args` / `expected` may be given as JSON text (the only way Arrow stores mixed types)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def problem_from_spec(spec: Any, *, field: str = "ground_truth") -> tuple[pb.Problem, str, str]:
    """(problem, entry point, prompt prefix) from a problem spec: an object with `tests` and
    optional `id`, `entry_point`, `setup_code`, `prompt_prefix`, `time_limit_s`, `memory_limit_mb`
    (or its JSON text), or a bare list of tests."""
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
    )
    return problem, entry_point, prefix


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


def auto_fail_fast(mode: str, fail_fast: bool | None) -> bool:
    """`fail_fast` as given, or by default on with ALL_OR_NOTHING: the reward and the program's
    verdict are the same, and the tests after a failure (a hang costs its time limit each) are
    not run."""
    return mode == "ALL_OR_NOTHING" if fail_fast is None else fail_fast


def default_extract(text: str, entry_point: str, prompt_prefix: str) -> str:
    """The trainer's own extraction (fences, several blocks, bare code, body-only answers)."""
    return extract_code(text, entry_point, prompt_prefix)
