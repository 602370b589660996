"""The judge's process: runs the tests, trusted. Stdlib only.

It runs under its own uid (not the program's), is not dumpable, and shares nothing with the
program's process but one socket, over which it asks the program to load itself, call a
function, read an attribute or set one (`program.py` answers; what a test passes or assigns
crosses to the program, as plain data or as a reference to one of the program's objects). Answers are typed JSON decoded here
into trusted values (`codec.py`); an object that is not plain data stays in the program's
process and is seen here as an opaque `Remote`, equal only to itself. So an always-equal
object, a forged report, a shadowed builtin or a rebound module cannot reach the test.

Names a test reads come from the test itself, the problem's setup code (run here too),
builtins and the standard library (imported here); only the entry point and the problem's
`program_names` come from the program. A problem that names neither (MBPP's format) gets
every other free name of its tests from the program: nothing trusted defines them.

Each test ends with one report to the runner: passed, a value to compare (call tests),
failed (its assertion), an error (an exception, the program's or the test's), the program's
process gone, or a reply too large. The verdict (and the CPU time) is the runner's to decide.
"""

from __future__ import annotations

import builtins
import functools
import json
import linecache
import os
import socket
import sys
import traceback
from types import CodeType
from typing import Any

from . import codec
from .protocol import COMPILE_ERRORS, FrameBuffer, receive_order, write_frame

READ_CHUNK = 1 << 16
REPLY_SLACK = 1 << 20  # a return value may be larger than a test's printed-output cap
STDLIB = frozenset(sys.stdlib_module_names)
MAX_DETAIL = 4096


class ProgramGone(BaseException):
    """The program's process ended (or broke the protocol). A BaseException: a test's
    `except Exception` must not swallow it."""


class ReplyTooLarge(BaseException):
    """The program sent more than the reply cap."""


class CannotCross(TypeError):
    """A value that is not plain data was sent where only plain data may go."""


class ProgramError(Exception):
    """An exception the program raised whose class is not a builtin one."""


_REMOTE_CLASSES: dict[tuple[str, type], type[BaseException]] = {}


# Exceptions that steer the test's own control flow (a `StopIteration` ends the `map` or
# generator it surfaces in): from the program they become ProgramError instead.
_CONTROL_FLOW = frozenset({"StopIteration", "StopAsyncIteration", "GeneratorExit"})


def program_exception(info: dict[str, Any], classes: dict[str, type]) -> BaseException:
    """The program's exception, rebuilt here as an exception of the setup code's class of that
    name, or of the builtin one (so that a test's `except ValueError` works), marked as the
    program's; ProgramError for any other name. Only names are carried, never the program's class."""
    name = str(info.get("type", "Exception"))[:100]
    message = str(info.get("message", name))[:1000]
    base = classes.get(name) or getattr(builtins, name, None)
    if not (isinstance(base, type) and issubclass(base, Exception)) or name in _CONTROL_FLOW:
        base = ProgramError
    key = (name, base)
    if key not in _REMOTE_CLASSES:
        if len(_REMOTE_CLASSES) > 256:  # the judge lives on: no program may grow this for good
            _REMOTE_CLASSES.clear()
        _REMOTE_CLASSES[key] = type(name, (base,), {"from_program": True, "where": ""})
    try:
        exc = _REMOTE_CLASSES[key](message.removeprefix(f"{name}: "))
    except Exception:  # a setup class whose constructor wants other arguments
        exc = _REMOTE_CLASSES.setdefault((name, ProgramError), type(name, (ProgramError,), {"from_program": True, "where": ""}))(message)
    exc.where = str(info.get("where", ""))[:1000]  # type: ignore[attr-defined]
    return exc


# A test's code is the `code_index`-th entry of the tests' list (the host's bytes, which the
# runner passes on unread): besides what compile() raises, an index past the list (IndexError)
# or an entry or index of the wrong type (TypeError) is test code that cannot be compiled too.
TEST_CODE_ERRORS: tuple[type[Exception], ...] = (*COMPILE_ERRORS, IndexError, TypeError)


@functools.lru_cache(maxsize=512)
def compile_test(source: str) -> CodeType:
    """Cached: the G programs of a group, and every epoch, share their tests (the judge lives on)."""
    return compile(source, "<test>", "exec", dont_inherit=True)


free_names = functools.lru_cache(maxsize=512)(codec.free_names)


