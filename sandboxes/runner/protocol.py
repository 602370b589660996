"""The host ↔ runner protocol, written down once. Stdlib only: the host (`sandboxes/`) and the
runner inside the container (`sandboxes/runner/`) both import it.

Framing: every message is a 4-byte big-endian length, then that many bytes of UTF-8 JSON
holding one object with a `type`. The host writes frames to the container's stdin (its
attach stream); the runner answers on its stdout. The same framing carries the judge ↔
program calls inside the container (`judge.py`, `program.py`).

Conversation: the runner says `hello` once; then for each `job` it answers exactly one
`result` (or `result` with `cancelled` after a `cancel`), and after the result, once the
container is clean again, either `ready` (the next job may come) or `retire` (it exits). The
host hands a container to the next job only after `ready`, so a job never races a retiring
runner.

A job of a compiled language (`languages.py`) either carries the artefacts of an earlier
compile of the same source (`artefact`, from the host's binary cache) or is compiled in the
container first; its result then carries the compile's outcome and artefacts (`compiled`),
for the host to cache.

A `job` frame is followed by `judge_bytes` raw bytes, the tests' code (a JSON list), and a
`result` frame by `detail_bytes` raw bytes, the judge's texts that its reports point into
(`detail_ref`): the runner moves both between the host and the judge without reading them,
so that no process it forks (a program's) inherits a copy of a test.

The timeout rule: a test's limit is CPU time (`time_limit_s`, of the program's process);
its wall clock is capped at `WALL_FACTOR` times that plus `WALL_SLACK_S`, so that a program
that sleeps still ends. The wall clock of a test leaves out the time its program and judge
spent runnable but waiting for a CPU (the kernel's run-queue delay, `/proc/PID/schedstat`):
a busy machine slows a test down without bringing it closer to TIMEOUT, so a verdict does not
depend on load. Past `OVERLOAD_FACTOR` times the cap in real time the test is a TIMEOUT however
long it waited: a program can make its own threads wait (SCHED_IDLE, pinned behind the judge),
so waiting is never proof of an overloaded machine, and a program must not be able to turn a
wrong answer into SANDBOX_ERROR (masked: better for a policy than a 0).
"""

from __future__ import annotations

import base64
import enum
import json
import marshal
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024

# Wall-clock cap of one test: WALL_FACTOR × its CPU-time limit + WALL_SLACK_S. Judges people
# trust do the same (a CPU limit, a wall limit a few times larger): on 2 cores with 4 busy
# sandboxes a CPU-bound test gets about half a core, so 3× leaves room for worse than that.
WALL_FACTOR = 3.0
WALL_SLACK_S = 1.0
# Real time a test may take while its threads wait for a CPU, as a multiple of its wall cap
# (then TIMEOUT), divided by the container's CPU quota where that is under one core
# (`overload_cap_s`); the host's deadline for a job (`job_deadline_s`) allows for it.
OVERLOAD_FACTOR = 3.0

# Output a job's reports may carry, over all its tests (io stdout, call return values): more
# is OUTPUT_LIMIT. They cross in one JSON frame, up to six times their size.
MAX_JOB_OUTPUT_BYTES = 16 * 1024 * 1024

# uids and gids inside the container. The runner (PID 1) is root with a handful of
# capabilities; the program and the judge each run under their own unprivileged uid, so that
# the program can neither signal, trace nor read the memory of the judge or the runner.
PROGRAM_UID = 10001
JUDGE_UID = 10002

# What compile() raises for source it cannot compile: SyntaxError; ValueError (a NUL byte, on
# some Pythons); RecursionError or MemoryError (code nested too deeply); OverflowError (CPython's
# C-level size checks, kept to be safe). One tuple for both sides: the runner reports such a
# program as SYNTAX_ERROR and such setup code as SANDBOX_ERROR, and the host's validation
# (reward_server/validation.py) rejects such test or setup code before a job is made, so both
# mean the same by "does not compile".
COMPILE_ERRORS: tuple[type[Exception], ...] = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)


def wall_cap_s(time_limit_s: float) -> float:
    return WALL_FACTOR * time_limit_s + WALL_SLACK_S


