"""Typed JSON: the encoding of `call` tests' arguments and expected values on the wire, and
the plain-data encoding that crosses the program ↔ judge boundary inside a sandbox.
Stdlib only. One file in two places: the client library's (`reward_api.codec`) and the
runner's (`sandboxes/runner/codec.py` is a link to this file; the sandbox image gets a copy).

A value is JSON where JSON says it exactly (None, bools, strings, lists, integers below 2**63,
finite floats, string-keyed dicts) and a one-key object with a `$` tag otherwise:

    {"$int": "-1f"}            integers of any size (hexadecimal: no digit limit)
    {"$float": "nan"}          nan, inf, -inf
    {"$tuple": [...]}  {"$set": [...]}  {"$frozenset": [...]}  {"$deque": [...]}
    {"$dict": [[k, v], ...]}   dicts with any hashable keys (also {"$counter": ...}, {"$ordereddict": ...})
    {"$bytes": "base64"}  {"$bytearray": "base64"}
    {"$complex": [re, im]}  {"$fraction": [num, den]}  {"$decimal": "1.10"}  {"$range": [a, b, c]}
    {"$record": {"name": "Point", "kind": "dataclass" | "namedtuple", "fields": [["x", 1], ...]}}
    {"$ref": {"id": 3, "type": "Node"}}   an object that stays in the program's process

Decoding is strict and builds only the types listed here (records as trusted classes), so
nothing decoded can carry the program's behaviour: an always-equal object, a proxy or a
class with its own `__eq__` cannot cross; at most it becomes an opaque reference, equal
only to itself. `decode` raises `CodecError`, and nothing else, on any input.
"""

from __future__ import annotations

import ast
import base64
import collections
import dataclasses
import decimal
import fractions
import json
import keyword
import math
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 100
MAX_RECORDS = 10000  # per decoded value
MAX_FRACTION_BITS = 1 << 16  # a gcd of two 64-Kbit integers takes milliseconds; of two 4-Mbit ones, seconds
_SMALL_INT = 1 << 63


class CodecError(ValueError):
    """A value that cannot be encoded, or a text that is not valid typed JSON."""


# -- encoding ----------------------------------------------------------------------------------


def _int(value: int) -> Any:
    return value if -_SMALL_INT < value < _SMALL_INT else {"$int": format(value, "x")}


def _float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def encode(value: Any, ref: Callable[[Any], dict[str, Any]] | None = None, _depth: int = 0) -> Any:
    """`value` as typed JSON (a tree for `json.dumps`). Objects of other types become
    `$ref`s through `ref`, or raise CodecError without it."""
    if _depth > MAX_DEPTH:
        raise CodecError(f"the value is nested more than {MAX_DEPTH} levels deep")
    down = _depth + 1
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return _int(value)
    if kind is float:
        return _float(value)
    if kind is list:
        return [encode(v, ref, down) for v in value]
    if kind is dict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: encode(v, ref, down) for k, v in value.items()}
        return {"$dict": [[encode(k, ref, down), encode(v, ref, down)] for k, v in value.items()]}
    if kind is tuple:
        return {"$tuple": [encode(v, ref, down) for v in value]}
    if kind is set or kind is frozenset:
        return {"$set" if kind is set else "$frozenset": [encode(v, ref, down) for v in value]}
    if kind in (bytes, bytearray):
        return {"$bytes" if kind is bytes else "$bytearray": base64.b64encode(value).decode()}
    if kind is complex:
        return {"$complex": [_float(value.real), _float(value.imag)]}
    if kind is fractions.Fraction:
        return {"$fraction": [_int(value.numerator), _int(value.denominator)]}
    if kind is decimal.Decimal:
        return {"$decimal": str(value)}
    if kind is range:
        return {"$range": [_int(value.start), _int(value.stop), _int(value.step)]}
    if kind is collections.Counter or kind is collections.OrderedDict:
        tag = "$counter" if kind is collections.Counter else "$ordereddict"
        return {tag: [[encode(k, ref, down), encode(v, ref, down)] for k, v in dict.items(value)]}
    if kind is collections.deque:
        return {"$deque": [encode(v, ref, down) for v in value]}
    if isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
        fields = [[str(name), encode(v, ref, down)] for name, v in zip(kind._fields, tuple.__iter__(value))]
        return {"$record": {"name": kind.__name__, "kind": "namedtuple", "fields": fields}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [[f.name, encode(getattr(value, f.name), ref, down)] for f in dataclasses.fields(value)]
        return {"$record": {"name": kind.__name__, "kind": "dataclass", "fields": fields}}
    # Subclasses of the plain types cross as the plain value, read through the base type's own
    # methods: whatever the subclass overrides (its __eq__ above all) stays behind.
    for base, convert in _BASES:
        if isinstance(value, base):
            return encode(convert(value), ref, _depth)
    if ref is not None:
        return {"$ref": ref(value)}
    raise CodecError(f"a {kind.__name__!r} object is not plain data")


_BASES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (int, int.__index__),
    (float, float.__float__),
    (str, str.__str__),
    (bytes, bytes),
    (list, lambda v: list(list.__iter__(v))),
    (tuple, lambda v: tuple(tuple.__iter__(v))),
    (dict, lambda v: dict(dict.items(v))),
    (frozenset, lambda v: frozenset(frozenset.__iter__(v))),
    (set, lambda v: set(set.__iter__(v))),
)


