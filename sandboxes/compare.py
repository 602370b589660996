"""Output comparison, done on the host: expected outputs never enter the sandbox.

- `io` tests, by the problem's `OutputCheck` mode. LINES (the default): stdout against the
  expected text, line by line, after stripping trailing whitespace from every line and
  dropping blank lines before and after the output. The number of lines must match. A token
  that is an integer in the expected output matches only a number of exactly that value (`7`
  or `7.0`, never `8.0`, `7.0000001` or `inf`); a decimal token matches a number within a
  small tolerance; any other token matches itself. EXACT: byte for byte. TOKENS: the same
  whitespace-separated tokens as text, lines ignored (testlib's `wcmp`). FLOATS: tokens, and
  where both tokens are decimal numbers, |expected - actual| <= abs_tolerance or
  <= rel_tolerance * |expected| (testlib's `doubleCompare`), computed exactly.
- `call` tests: the program's return value (typed JSON, `runner/codec.py`) against
  `expected_json`, as values. An expected integer matches only an equal integer (or a float
  of exactly that value); float tolerance applies only where a float is expected; bool is
  never a number; an expected list also takes a tuple (JSON has no tuples), an expected
  set a frozenset. Typed expectations (tuples, sets, dicts with any keys, bytes, Fraction,
  Decimal, complex, records) compare by type and value.

No value a program returns makes these functions raise: they answer "different".
"""

from __future__ import annotations

import collections
import dataclasses
import decimal
import fractions
import math
import re
from typing import Any

from .runner import codec
from .types import OutputCheck, OutputMode