class Connection:
    """The judge's end of the socket to the program. Once broken, every request fails."""

    def __init__(self, fd: int, reply_cap: int, classes: dict[str, type]) -> None:
        self.fd, self.reply_cap = fd, reply_cap
        self.frames = FrameBuffer(max_frame=reply_cap)
        self.pending: list[dict[str, Any]] = []
        self.broken: BaseException | None = None
        self.decoder = codec.Decoder(classes=classes, make_ref=self._remote)

    def _remote(self, key: int, type_name: str) -> Remote:
        return Remote(self, {"id": key}, type_name)

    def _ref(self, value: Any) -> dict[str, Any]:
        if isinstance(value, Remote):
            if "id" not in value._target:  # a name: the program's object it stands for
                value = self.value({"op": "get", **value._target})
            if isinstance(value, Remote):
                return {"id": value._target["id"], "type": value._type}
        raise CannotCross(f"a {type(value).__name__!r} object cannot be sent to the program (only plain data crosses)")

    def encode(self, value: Any) -> Any:
        try:
            return codec.encode(value, self._ref)
        except codec.CodecError as exc:
            raise CannotCross(str(exc)) from None

    def _write(self, message: dict[str, Any]) -> None:
        write_frame(self.fd, message)

    def send_load(self) -> None:
        """Ask the program to load itself afresh, without waiting: `finish_load` reads the answer."""
        if self.broken is None:
            try:
                self._write({"op": "load"})
            except OSError:
                self.broken = ProgramGone("the program's process ended")

    def finish_load(self) -> None:
        self._decode(self._read_reply())

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.broken is not None:
            raise self.broken
        try:
            self._write(message)
        except OSError:
            self.broken = ProgramGone("the program's process ended")
            raise self.broken from None
        return self._read_reply()

    def _read_reply(self) -> dict[str, Any]:
        if self.broken is not None:
            raise self.broken
        try:
            while not self.pending:
                chunk = os.read(self.fd, READ_CHUNK)
                if not chunk:
                    raise ProgramGone("the program's process ended")
                self.pending.extend(self.frames.feed(chunk))
        except OSError:
            self.broken = ProgramGone("the program's process ended")
            raise self.broken from None
        except ProgramGone as exc:
            self.broken = exc
            raise
        except ValueError as exc:  # a frame over the cap, or not JSON
            self.broken = ReplyTooLarge(str(exc)) if "exceeds" in str(exc) else ProgramGone(f"the program broke the protocol: {exc}")
            raise self.broken from None
        return self.pending.pop(0)

    def value(self, message: dict[str, Any]) -> Any:
        """Send a request; the decoded value of its answer, or the program's exception raised."""
        return self._decode(self.request(message), message["op"])

    def call(self, target: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        sent = [self.encode(a) for a in args]
        message = {"op": "call", **target, "args": sent, "kwargs": {str(k): self.encode(v) for k, v in kwargs.items()}}
        reply = self.request(message)
        back = reply.get("args_back")
        for pair in back if isinstance(back, list) else ():
            self._copy_back(args, pair)
        return self._decode(reply)

    def _decode(self, reply: dict[str, Any], op: str = "") -> Any:
        if isinstance(reply.get("raise"), dict):
            raise program_exception(reply["raise"], self.decoder.classes)
        if "unencodable" in reply:
            raise CannotCross(f"the program's value is not plain data: {str(reply['unencodable'])[:500]}")
        if reply.get("stop") is True and op == "next":  # the end of an iteration the test asked for
            raise StopIteration
        if "value" not in reply:
            self.broken = ProgramGone("the program broke the protocol")
            raise self.broken
        try:
            return self.decoder(reply["value"])
        except codec.CodecError as exc:
            raise CannotCross(f"the program's value is not plain data: {exc}") from None

    def _copy_back(self, args: tuple[Any, ...], pair: Any) -> None:
        """A mutable argument the function changed in place: the test sees the change."""
        if not (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) is int and 0 <= pair[0] < len(args)):
            return
        arg = args[pair[0]]
        try:
            new = self.decoder(pair[1])
        except codec.CodecError:
            return
        if type(arg) is not type(new):
            return
        if isinstance(arg, (list, bytearray)):
            arg[:] = new
        elif isinstance(arg, (dict, set)):
            arg.clear()
            arg.update(new)