def overload_cap_s(time_limit_s: float, cpus: float) -> float:
    """Real time a test may take, waiting included, in a container allowed `cpus` cores. Held
    to a fraction of a core, a container runs a second of CPU in 1/cpus seconds however idle
    the machine is, so the cap grows by that much there: the quota the operator chose must not
    turn a right program into a TIMEOUT (nor a compile into a COMPILE_ERROR)."""
    return OVERLOAD_FACTOR * wall_cap_s(time_limit_s) / min(1.0, cpus)


def job_deadline_s(n_tests: int, time_limit_s: float, grace_s: float, cpus: float) -> float:
    """How long the host waits for a job's result before calling its container unresponsive:
    each test's cap, and slack for the runner's own work around the tests, which runs at the
    container's quota too (so it grows by 1/cpus as the cap does)."""
    slow = 1.0 / min(1.0, cpus)
    return n_tests * (overload_cap_s(time_limit_s, cpus) + 0.5 * slow) + grace_s * slow


class Verdict(enum.Enum):
    """Outcome of one test, or of one program (its worst test)."""

    PASSED = "PASSED"
    FAILED = "FAILED"  # assertion failed or wrong output
    RUNTIME_ERROR = "RUNTIME_ERROR"
    SYNTAX_ERROR = "SYNTAX_ERROR"
    TIMEOUT = "TIMEOUT"
    MEMORY_LIMIT = "MEMORY_LIMIT"
    OUTPUT_LIMIT = "OUTPUT_LIMIT"
    SKIPPED = "SKIPPED"  # not run because an earlier test failed and fail_fast was set
    SANDBOX_ERROR = "SANDBOX_ERROR"  # infrastructure fault: never the program's fault
    COMPILE_ERROR = "COMPILE_ERROR"  # the program does not compile (the compiler's first errors)


Files = tuple[tuple[str, bytes], ...]  # (name, content): a compile's artefacts


def _files_out(files: Files) -> dict[str, str]:
    return {name: base64.b64encode(data).decode() for name, data in files}


def _files_in(value: Any) -> Files:
    return tuple((str(name), base64.b64decode(data)) for name, data in dict(value).items())


