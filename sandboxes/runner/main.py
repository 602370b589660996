"""The in-container runner: PID 1 of every sandbox container. Stdlib only.

It reads length-prefixed JSON frames (jobs, cancellations) from its stdin, which is the
container's attach stream, and answers with frames on its stdout. For each test of a job it
forks a fresh process that gets: a new session, its own pipes for stdin/stdout/stderr/report
(every other descriptor closed, the channel included), a clean environment, the job's own
working directory, rlimits for CPU time, address space, file size and open files, and
`oom_score_adj` 1000 so the kernel kills it, not the runner, when memory runs out.

The runner decides each verdict itself (see `judge.py`), kills every other process in the
container's PID namespace after each test (`kill(-1, SIGKILL)` from PID 1 reaches all of them
and nothing outside), and wipes the writable tmpfs after each job. It marks itself
non-dumpable, so programs running under the same uid can neither ptrace it nor read or
write its memory (and so its verdicts). Expected outputs never reach it: the host compares
`io` and `call` outputs itself (see `judge.py`). Its health (stray processes, own memory) goes back
with every result so the host can recycle a container that looks wrong.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import importlib
import json
import os
import resource
import selectors
import shutil
import signal
import struct
import sys
import time
from types import CodeType
from typing import Any

from . import harness
from .judge import Observation, judge

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024
WORK_ROOTS = ("/tmp", "/dev/shm")
JOB_DIR = "/tmp/job"
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": JOB_DIR, "TMPDIR": JOB_DIR}
READ_CHUNK = 65536
RESULT_SLACK = 1 << 20  # a call test's return value may be larger than its printed output cap
FILE_SIZE_LIMIT = 64 * 1024 * 1024
# Imported once here so that forked test processes find them loaded: `typing` alone costs a
# few milliseconds per process otherwise, and most generated programs import it.
PRELOAD = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "fractions", "decimal", "statistics", "random", "copy", "datetime", "hashlib", "operator", "array", "dataclasses", "enum")
GC_REFREEZE_EVERY = 100
OPEN_FILES_LIMIT = 256


class Cancelled(Exception):
    pass


class Channel:
    """Length-prefixed JSON frames over a pair of file descriptors."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self.fd_in, self.fd_out = fd_in, fd_out
        self.buffer = b""
        self.pending: list[dict[str, Any]] = []
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        view = memoryview(HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fd_out, view) :]

    def _parse(self) -> None:
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes exceeds {MAX_FRAME}")
            if len(self.buffer) < HEADER.size + size:
                return
            body = self.buffer[HEADER.size : HEADER.size + size]
            self.buffer = self.buffer[HEADER.size + size :]
            self.pending.append(json.loads(body))

    def feed(self) -> None:
        """Read what is available (one read) and parse complete frames."""
        data = os.read(self.fd_in, READ_CHUNK)
        if not data:
            self.closed = True
        self.buffer += data
        self._parse()

    def receive(self) -> dict[str, Any] | None:
        """The next frame, blocking; None once the host has closed the channel."""
        while not self.pending:
            if self.closed:
                return None
            self.feed()
        return self.pending.pop(0)


def _set_non_dumpable() -> None:
    PR_SET_DUMPABLE = 4
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        print("runner: could not mark itself non-dumpable", file=sys.stderr)


def _other_pids() -> list[int]:
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_strays(deadline_s: float = 1.0) -> int:
    """Kill every process in this PID namespace but the runner; return how many survived."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap()
        left = _other_pids()
        if not left or time.monotonic() > end:
            return len(left)
        time.sleep(0.001)


def wipe_work_dirs() -> None:
    def force(func: Any, path: str, _exc: Any) -> None:
        os.chmod(os.path.dirname(path), 0o700)
        os.chmod(path, 0o700) if os.path.isdir(path) else None
        func(path)

    for root in WORK_ROOTS:
        try:
            entries = os.listdir(root)
        except OSError:
            continue
        for name in entries:
            path = os.path.join(root, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, onerror=force)
                else:
                    os.unlink(path)
            except OSError as exc:
                print(f"runner: could not remove {path}: {exc}", file=sys.stderr)


def _oom_kills() -> int:
    """Out-of-memory kills in this container's cgroup so far (v2 or v1); 0 if unreadable."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return 0