def dumps(value: Any, ref: Callable[[Any], dict[str, Any]] | None = None) -> str:
    try:
        return json.dumps(encode(value, ref), allow_nan=False)
    except CodecError:
        raise
    except (RecursionError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise CodecError(f"the value cannot be encoded: {type(exc).__name__}: {exc}") from None


# -- decoding ----------------------------------------------------------------------------------

_RECORD_CLASSES: dict[tuple[str, str, tuple[str, ...]], type] = {}
MAX_RECORD_CLASSES = 512


def _record_class(name: str, kind: str, fields: tuple[str, ...]) -> type:
    """A trusted class for a record: one per (name, kind, fields), so equal records compare equal.
    Bounded: a long-lived decoder (the judge, the host) must not grow with what programs send."""
    key = (name, kind, fields)
    if key not in _RECORD_CLASSES:
        if len(_RECORD_CLASSES) >= MAX_RECORD_CLASSES:
            _RECORD_CLASSES.clear()
        if kind == "namedtuple":
            _RECORD_CLASSES[key] = collections.namedtuple(name, fields)
        else:
            _RECORD_CLASSES[key] = dataclasses.make_dataclass(name, fields, frozen=True, eq=True)
    return _RECORD_CLASSES[key]


def _identifier(value: Any) -> str:
    if type(value) is not str or not value.isidentifier() or keyword.iskeyword(value) or value.startswith("__"):
        raise CodecError(f"{value!r} is not a valid record or field name")
    return value


class Decoder:
    """Turns typed JSON into trusted values.

    `classes`: the trusted classes a record may become (by name, when the fields match):
    a problem's setup code defines them. `make_ref`: what a `$ref` becomes (refused without).
    """

    def __init__(self, classes: dict[str, type] | None = None, make_ref: Callable[[int, str], Any] | None = None) -> None:
        self.classes = classes or {}
        self.make_ref = make_ref
        self.records = 0

    def __call__(self, tree: Any) -> Any:
        self.records = 0
        try:
            return self._value(tree, 0)
        except CodecError:
            raise
        except RecursionError:
            raise CodecError("nested too deeply for a JSON value") from None
        except (ValueError, TypeError, OverflowError, MemoryError, ArithmeticError, KeyError) as exc:
            raise CodecError(f"not valid typed JSON: {type(exc).__name__}: {exc}") from None

    def _value(self, tree: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CodecError(f"the value is nested more than {MAX_DEPTH} levels deep")
        kind = type(tree)
        if tree is None or kind in (bool, str, float):
            return tree
        if kind is int:
            return tree
        if kind is list:
            return [self._value(v, depth + 1) for v in tree]
        if kind is not dict:
            raise CodecError(f"unexpected JSON type {kind.__name__}")
        if len(tree) == 1:
            ((tag, body),) = tree.items()
            if tag.startswith("$"):
                return self._tagged(tag, body, depth + 1)
        return {k: self._value(v, depth + 1) for k, v in tree.items()}

    def _items(self, body: Any, depth: int) -> list[Any]:
        if type(body) is not list:
            raise CodecError("a tagged container must hold a list")
        return [self._value(v, depth) for v in body]

    def _pairs(self, body: Any, depth: int) -> list[tuple[Any, Any]]:
        pairs = []
        for pair in self._items(body, depth):
            if type(pair) is not list or len(pair) != 2:
                raise CodecError("a dict must be a list of [key, value] pairs")
            pairs.append((pair[0], pair[1]))
        return pairs

    def _number(self, value: Any, kinds: tuple[type, ...]) -> Any:
        if type(value) not in kinds:
            raise CodecError(f"expected a number, got {type(value).__name__}")
        return value

    def _tagged(self, tag: str, body: Any, depth: int) -> Any:
        if tag == "$int":
            if type(body) is not str or not body or len(body) > 1 << 24:
                raise CodecError("$int takes a hexadecimal string")
            return int(body, 16)
        if tag == "$float":
            if body not in ("nan", "inf", "-inf"):
                raise CodecError("$float takes 'nan', 'inf' or '-inf'")
            return float(body)
        if tag == "$tuple":
            return tuple(self._items(body, depth))
        if tag == "$set":
            return set(_spread(self._items(body, depth)))
        if tag == "$frozenset":
            return frozenset(_spread(self._items(body, depth)))
        if tag == "$deque":
            return collections.deque(self._items(body, depth))
        if tag == "$dict":
            return dict(_spread_pairs(self._pairs(body, depth)))
        if tag == "$counter":
            return collections.Counter(dict(_spread_pairs(self._pairs(body, depth))))
        if tag == "$ordereddict":
            return collections.OrderedDict(_spread_pairs(self._pairs(body, depth)))
        if tag in ("$bytes", "$bytearray"):
            if type(body) is not str:
                raise CodecError(f"{tag} takes a base64 string")
            raw = base64.b64decode(body, validate=True)
            return raw if tag == "$bytes" else bytearray(raw)
        if tag == "$complex":
            re_, im = self._items(body, depth)
            return complex(self._number(re_, (int, float)), self._number(im, (int, float)))
        if tag == "$fraction":
            num, den = (self._number(v, (int,)) for v in self._items(body, depth))
            if max(num.bit_length(), den.bit_length()) > MAX_FRACTION_BITS:  # Fraction() takes their gcd: quadratic
                raise CodecError(f"a $fraction's numerator and denominator have at most {MAX_FRACTION_BITS} bits")
            return fractions.Fraction(num, den)
        if tag == "$decimal":
            if type(body) is not str or len(body) > 10000:
                raise CodecError("$decimal takes a string")
            return decimal.Decimal(body)
        if tag == "$range":
            start, stop, step = (self._number(v, (int,)) for v in self._items(body, depth))
            return range(start, stop, step)
        if tag == "$record":
            return self._record(body, depth)
        if tag == "$ref":
            if self.make_ref is None or type(body) is not dict or type(body.get("id")) is not int:
                raise CodecError("an object that is not plain data cannot cross here")
            return self.make_ref(body["id"], str(body.get("type", "object"))[:100])
        raise CodecError(f"unknown tag {tag!r}")

    def _record(self, body: Any, depth: int) -> Any:
        if type(body) is not dict or body.get("kind") not in ("dataclass", "namedtuple") or type(body.get("fields")) is not list:
            raise CodecError("$record takes {name, kind, fields}")
        name, kind = _identifier(body.get("name")), body["kind"]
        names, values = [], []
        for pair in body["fields"]:
            if type(pair) is not list or len(pair) != 2:
                raise CodecError("record fields are [name, value] pairs")
            names.append(_identifier(pair[0]))
            values.append(self._value(pair[1], depth + 1))
        if len(set(names)) != len(names):
            raise CodecError("duplicate record field")
        self.records += 1
        if self.records > MAX_RECORDS:
            raise CodecError(f"more than {MAX_RECORDS} records in one value")
        trusted = self.classes.get(name)
        if trusted is not None and _fields_of(trusted) == tuple(names):
            if kind == "namedtuple" and issubclass(trusted, tuple):
                return trusted._make(values)  # type: ignore[attr-defined]
            if kind == "dataclass" and dataclasses.is_dataclass(trusted):
                instance = object.__new__(trusted)
                for field_name, value in zip(names, values):
                    object.__setattr__(instance, field_name, value)
                return instance
        cls = _record_class(name, kind, tuple(names))
        return cls._make(values) if kind == "namedtuple" else cls(*values)  # type: ignore[attr-defined]


MAX_SAME_HASH = 64


def _spread(items: list[Any]) -> list[Any]:
    """Refuse elements chosen to collide in a hash table (integers' hashes are not randomised):
    building a set of them would take quadratic time in whoever decodes it (the judge, the host).
    Honest values almost never have more than a few equal hashes."""
    if len(items) > MAX_SAME_HASH:
        ((_, most),) = collections.Counter(hash(x) for x in items).most_common(1)
        if most > MAX_SAME_HASH:
            raise CodecError(f"{most} elements share one hash: refused (a hash-flooding value)")
    return items


def _spread_pairs(pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    _spread([k for k, _ in pairs])
    return pairs


def _fields_of(cls: type) -> tuple[str, ...] | None:
    if isinstance(cls, type) and issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple):
        return tuple(cls._fields)  # type: ignore[attr-defined]
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    return None


def loads(text: str | bytes, decoder: Decoder | None = None) -> Any:
    """Parse and decode typed JSON; CodecError on anything invalid."""
    try:
        tree = json.loads(text)
    except RecursionError:
        raise CodecError("nested too deeply for a JSON value") from None
    except (ValueError, MemoryError, TypeError) as exc:
        raise CodecError(f"not JSON ({str(exc)[:200]})") from None
    return (decoder or Decoder())(tree)


# -- the names a test reads ------------------------------------------------------------------


def free_names(code: str) -> tuple[str, ...]:
    """Names Python test code reads but never binds itself (by assignment, def, class, import,
    argument, except or match). The judge resolves them (setup code, builtins and the standard
    library first); clients use it to fill a problem's `program_names`. SyntaxError if the code
    does not parse."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
    return tuple(sorted(loaded - bound))


def program_names(tests: list[str], setup_code: str = "", entry_point: str = "") -> tuple[str, ...]:
    """The names assert tests read that only the program can define: their free names less
    builtins, the standard library's modules, what the setup code binds and the entry point.
    (A class the tests construct, MBPP's `Pair` say.) SyntaxError if some code does not parse."""
    import builtins
    import sys

    trusted = set(dir(builtins)) | set(sys.stdlib_module_names) | {entry_point}
    if setup_code:
        trusted |= _bound(setup_code)
    return tuple(sorted({name for test in tests for name in free_names(test)} - trusted))


def _bound(code: str) -> set[str]:
    """Top-level names that code binds."""
    names: set[str] = set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names
