"""The program's process: untrusted from the moment the program runs. Stdlib only.

For `io` tests it runs the program as `__main__` and exits; for a language run by a command
(C++, Java, JavaScript: `languages.py`) it executes that command. For `assert` and `call` tests it
serves the judge's requests over a socket (frames of `protocol.py`): load the program in a
fresh namespace, look a name up, call a function, read or set an attribute. Every answer is typed
JSON (`codec.py`); objects that are not plain data stay here and cross as references.

Nothing here is trusted by anyone: a program may rebind any of it, and the judge decodes
whatever comes out strictly. It is written so that an honest program is served well.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import traceback
from types import CodeType
from typing import Any

from . import codec
from .protocol import FrameBuffer, encode_frame

SOURCES = ("<program>", "<setup>")
READ_CHUNK = 1 << 16


def describe(exc: BaseException) -> dict[str, str]:
    """An exception's type, message and the program line it came from."""
    where = ""
    try:
        for entry in reversed(traceback.extract_tb(exc.__traceback__)):
            if entry.filename in SOURCES:
                where = f"{entry.filename} line {entry.lineno}: {(entry.line or '').strip()}"
                break
        text = str(exc)
    except BaseException:
        text = ""
    name = type(exc).__name__
    message = f"{name}: {text}" if text else name
    return {"type": name, "message": message[:1000], "where": where[:1000]}


def run_main(program: CodeType, setup: CodeType | None, report_fd: int) -> None:
    """An `io` test: the program as `__main__`, then exit. A report on `report_fd` names the
    exception that ended it, if any (a hint for the verdict's detail: the verdict itself comes
    from the exit status and the output, which the runner sees for itself)."""
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    code = 0
    error: dict[str, str] | None = None
    try:
        if setup is not None:
            exec(setup, namespace)
        exec(program, namespace)
    except SystemExit as exc:
        code = 0 if exc.code in (None, 0) else (exc.code if isinstance(exc.code, int) else 1)
    except BaseException as exc:
        code, error = 1, describe(exc)
        try:
            traceback.print_exception(exc, file=sys.stderr)
        except BaseException:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if error is not None:
        try:
            os.write(report_fd, json.dumps(error).encode())
        except BaseException:
            pass
    os._exit(code & 0xFF if code else 0)


def exec_command(argv: list[str], exec_fd: int, report_fd: int) -> None:
    """A test (or the compile) of a language run by a command (`languages.py`): become it.
    `exec_fd` is the artefact to run (a sealed memfd, -1: `argv[0]` is a program of the image).
    Nothing but stdin, stdout and stderr survives the exec. If the exec fails, the program
    never ran: `report_fd`, closed by a successful exec, says so (an infrastructure fault)."""
    for fd in (exec_fd, report_fd):
        if fd >= 0:
            os.set_inheritable(fd, False)
    try:
        if exec_fd >= 0:
            os.execve(exec_fd, argv, dict(os.environ))
        os.execve(argv[0], argv, dict(os.environ))
    except OSError as exc:
        # The program's own artefact (exec_fd >= 0) the kernel will not run is the program's
        # fault (a binary whose ELF headers it shaped: ENOEXEC); a program of the image is ours.
        key = "artefact_rejected" if exec_fd >= 0 else "exec_failed"
        try:
            os.write(report_fd, json.dumps({key: f"{argv[0]}: {exc}"}).encode())
        finally:
            os._exit(127)


class Server:
    """Answers the judge's requests until the judge goes away."""

    def __init__(self, sock_fd: int, program: CodeType, setup: CodeType | None) -> None:
        self.fd = sock_fd
        self.program, self.setup = program, setup
        self.namespace: dict[str, Any] = {}
        self.objects: dict[int, Any] = {}
        self.frames = FrameBuffer()
        self.pending: list[dict[str, Any]] = []
        self.decoder = codec.Decoder(make_ref=self._resolve)

    # references: objects that stay here, numbered for the judge
    def _ref(self, value: Any) -> dict[str, Any]:
        key = id(value)
        self.objects[key] = value
        return {"id": key, "type": type(value).__name__}

    def _resolve(self, key: int, _type: str) -> Any:
        if key not in self.objects:
            raise codec.CodecError(f"unknown reference {key}")
        return self.objects[key]

    def _encode(self, value: Any) -> Any:
        return codec.encode(value, self._ref)

    def _target(self, request: dict[str, Any]) -> Any:
        if "name" in request:
            name = request["name"]
            if name not in self.namespace:
                raise NameError(f"name {name!r} is not defined by the program")
            return self.namespace[name]
        return self._resolve(request["id"], "")

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "load":
            self.namespace = {"__name__": "solution", "__builtins__": builtins}
            self.objects.clear()
            if self.setup is not None:
                exec(self.setup, self.namespace)
            exec(self.program, self.namespace)
            return {"value": None}
        target = self._target(request)
        if op == "call":
            args = [self.decoder(a) for a in request.get("args", [])]
            kwargs = {str(k): self.decoder(v) for k, v in request.get("kwargs", {}).items()}
            value = target(*args, **kwargs)
            reply: dict[str, Any] = {"value": self._encode(value)}
            back = []
            for index, (arg, sent) in enumerate(zip(args, request.get("args", []))):
                if type(arg) in (list, dict, set, bytearray):
                    now = self._encode(arg)
                    if now != sent:  # the function changed its argument in place
                        back.append([index, now])
            if back:
                reply["args_back"] = back
            return reply
        if op == "get":
            return {"value": self._encode(target)}
        if op == "attr":
            return {"value": self._encode(getattr(target, str(request["attr"])))}
        if op == "setattr":
            setattr(target, str(request["attr"]), self.decoder(request["value"]))
            return {"value": None}
        if op == "str":
            return {"value": str(target)}
        if op == "repr":
            return {"value": repr(target)}
        if op == "len":
            return {"value": len(target)}
        if op == "iter":
            return {"value": self._encode(iter(target))}
        if op == "next":
            try:
                return {"value": self._encode(next(target))}
            except StopIteration:
                return {"stop": True}
        raise ValueError(f"unknown request {op!r}")

    def receive(self) -> dict[str, Any] | None:
        while not self.pending:
            data = os.read(self.fd, READ_CHUNK)
            if not data:
                return None
            self.pending.extend(self.frames.feed(data))
        return self.pending.pop(0)

    def send(self, reply: dict[str, Any]) -> None:
        try:
            frame = encode_frame(reply)
        except (ValueError, TypeError, RecursionError, OverflowError) as exc:
            frame = encode_frame({"unencodable": f"{type(exc).__name__}: {exc}"[:1000]})
        view = memoryview(frame)
        while view:
            view = view[os.write(self.fd, view) :]

    def serve(self) -> None:
        while (request := self.receive()) is not None:
            try:
                reply = self.handle(request)
            except codec.CodecError as exc:
                reply = {"unencodable": str(exc)[:1000]}
            except BaseException as exc:  # the program's own failure, for the judge to see
                reply = {"raise": describe(exc)}
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:
                    pass
            self.send(reply)
        os._exit(0)