def _vsize() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _child(fds: dict[int, int], cpu_s: int, address_space: int, run: Any) -> None:
    """In the forked test process: isolate, then hand over to the harness. Never returns.

    Kept short on purpose: every object touched here costs a copy-on-write page fault.
    What can be set once (environment, stdio objects, file-size/descriptor/core limits,
    signal dispositions) is set on the runner at start-up and inherited.
    """
    try:
        os.setsid()
        for target, fd in fds.items():
            os.dup2(fd, target)
        os.closerange(max(fds) + 1, OPEN_FILES_LIMIT)
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        os.chdir(JOB_DIR)
        run()
    finally:
        os._exit(70)


def _prepare_process() -> None:
    """Runner start-up: what every forked test process inherits."""
    os.environ.clear()
    os.environ.update(CHILD_ENV)
    sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")  # type: ignore[attr-defined]
    sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace", line_buffering=True)  # type: ignore[attr-defined]
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[attr-defined]
    sys.argv = ["solution.py"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES_LIMIT, OPEN_FILES_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # PID 1 receives no signal from inside its namespace unless it has a handler for it.
    # Python installs one for SIGINT; dropping it means a program cannot signal the runner.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Runner:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.jobs = 0
        self.selector = selectors.DefaultSelector()
        self.vsize = _vsize()
        self.oom_kills = _oom_kills()

    def _new_oom_kill(self, status: int | None) -> bool:
        """Did the kernel's OOM killer act since we last looked? Only read after a SIGKILL."""
        if status is None or not os.WIFSIGNALED(status) or os.WTERMSIG(status) != signal.SIGKILL:
            return False
        before, self.oom_kills = self.oom_kills, _oom_kills()
        return self.oom_kills > before

    def _check_cancel(self, job_id: Any) -> None:
        for frame in list(self.channel.pending):
            if frame.get("type") == "cancel" and frame.get("id") == job_id:
                self.channel.pending.remove(frame)
                raise Cancelled()

    def run_test(self, job: dict[str, Any], test: dict[str, Any], codes: dict[str, Any], limits: dict[str, Any]) -> tuple[str, str, float]:
        kind = test["kind"]
        nonce = os.urandom(16).hex()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        if kind == "io":
            stdin_fd = os.memfd_create("stdin")
            data = test["stdin"].encode("utf-8", errors="surrogateescape")
            view = memoryview(data)
            while view:
                view = view[os.write(stdin_fd, view) :]
            os.lseek(stdin_fd, 0, os.SEEK_SET)
        else:
            stdin_fd = os.open(os.devnull, os.O_RDONLY)

        def run() -> None:
            harness.run(kind, nonce, 3, codes["program"], codes["setup"], codes.get("test"), job.get("entry_point", ""), test.get("args_json", "[]"))

        cpu_s = max(1, int(limits["time_limit_s"] + 0.999))
        address_space = self.vsize + limits["memory_limit_mb"] * 1024 * 1024
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child({0: stdin_fd, 1: out_w, 2: err_w, 3: res_w}, cpu_s, address_space, run)
        for fd in (out_w, err_w, res_w, stdin_fd):
            os.close(fd)
        caps = {out_r: limits["output_limit_bytes"], err_r: limits["output_limit_bytes"], res_r: limits["output_limit_bytes"] + RESULT_SLACK}
        buffers: dict[int, bytearray] = {fd: bytearray() for fd in caps}
        pidfd = os.pidfd_open(pid)
        for fd in (*caps, pidfd):
            self.selector.register(fd, selectors.EVENT_READ)
        self.selector.register(self.channel.fd_in, selectors.EVENT_READ)
        timed_out = exceeded = cancelled = False
        status: int | None = None
        cpu = 0.0
        deadline = start + limits["time_limit_s"]
        try:
            while status is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in self.selector.select(remaining):
                    fd = key.fd
                    if fd == pidfd:
                        _, status, usage = os.wait4(pid, 0)
                        cpu = usage.ru_utime + usage.ru_stime
                    elif fd == self.channel.fd_in:
                        self.channel.feed()
                        try:
                            self._check_cancel(job["id"])
                        except Cancelled:
                            cancelled = True
                    else:
                        exceeded |= self._drain(fd, buffers[fd], caps[fd])
                if exceeded or cancelled or self.channel.closed:
                    break
            wall = time.monotonic() - start
            if status is None:
                os.kill(pid, signal.SIGKILL)
                _, status, usage = os.wait4(pid, 0)
                cpu = usage.ru_utime + usage.ru_stime
            for fd in caps:  # what the process wrote just before it exited
                exceeded |= self._drain(fd, buffers[fd], caps[fd], blocking=False)
        finally:
            for fd in (*caps, pidfd, self.channel.fd_in):
                self.selector.unregister(fd)
            kill_strays()
            for fd in (*caps, pidfd):
                os.close(fd)
        if cancelled or self.channel.closed:
            raise Cancelled()
        obs = Observation(
            kind=kind,
            timed_out=timed_out,
            output_exceeded=exceeded,
            status=status,
            cpu_time_s=cpu,
            cpu_limit_s=float(cpu_s),
            stdout=bytes(buffers[out_r]),
            stderr=bytes(buffers[err_r]),
            result=bytes(buffers[res_r]),
            oom_killed=self._new_oom_kill(status),
        )
        verdict, detail = judge(obs, nonce)
        return verdict, detail, wall

    @staticmethod
    def _drain(fd: int, buffer: bytearray, cap: int, blocking: bool = True) -> bool:
        """Read from fd into buffer; True when the buffer passed its cap."""
        if not blocking:
            os.set_blocking(fd, False)
        while True:
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    return False
                raise
            buffer += data
            if len(buffer) > cap:
                return True
            if not data or blocking:
                return False

    def compile_job(self, job: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """Compile setup and program once; ("", None) on success, else the verdict's detail."""
        codes: dict[str, Any] = {"setup": None}
        try:
            if job.get("setup_code"):
                codes["setup"] = harness.compile_source(job["setup_code"], "<setup>")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return None, f"setup_code does not compile: {exc}"
        try:
            codes["program"] = harness.compile_source(job["program"], "<program>")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return None, f"SyntaxError: {exc}"
        return codes, ""

    def run_job(self, job: dict[str, Any]) -> dict[str, Any]:
        limits = job["limits"]
        os.makedirs(JOB_DIR, mode=0o700, exist_ok=True)
        codes, error = self.compile_job(job)
        results: list[dict[str, Any]] = []
        stop = False
        for test in job["tests"]:
            if codes is None:
                verdict = "SANDBOX_ERROR" if error.startswith("setup_code") else "SYNTAX_ERROR"
                results.append({"verdict": verdict, "wall_time_s": 0.0, "detail": error})
                continue
            if stop:
                results.append({"verdict": "SKIPPED", "wall_time_s": 0.0, "detail": ""})
                continue
            self._check_cancel(job["id"])
            test_codes = dict(codes)
            if test["kind"] == "assert":
                try:
                    test_codes["test"] = harness.compile_test(test["code"])
                    harness.register_source("<test>", test["code"])
                except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
                    results.append({"verdict": "SANDBOX_ERROR", "wall_time_s": 0.0, "detail": f"test code does not compile: {exc}"})
                    continue
            verdict, detail, wall = self.run_test(job, test, test_codes, limits)
            results.append({"verdict": verdict, "wall_time_s": round(wall, 6), "detail": detail})
            stop = job.get("fail_fast", False) and verdict != "PASSED"
        return {"tests": results}

    def serve(self) -> int:
        self.channel.send({"type": "hello", "pid": os.getpid(), "python": sys.version.split()[0]})
        while True:
            frame = self.channel.receive()
            if frame is None:
                return 0
            if frame.get("type") != "job":
                continue  # a cancel for a job already finished
            reply: dict[str, Any] = {"type": "result", "id": frame.get("id")}
            try:
                reply.update(self.run_job(frame))
            except Cancelled:
                reply["cancelled"] = True
            except Exception as exc:  # a runner bug: report it as an infrastructure fault
                reply["error"] = f"{type(exc).__name__}: {exc}"
            strays = kill_strays() if _other_pids() else 0  # run_test sweeps after each test
            wipe_work_dirs()
            self.jobs += 1
            if self.jobs % GC_REFREEZE_EVERY == 0:
                gc.unfreeze()
                gc.collect()
                gc.freeze()
            reply["health"] = {"strays": strays, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "jobs": self.jobs}
            if self.channel.closed:
                return 0
            self.channel.send(reply)


def main() -> int:
    if os.getpid() != 1:  # kill(-1, SIGKILL) anywhere but in its own PID namespace is a disaster
        print("runner: refusing to start: it must be PID 1 of a sandbox container", file=sys.stderr)
        return 2
    _set_non_dumpable()
    chan_in, chan_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    _prepare_process()
    for name in PRELOAD:
        importlib.import_module(name)
    # Children inherit the runner's heap copy-on-write; a garbage collection in a child would
    # touch (and so copy) every page of it. Frozen objects are skipped by the collector.
    gc.collect()
    gc.freeze()
    return Runner(Channel(chan_in, chan_out)).serve()


if __name__ == "__main__":
    sys.exit(main())
