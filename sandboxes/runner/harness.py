"""What runs inside the forked, untrusted test process. Stdlib only.

The process execs setup_code, then the program, then one test, and reports through a
private pipe with a frame that carries a per-test nonce. The runner (its parent) decides
the verdict; this side only reports facts: "the test code finished", "the entry point
returned this JSON value", "this exception escaped". A process that ends without a frame
bearing the nonce (`os._exit(0)`, a thread that exits, a crash) has not passed.

Everything this module needs after the program has run is bound to locals before it runs,
so a program that rebinds builtins or module attributes (`builtins.exec = ...`,
`os.write = ...`) cannot change what the harness does.
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
import os
import sys
import traceback
from types import CodeType
from typing import Any

from .judge import FRAME_MARK  # starts every report, so scribbles on the pipe cannot hide one

PLAIN_NAME = "__codereward_plain__"
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: classes defined in Python (by the program, or patchable)
_EXACT_JSON = (type(None), bool, int, float, str)


class _PlainChecker:
    """Refuses to let a test compare anything but plain data.

    The classic reward hack is an object whose `__eq__` always returns True. Every operand of
    a comparison in assert tests is checked first: only instances of built-in (C) types, whose
    methods cannot be patched, and containers of them pass. A Python-level class is accepted
    only if no class in its MRO defines comparison methods, or if those methods are the very
    functions the runner saw before any program ran (stdlib classes such as `Counter`).
    """

    _COMPARISONS = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__contains__", "__bool__")

    def __init__(self) -> None:
        import collections

        self._trusted: dict[tuple[type, str], Any] = {
            (cls, name): cls.__dict__.get(name) for cls in (collections.Counter, collections.OrderedDict) for name in self._COMPARISONS
        }

    def _type_ok(self, cls: type) -> bool:
        for klass in cls.__mro__:
            if not klass.__flags__ & _HEAPTYPE:
                continue
            for name in self._COMPARISONS:
                if name in klass.__dict__ and self._trusted.get((klass, name), None) is not klass.__dict__[name]:
                    return False
        return True

    def __call__(self, value: Any) -> Any:
        stack, seen = [value], set()
        while stack:
            item = stack.pop()
            if id(item) in seen:
                continue
            seen.add(id(item))
            cls = type(item)
            if not self._type_ok(cls):
                raise AssertionError(
                    f"the test compared an object of class {cls.__name__!r} that defines its own comparisons; "
                    "only plain data may be compared"
                )
            if isinstance(item, dict):
                stack.extend(dict.keys(item))
                stack.extend(dict.values(item))
            elif isinstance(item, (list, tuple, set, frozenset)):
                stack.extend(item)
        return value


class _WrapComparisons(ast.NodeTransformer):
    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
            return node

        def wrap(expr: ast.expr) -> ast.expr:
            return ast.copy_location(ast.Call(ast.Name(PLAIN_NAME, ast.Load()), [expr], []), expr)

        node.left = wrap(node.left)
        node.comparators = [wrap(c) for c in node.comparators]
        return node


# Built when the runner imports this module, before any program has run: the snapshot of
# trusted comparison methods cannot be taken from a process a program has touched.
_CHECKER = _PlainChecker()


@functools.lru_cache(maxsize=512)
def compile_test(code: str) -> CodeType:
    """Compile assert-test code with every comparison's operands checked for plain data.

    Cached: the G completions of a group, and every epoch, share their tests.
    """
    tree = _WrapComparisons().visit(ast.parse(code, "<test>", "exec"))
    return compile(ast.fix_missing_locations(tree), "<test>", "exec", dont_inherit=True)


def to_json(value: Any, depth: int = 0) -> Any:
    """The program's return value as a JSON value: tuples and sets become lists."""
    if depth > 100:
        raise ValueError("return value is nested more than 100 levels deep")
    if isinstance(value, bool) or value is None:
        return bool(value) if value is not None else None
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [to_json(v, depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, dict):
        return {_json_key(k): to_json(v, depth + 1) for k, v in dict.items(value)}
    raise TypeError(f"return value of type {type(value).__name__!r} is not JSON data")


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, (int, float)):
        return json.dumps(key)
    raise TypeError(f"dict key of type {type(key).__name__!r} is not JSON data")


def _error(exc: BaseException, stage: str) -> dict[str, str]:
    """A short description of an exception: its type, message and the line it came from."""
    entries = traceback.extract_tb(exc.__traceback__)
    where = ""
    for entry in reversed(entries):
        if entry.filename in ("<program>", "<test>", "<setup>"):
            where = f"{entry.filename} line {entry.lineno}: {(entry.line or '').strip()}"
            break
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return {"type": type(exc).__name__, "message": message[:1000], "where": where[:1000], "stage": stage}


def run(tests: list[dict[str, Any]], result_fd: int, program: CodeType, setup: CodeType | None, entry_point: str) -> None:
    """Run tests one after the other in this (already isolated) process, then exit. Never
    returns. Each test gets a fresh namespace in which setup_code and the program run again;
    each sends its own report, bearing its own nonce. (`io` tests come one per process: their
    stdout is the output.)"""
    _exit, _write, _dumps, _loads, _exec = os._exit, os.write, json.dumps, json.loads, exec
    _sys_stdout, _sys_stderr, _flush_err = sys.stdout, sys.stderr, sys.stderr.flush
    checker = _CHECKER

    def report(nonce: str, payload: dict[str, Any]) -> None:
        for stream in (_sys_stdout, _sys_stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        payload["nonce"] = nonce
        data = FRAME_MARK + _dumps(payload).encode()
        view = memoryview(data)
        while view:
            view = view[_write(result_fd, view) :]

    def one(kind: str, nonce: str, test: CodeType | None, args_json: str) -> None:
        namespace: dict[str, Any] = {"__name__": "__main__" if kind == "io" else "solution", "__builtins__": builtins}
        stage = "setup"
        try:
            if setup is not None:
                _exec(setup, namespace)
            stage = "program"
            _exec(program, namespace)
            if kind == "assert":
                stage = "test"
                namespace[PLAIN_NAME] = checker
                _exec(test, namespace)  # type: ignore[arg-type]  # assert tests always carry code
                report(nonce, {"ok": True})
            elif kind == "call":
                stage = "test"
                func = namespace.get(entry_point)
                if not callable(func):
                    raise NameError(f"entry point {entry_point!r} is not defined by the program")
                value = func(*_loads(args_json))
                try:
                    converted = to_json(value)
                except (TypeError, ValueError, RecursionError) as exc:
                    report(nonce, {"not_json": str(exc)[:1000]})
                    return
                report(nonce, {"value": converted})
            else:
                report(nonce, {"ok": True})
        except SystemExit as exc:
            if kind == "io" and exc.code in (None, 0):
                report(nonce, {"ok": True})
                return
            report(nonce, {"error": _error(exc, stage)})
        except BaseException as exc:  # the program's own failure, reported for the runner to judge
            try:
                traceback.print_exception(exc, file=_sys_stderr)
                _flush_err()
            except BaseException:
                pass
            try:
                report(nonce, {"error": _error(exc, stage)})
            except BaseException:
                _exit(1)

    for test in tests:
        one(test["kind"], test["nonce"], test["code"], test["args_json"])
    _exit(0)
