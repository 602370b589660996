"""Output comparison, done on the host: expected outputs never enter the sandbox.

- `io` tests: stdout against the expected text, line by line, after stripping trailing
  whitespace from every line and dropping trailing blank lines. The number of lines must
  match. Integers compare exactly; other tokens that both parse as numbers are equal
  within a small tolerance.
- `call` tests: the program's return value (already converted to JSON inside the sandbox)
  against `expected_json`, as JSON values. Floats within tolerance; bool is never equal to
  a number (JSON keeps them apart even though Python's `True == 1`).
"""

from __future__ import annotations

import json
import math
from typing import Any

REL_TOL = 1e-6
ABS_TOL = 1e-9
_SNIPPET = 200


def _snip(text: str) -> str:
    return repr(text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…")


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _as_number(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value


def numbers_close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _as_int(token: str) -> int | None:
    try:
        return int(token)
    except ValueError:
        return None


def _tokens_equal(expected: str, actual: str) -> bool:
    """Equal text, equal integers, or (where either is not an integer) close floats."""
    if expected == actual:
        return True
    e_int, a_int = _as_int(expected), _as_int(actual)
    if e_int is not None and a_int is not None:
        return e_int == a_int
    e, a = _as_number(expected), _as_number(actual)
    return e is not None and a is not None and numbers_close(e, a)


def lines_equal(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    e_tokens, a_tokens = expected.split(), actual.split()
    return len(e_tokens) == len(a_tokens) and all(map(_tokens_equal, e_tokens, a_tokens))


def compare_stdout(expected: str, actual: str) -> str | None:
    """None when `actual` matches `expected`; otherwise a short description of the first difference."""
    e_lines, a_lines = _lines(expected), _lines(actual)
    for number, (e, a) in enumerate(zip(e_lines, a_lines), start=1):
        if not lines_equal(e, a):
            return f"line {number}: expected {_snip(e)}, got {_snip(a)}"
    if len(e_lines) != len(a_lines):
        return f"expected {len(e_lines)} lines of output, got {len(a_lines)}"
    return None


def json_equal(expected: Any, actual: Any) -> bool:
    """Structural equality of two JSON values (as `json.loads` returns them)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        if isinstance(expected, int) and isinstance(actual, int):
            return expected == actual
        return numbers_close(float(expected), float(actual))
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(json_equal, expected, actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(json_equal(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, str) and isinstance(actual, str):
        return expected == actual
    return expected is None and actual is None


def _dump(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def compare_json(expected_json: str, actual_json: str) -> str | None:
    """None when the two JSON texts hold equal values; otherwise what differs."""
    expected, actual = json.loads(expected_json), json.loads(actual_json)
    if json_equal(expected, actual):
        return None
    return f"expected {_dump(expected)}, got {_dump(actual)}"