def encode_frame(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    return HEADER.pack(len(data)) + data


def write_frame(fd: int, message: dict[str, Any]) -> None:
    """One frame to a descriptor, whole (a blocking write may take several calls)."""
    view = memoryview(encode_frame(message))
    while view:
        view = view[os.write(fd, view) :]


class FrameBuffer:
    """Accumulates bytes and yields complete frames. Raises ValueError on a bad frame."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.data = bytearray()
        self.max_frame = max_frame

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self.data += chunk
        frames = []
        while len(self.data) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.data)
            if size > self.max_frame:
                raise ValueError(f"frame of {size} bytes exceeds {self.max_frame}")
            if len(self.data) < HEADER.size + size:
                break
            frame = json.loads(bytes(self.data[HEADER.size : HEADER.size + size]))
            del self.data[: HEADER.size + size]
            if not isinstance(frame, dict):
                raise ValueError("a frame must hold a JSON object")
            frames.append(frame)
        return frames


# -- orders to forked processes (inside the container) ------------------------------------------

ORDER_HEADER = 8


def send_order(sock: socket.socket, order: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
    """One order to a process forked by the runner: a length, then `marshal` data (code objects
    included), with descriptors passed alongside (SCM_RIGHTS). Only the runner sends these."""
    data = marshal.dumps(order)
    header = len(data).to_bytes(ORDER_HEADER, "big")
    if fds:
        socket.send_fds(sock, [header], list(fds))
    else:
        sock.sendall(header)
    sock.sendall(data)


def receive_order(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """The next order and its descriptors; None once the runner has closed the socket."""
    header, fds = b"", []
    while len(header) < ORDER_HEADER:
        chunk, got, _, _ = socket.recv_fds(sock, ORDER_HEADER - len(header), 4)
        fds += got
        if not chunk:
            for fd in fds:
                os.close(fd)
            return None
        header += chunk
    size = int.from_bytes(header, "big")
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return marshal.loads(bytes(data)), fds


# -- the job ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobLimits:
    time_limit_s: float  # CPU seconds per test (the wall clock is capped by `wall_cap_s`)
    memory_limit_mb: int
    output_limit_bytes: int


@dataclass(frozen=True)
class JobTest:
    """One test as the runner sees it. Expected outputs of `io` and `call` tests never enter
    the container: the host compares them. `code` is an assert test's statements (run by the
    judge, never by the program); `args_json` a call test's typed-JSON argument list. An `io`
    test may also carry command-line arguments and files, put read-only in its working
    directory before it starts (a checker's input, output and answer: `sandboxes/checkers.py`)."""

    kind: str  # "assert" | "io" | "call"
    code: str = ""
    stdin: str = ""
    args_json: str = "[]"
    args: tuple[str, ...] = ()
    files: Files = ()


@dataclass(frozen=True)
class Job:
    program: str
    tests: tuple[JobTest, ...]
    limits: JobLimits
    setup_code: str = ""
    entry_point: str = ""
    program_names: tuple[str, ...] = ()  # names besides the entry point a test may read from the program
    fail_fast: bool = False
    language: str = "python"
    artefact: Files | None = None  # a compiled language's artefacts from the host's cache; None: compile here
    compile_cpu_s: float = 0.0  # the compile's limits, from the host's registry (0: the runner's)
    compile_memory_mb: int = 0
    compile_files: Files = ()  # headers the source includes, written next to it for the compile (testlib.h)

    def to_message(self, job_id: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "job",
            "id": job_id,
            "language": self.language,
            "compile_limits": [self.compile_cpu_s, self.compile_memory_mb],
            "program": self.program,
            "setup_code": self.setup_code,
            "entry_point": self.entry_point,
            "program_names": list(self.program_names),
            "fail_fast": self.fail_fast,
            "limits": {
                "time_limit_s": self.limits.time_limit_s,
                "memory_limit_mb": self.limits.memory_limit_mb,
                "output_limit_bytes": self.limits.output_limit_bytes,
            },
            # The tests' code is not in the frame: it follows it (see `judge_bytes` in container.py).
            "tests": [_test_out(t) for t in self.tests],
        }
        if self.artefact is not None:
            message["artefact"] = _files_out(self.artefact)
        if self.compile_files:
            message["compile_files"] = _files_out(self.compile_files)
        return message

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Job:
        limits = message["limits"]
        return cls(
            program=str(message["program"]),
            setup_code=str(message.get("setup_code", "")),
            entry_point=str(message.get("entry_point", "")),
            program_names=tuple(str(n) for n in message.get("program_names", ())),
            fail_fast=bool(message.get("fail_fast", False)),
            language=str(message.get("language") or "python"),
            artefact=_files_in(message["artefact"]) if message.get("artefact") is not None else None,
            compile_cpu_s=float(message.get("compile_limits", (0, 0))[0]),
            compile_memory_mb=int(message.get("compile_limits", (0, 0))[1]),
            compile_files=_files_in(message.get("compile_files") or {}),
            limits=JobLimits(float(limits["time_limit_s"]), int(limits["memory_limit_mb"]), int(limits["output_limit_bytes"])),
            tests=tuple(
                JobTest(
                    str(t["kind"]),
                    str(t.get("code", "")),
                    str(t.get("stdin", "")),
                    str(t.get("args_json", "[]")),
                    tuple(str(a) for a in t.get("args", ())),
                    _files_in(t.get("files") or {}),
                )
                for t in message["tests"]
            ),
        )


def _test_out(test: JobTest) -> dict[str, Any]:
    message: dict[str, Any] = {"kind": test.kind, "stdin": test.stdin, "args_json": test.args_json}
    if test.args:
        message["args"] = list(test.args)
    if test.files:
        message["files"] = _files_out(test.files)
    return message


# -- the result ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestReport:
    """What the runner decided about one test. Exactly one of `verdict` and `output` is set:
    `output` is the stdout of an `io` test, or the typed-JSON return value of a `call` test,
    that ran to completion within its limits and still has to be compared on the host."""

    __test__ = False  # not a pytest test class

    verdict: Verdict | None
    output: str | None = None
    wall_time_s: float = 0.0
    cpu_time_s: float = 0.0
    detail: str = ""
    detail_ref: tuple[int, int] | None = None  # (offset, length) in the result's details (the judge's texts)
    # An io test's process that exited with a status other than 0 by itself (not a signal, nor
    # an exception a Python program did not catch): that status. A checker's verdict.
    exit_code: int | None = None

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"wall_time_s": round(self.wall_time_s, 6), "cpu_time_s": round(self.cpu_time_s, 6)}
        if self.verdict is not None:
            message["verdict"] = self.verdict.value
            message["detail"] = self.detail
            if self.detail_ref is not None:
                message["detail_ref"] = list(self.detail_ref)
            if self.exit_code is not None:
                message["exit_code"] = self.exit_code
        else:
            message["output"] = self.output
        return message

    @classmethod
    def from_message(cls, message: dict[str, Any], details: bytes = b"") -> TestReport:
        wall, cpu = float(message.get("wall_time_s", 0.0)), float(message.get("cpu_time_s", 0.0))
        if "output" in message:
            return cls(None, str(message["output"]), wall, cpu)
        detail = str(message.get("detail", ""))
        ref = message.get("detail_ref")
        if isinstance(ref, list) and len(ref) == 2:
            offset, length = int(ref[0]), int(ref[1])
            detail = details[offset : offset + length].decode("utf-8", errors="replace") or detail
        code = message.get("exit_code")
        return cls(Verdict(message["verdict"]), None, wall, cpu, detail, exit_code=code if type(code) is int else None)