class Remote:
    """An object of the program's, seen from the judge: calls, attributes (read and set), str,
    len and iteration go to the program; comparison is identity (it has no value here)."""

    __slots__ = ("_conn", "_target", "_type")

    def __init__(self, conn: Connection, target: dict[str, Any], type_name: str) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_type", type_name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._conn.call(self._target, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return self._conn.value({"op": "attr", **self._target, "attr": name})

    def __setattr__(self, name: str, value: Any) -> None:
        """The program's object gets the attribute: plain data, or another of its objects (a
        test that builds a tree of the program's nodes, as MBPP's setup code does)."""
        self._conn.value({"op": "setattr", **self._target, "attr": str(name), "value": self._conn.encode(value)})

    def __str__(self) -> str:
        value = self._conn.value({"op": "str", **self._target})
        return value if type(value) is str else repr(self)

    def __repr__(self) -> str:
        if self._conn.broken is not None:
            return f"<program {self._type}>"
        value = self._conn.value({"op": "repr", **self._target})
        return value if type(value) is str else f"<program {self._type}>"

    def __len__(self) -> int:
        value = self._conn.value({"op": "len", **self._target})
        if type(value) is not int or value < 0:
            raise CannotCross("len() of a program object did not give a non-negative int")
        return value

    def __iter__(self) -> Any:
        iterator = self._conn.value({"op": "iter", **self._target})
        if not isinstance(iterator, Remote):
            return iter(iterator)
        return iterator

    def __next__(self) -> Any:
        return self._conn.value({"op": "next", **self._target})

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return other is self

    def __ne__(self, other: object) -> bool:
        return other is not self


def _exception_text(exc: BaseException) -> str:
    """str(exc) without asking the program anything: an exception can carry the program's
    objects (`assert f() == 1, f()`, `table[f()]`), whose str and repr would be calls into the
    program, which may raise, stall or lie. They show as `<program T>`; anything else that
    cannot be formatted shows as nothing."""
    args = getattr(exc, "args", ())
    if any(isinstance(arg, Remote) for arg in args):
        return ", ".join(f"<program {object.__getattribute__(a, '_type')}>" if isinstance(a, Remote) else _plain_repr(a) for a in args)
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 — a message that cannot be formatted is no message
        return ""
    return text if type(text) is str else ""


def _plain_repr(value: Any) -> str:
    try:
        text = repr(value)
    except BaseException:  # noqa: BLE001
        return "<unprintable>"
    return text[:1000] if type(text) is str else "<unprintable>"


def _detail(exc: BaseException, with_where: bool = True) -> str:
    text = _exception_text(exc)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    where = getattr(exc, "where", "") if getattr(exc, "from_program", False) else ""
    if with_where and not where:
        for entry in reversed(traceback.extract_tb(exc.__traceback__)):
            if entry.filename == "<test>":
                where = f"<test> line {entry.lineno}: {(entry.line or '').strip()}"
                break
    return "\n".join(part for part in (message[:1000], where[:1000]) if part)