REL_TOL = 1e-6
ABS_TOL = 1e-9
MAX_DEPTH = codec.MAX_DEPTH + 2
_SNIPPET = 200
_REL, _ABS = fractions.Fraction(1, 10**6), fractions.Fraction(1, 10**9)
_INT = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _snip(text: str) -> str:
    return repr(text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…")


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    start = 0
    while start < len(lines) and not lines[start]:
        start += 1
    return lines[start:]


def _exact(token: str) -> fractions.Fraction | None:
    """A decimal number token as an exact fraction (no float rounding); None otherwise."""
    if len(token) > 10000 or not _DECIMAL.fullmatch(token):
        return None
    try:
        value = decimal.Decimal(token)
        if abs(value.adjusted()) > 10000:  # 1e999999: not a number anyone prints as an answer
            return None
        return fractions.Fraction(value)
    except (ValueError, ArithmeticError):
        return None


def numbers_close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _tokens_equal(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    e = _exact(expected)
    if _INT.fullmatch(expected):  # an integer answer is exact
        a = _exact(actual)
        return a is not None and e is not None and a == e
    if e is None:
        return False
    a = _exact(actual)
    if a is None:
        return False
    return abs(e - a) <= max(_ABS, _REL * max(abs(e), abs(a)))  # exact: no float to overflow


def lines_equal(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    e_tokens, a_tokens = expected.split(), actual.split()
    return len(e_tokens) == len(a_tokens) and all(map(_tokens_equal, e_tokens, a_tokens))


def compare_stdout(expected: str, actual: str, check: OutputCheck | None = None) -> str | None:
    """None when `actual` matches `expected` by `check` (LINES when None); otherwise a short
    description of the first difference."""
    mode = check.mode if check is not None else OutputMode.LINES
    if mode is OutputMode.EXACT:
        return _compare_exact(expected, actual)
    if mode is OutputMode.TOKENS:
        return _compare_tokens(expected, actual, lambda e, a: e == a)
    if mode is OutputMode.FLOATS:
        assert check is not None
        tolerance = (fractions.Fraction(check.abs_tolerance), fractions.Fraction(check.rel_tolerance))
        return _compare_tokens(expected, actual, lambda e, a: _within(e, a, *tolerance))
    e_lines, a_lines = _lines(expected), _lines(actual)
    for number, (e, a) in enumerate(zip(e_lines, a_lines), start=1):
        if not lines_equal(e, a):
            return f"line {number}: expected {_snip(e)}, got {_snip(a)}"
    if len(e_lines) != len(a_lines):
        return f"expected {len(e_lines)} lines of output, got {len(a_lines)}"
    return None


def _compare_exact(expected: str, actual: str) -> str | None:
    if expected == actual:
        return None
    at = next((i for i, (e, a) in enumerate(zip(expected, actual)) if e != a), min(len(expected), len(actual)))
    line = expected.count("\n", 0, at) + 1
    return f"output differs at character {at + 1} (line {line}): expected {_snip(expected[at:])}, got {_snip(actual[at:])}"


def _compare_tokens(expected: str, actual: str, equal: Any) -> str | None:
    e_tokens, a_tokens = expected.split(), actual.split()
    for number, (e, a) in enumerate(zip(e_tokens, a_tokens), start=1):
        if not equal(e, a):
            return f"token {number}: expected {_snip(e)}, got {_snip(a)}"
    if len(e_tokens) != len(a_tokens):
        return f"expected {len(e_tokens)} tokens of output, got {len(a_tokens)}"
    return None


def _within(expected: str, actual: str, abs_tol: fractions.Fraction, rel_tol: fractions.Fraction) -> bool:
    if expected == actual:
        return True
    e, a = _exact(expected), _exact(actual)
    if e is None or a is None:
        return False
    return abs(e - a) <= abs_tol or abs(e - a) <= rel_tol * abs(e)


def _number_equal(expected: int | float, actual: Any) -> bool:
    if type(actual) not in (int, float):
        return False
    if type(expected) is int:
        if type(actual) is int:
            return expected == actual
        return math.isfinite(actual) and actual == expected  # exact: float == int compares exactly
    if type(actual) is int:
        try:
            actual = float(actual)
        except OverflowError:
            return False
    return numbers_close(expected, actual)


def values_equal(expected: Any, actual: Any, _depth: int = 0) -> bool:
    """Equality of two decoded values, by the rules in the module docstring. Never raises."""
    if _depth > MAX_DEPTH:
        return False
    down = _depth + 1
    e_type = type(expected)
    if e_type is bool or type(actual) is bool:
        return e_type is type(actual) and expected == actual
    if expected is None:
        return actual is None
    if e_type in (int, float):
        return _number_equal(expected, actual)
    if e_type is complex:
        return type(actual) is complex and numbers_close(expected.real, actual.real) and numbers_close(expected.imag, actual.imag)
    if e_type in (str, bytes, bytearray, fractions.Fraction, decimal.Decimal, range):
        return type(actual) is e_type and expected == actual
    if e_type is list:
        if type(actual) in (set, frozenset):  # plain JSON has no sets: a set answer against a list
            actual = _sorted_or_none(actual)
            if actual is None:
                return False
        return type(actual) in (list, tuple) and len(expected) == len(actual) and all(
            values_equal(e, a, down) for e, a in zip(expected, actual)
        )
    if e_type in (tuple, collections.deque):
        return type(actual) is e_type and len(expected) == len(actual) and all(values_equal(e, a, down) for e, a in zip(expected, actual))
    if e_type in (set, frozenset):  # elements are hashable plain data; a bool is not the int 1
        if type(actual) not in (set, frozenset) or len(expected) != len(actual):
            return False
        return {_strict(x) for x in expected} == {_strict(x) for x in actual}
    if e_type in (dict, collections.Counter, collections.OrderedDict):
        if not isinstance(actual, dict) or len(expected) != len(actual):
            return False
        keyed = {_strict(k): v for k, v in actual.items()}
        return all(_strict(k) in keyed and values_equal(v, keyed[_strict(k)], down) for k, v in expected.items())
    if isinstance(expected, tuple) and hasattr(e_type, "_fields"):  # a record (named tuple)
        same = type(actual).__name__ == e_type.__name__ and getattr(type(actual), "_fields", None) == e_type._fields
        return same and all(values_equal(e, a, down) for e, a in zip(expected, actual))
    if dataclasses.is_dataclass(expected):  # a record: same name and fields (record classes are per decoder)
        if not dataclasses.is_dataclass(actual) or type(actual).__name__ != e_type.__name__:
            return False
        if [f.name for f in dataclasses.fields(actual)] != [f.name for f in dataclasses.fields(expected)]:
            return False
        return all(
            values_equal(getattr(expected, f.name), getattr(actual, f.name), down) for f in dataclasses.fields(expected)
        )
    return False


def _strict(key: Any) -> Any:
    """A hashable key under which `True` and `1` (and `1.0`) stay apart, at any depth."""
    if type(key) is bool:
        return ("bool", key)
    if type(key) in (tuple, frozenset):
        return (type(key).__name__, type(key)(_strict(k) for k in key))
    if dataclasses.is_dataclass(key):  # a record: by name, fields and values, not by its (per-decoder) class
        names = tuple(f.name for f in dataclasses.fields(key))
        return ("record", type(key).__name__, names, tuple(_strict(getattr(key, name)) for name in names))
    if isinstance(key, tuple) and hasattr(type(key), "_fields"):
        fields: tuple[str, ...] = type(key)._fields  # type: ignore[attr-defined]
        return ("namedtuple", type(key).__name__, fields, tuple(_strict(k) for k in key))
    return (type(key).__name__ if type(key) is not int and type(key) is not float else "number", key)


def _sorted_or_none(items: Any) -> list[Any] | None:
    try:
        return sorted(items)
    except TypeError:
        return None


def json_equal(expected: Any, actual: Any) -> bool:
    """Equality of two decoded values (kept under its old name for callers)."""
    try:
        return values_equal(expected, actual)
    except Exception:  # belt and braces: no value may fail a group
        return False


def _dump(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def compare_json(expected_json: str, actual_json: str) -> str | None:
    """None when the two typed-JSON texts hold equal values; otherwise what differs."""
    try:
        expected = codec.loads(expected_json)
    except codec.CodecError as exc:
        return f"expected_json is not valid typed JSON: {exc}"
    try:
        actual = codec.loads(actual_json)
    except codec.CodecError as exc:
        return f"the return value could not be read: {exc}"
    if json_equal(expected, actual):
        return None
    return f"expected {_dump(expected_json)}, got {_dump(actual_json)}"