@dataclass(frozen=True)
class Compiled:
    """How a job's compile went: its artefacts when it compiled, else the compiler's first
    errors (`detail`). Both are facts about the source alone: the host caches them."""

    ok: bool
    detail: str = ""
    files: Files = ()
    cpu_time_s: float = 0.0
    wall_time_s: float = 0.0
    # False: it failed on a limit that the machine's state has a say in (the wall clock, the
    # container's out-of-memory killer), not on the source alone: not cached.
    cacheable: bool = True

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.files) + len(self.detail)

    def to_message(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "files": _files_out(self.files),
            "cpu_time_s": round(self.cpu_time_s, 6),
            "wall_time_s": round(self.wall_time_s, 6),
            "cacheable": self.cacheable,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Compiled:
        return cls(
            ok=bool(message.get("ok")),
            detail=str(message.get("detail", "")),
            files=_files_in(message.get("files") or {}),
            cpu_time_s=float(message.get("cpu_time_s", 0.0)),
            wall_time_s=float(message.get("wall_time_s", 0.0)),
            cacheable=bool(message.get("cacheable", True)),
        )


@dataclass(frozen=True)
class Result:
    """The runner's answer to one job: one report per test, or why there are none."""

    job_id: int
    tests: tuple[TestReport, ...] = ()
    cancelled: bool = False
    error: str = ""  # a runner bug: an infrastructure fault, never a verdict
    health: dict[str, Any] = field(default_factory=dict)
    compiled: Compiled | None = None  # the compile this job ran, if it ran one

    def fault(self, n_tests: int) -> str:
        """Why this reply is the runner's fault ("" when it is not): an error, or not one report
        for each of the job's `n_tests` tests."""
        if self.error or len(self.tests) != n_tests:
            return f"runner error: {self.error or f'{len(self.tests)} reports for {n_tests} tests'}"
        return ""

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "result", "id": self.job_id, "health": self.health}
        if self.cancelled:
            message["cancelled"] = True
        elif self.error:
            message["error"] = self.error
        else:
            message["tests"] = [t.to_message() for t in self.tests]
            if self.compiled is not None:
                message["compiled"] = self.compiled.to_message()
        return message

    @classmethod
    def from_message(cls, message: dict[str, Any], details: bytes = b"") -> Result:
        """`details`: the bytes that followed the frame (`detail_bytes` of them)."""
        return cls(
            job_id=int(message.get("id", -1)),
            tests=tuple(TestReport.from_message(t, details) for t in message.get("tests", ())),
            cancelled=bool(message.get("cancelled", False)),
            error=str(message.get("error", "")),
            health=dict(message.get("health") or {}),
            compiled=Compiled.from_message(message["compiled"]) if isinstance(message.get("compiled"), dict) else None,
        )