class Judge:
    """Runs one batch of tests against one program process, reporting each to the runner."""

    def __init__(self, order: dict[str, Any], report_fd: int, sock_fd: int, tests_fd: int, details_fd: int) -> None:
        self.order = order
        self.report_fd = report_fd
        self.tests_fd = tests_fd
        self.details_fd = details_fd
        self.setup: CodeType | None = order["setup"]
        self.entry_point: str = order["entry_point"]
        self.program_names: tuple[str, ...] = tuple(order["program_names"])
        self.conn = Connection(sock_fd, order["reply_cap"], {})

    def report(self, message: dict[str, Any]) -> None:
        write_frame(self.report_fd, {"batch": self.order["batch"], **message})

    def _namespace(self, names: tuple[str, ...]) -> dict[str, Any]:
        """A fresh test namespace: setup code, then the names the test reads bound from
        trusted places first, and from the program only where the problem says so."""
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        if self.setup is not None:
            exec(self.setup, namespace)
        self.conn.decoder.classes = {k: v for k, v in namespace.items() if isinstance(v, type)}
        named = {self.entry_point, *self.program_names} - {""}
        for name in named:
            namespace[name] = Remote(self.conn, {"name": name}, name)
        for name in names:
            if name in namespace or name in named:
                continue
            if hasattr(builtins, name):
                continue
            if name in STDLIB:
                try:
                    namespace[name] = __import__(name)
                except ImportError:
                    pass
                continue
            if not named:  # a problem that names no entry point: its tests' free names are the program's
                namespace[name] = Remote(self.conn, {"name": name}, name)
        return namespace

    def _test_codes(self) -> list[Any]:
        """The tests' code, from the memfd the runner filled without reading it."""
        size = os.fstat(self.tests_fd).st_size
        data = os.pread(self.tests_fd, size, 0) if size else b"[]"
        codes = json.loads(data)
        return codes if isinstance(codes, list) else []

    def run_test(self, test: dict[str, Any]) -> dict[str, Any]:
        self.conn.send_load()  # answered while the judge makes the test's namespace
        if test["kind"] == "assert":
            try:
                source = self.codes[test["code_index"]]
                test = {**test, "code": compile_test(source), "names": free_names(source)}
                linecache.cache["<test>"] = (len(source), None, source.splitlines(True), "<test>")
            except TEST_CODE_ERRORS as exc:
                return {"judge_error": f"test code does not compile: {type(exc).__name__}: {exc}"}
        else:
            test = {**test, "names": ()}
        try:
            namespace = self._namespace(tuple(test["names"]))
        except BaseException as exc:
            return {"judge_error": "setup_code failed in the judge: " + _detail(exc)}
        try:
            self.conn.finish_load()
        except (ProgramGone, ReplyTooLarge):
            pass  # reported below, from the connection's state
        except BaseException as exc:
            return {
                "error": {
                    "message": "the program failed as it loaded: " + _detail(exc, False),
                    "type": type(exc).__name__,
                    "from_program": True,
                }
            }
        if self.conn.broken is not None:
            return self._broken()
        outcome = self._execute(test, namespace)
        return self._broken() if self.conn.broken is not None else outcome

    def _broken(self) -> dict[str, Any]:
        if isinstance(self.conn.broken, ReplyTooLarge):
            return {"output_limit": f"the program's reply exceeds {self.conn.reply_cap} bytes"}
        return {"program_gone": str(self.conn.broken)}

    def _execute(self, test: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
        try:
            if test["kind"] == "call":
                if not self.entry_point:
                    return {"judge_error": "a call test needs the problem's entry_point"}
                args = codec.loads(test["args_json"])
                if not isinstance(args, list):
                    return {"judge_error": "a call test's args_json must be a list"}
                value = namespace[self.entry_point](*args)
                try:
                    return {"value": codec.dumps(value)}
                except codec.CodecError as exc:
                    kind = value._type if isinstance(value, Remote) else type(value).__name__
                    return {"failed": f"the return value ({kind}) is not plain data: {exc}"}
            exec(test["code"], namespace)
            return {"passed": True}
        except AssertionError as exc:
            if getattr(exc, "from_program", False):
                return {"error": {"message": _detail(exc), "type": "AssertionError", "from_program": True}}
            return {"failed": _detail(exc) or "assertion failed"}
        except CannotCross as exc:
            return {"failed": _detail(exc)}
        except (ProgramGone, ReplyTooLarge):
            return self._broken()
        except BaseException as exc:
            from_program = bool(getattr(exc, "from_program", False))
            return {"error": {"message": _detail(exc), "type": type(exc).__name__, "from_program": from_program}}

    def run(self) -> None:
        try:
            self.codes = self._test_codes()
        except (OSError, ValueError, RecursionError, MemoryError):
            self.codes = []
        for test in self.order["tests"]:
            try:
                outcome = self.run_test(test)
            except BaseException as exc:  # a judge bug: the runner reports it as a sandbox error
                outcome = {"judge_error": f"{type(exc).__name__}: {exc}"[:1000]}
            self.report({"end": test["index"], **self._by_reference(outcome)})
        self.report({"done": True})

    def _by_reference(self, outcome: dict[str, Any]) -> dict[str, Any]:
        """The outcome with its texts moved to the job's details memfd, as [offset, length].
        A detail quotes the test (`<test> line 3: assert f(2) == 5`): it must not pass through
        the runner's heap, which every program process inherits; the runner copies the memfd
        to the host unread, as it copied the tests in."""
        moved = dict(outcome)
        for key in ("failed", "judge_error", "output_limit"):
            if key in moved:
                moved[key] = self._store(str(moved[key]))
        if isinstance(moved.get("error"), dict):
            error = dict(moved["error"])
            error["ref"] = self._store(str(error.pop("message", "")))
            moved["error"] = error
        if "program_gone" in moved:
            moved["program_gone"] = True
        return moved

    def _store(self, text: str) -> list[int]:
        data = text.encode("utf-8", errors="replace")[:MAX_DETAIL]
        offset = os.fstat(self.details_fd).st_size
        os.pwrite(self.details_fd, data, offset)
        return [offset, len(data)]


def serve(control: socket.socket, report_fd: int, work_dir: str) -> None:
    """The judge's life: one batch of tests per order, until the runner closes `control`.
    Each order comes with its end of the socket to that batch's program process and the memfd
    of the job's tests; the judge keeps nothing of a batch but caches of compiled code."""
    while (received := receive_order(control)) is not None:
        order, fds = received
        try:
            os.chdir(work_dir)  # the runner makes it anew for every job
            sock_fd, tests_fd, details_fd = fds
            Judge(order, report_fd, sock_fd, tests_fd, details_fd).run()
        except BaseException as exc:  # a judge bug: reported, and the runner replaces the judge
            try:
                write_frame(report_fd, {"batch": order.get("batch"), "crashed": type(exc).__name__})
            finally:
                os._exit(70)
        finally:
            for fd in fds:
                os.close(fd)
    os._exit(0)
