"""The in-container runner: PID 1 of every sandbox container. Stdlib only.

It reads length-prefixed JSON frames (jobs, cancellations) from its stdin, which is the
container's attach stream, and answers with frames on its stdout. Each test of a job runs in
its own forked process (see `process.py`) with a new session, its own pipes, every other
descriptor closed (the channel included), a clean environment, the job's own working
directory, rlimits for CPU time, address space, file size and open files, and
`oom_score_adj` 1000 so that the kernel kills it, not the runner, when memory runs out.

The runner judges each test itself (see `judge.py`) from what it observed outside the
process, kills every other process in the container's PID namespace after each test
(`kill(-1, SIGKILL)` from PID 1 reaches all of them and nothing outside), and wipes the
writable tmpfs after each job. It marks itself non-dumpable, so programs running under the
same uid can neither ptrace it nor read or write its memory (and so its verdicts). Expected
outputs never reach it: the host compares `io` and `call` outputs itself. Its health (stray
processes, own memory) goes back with every result, so the host can recycle a container
that looks wrong.
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
import signal
import struct
import sys
import time
from typing import Any

from . import harness
from .judge import Observation, judge, parse_frame
from .process import (
    JOB_DIR,
    OPEN_FILES_LIMIT,
    Spare,
    SpareLost,
    fingerprint,
    fork_spare,
    give_order,
    kill_strays,
    oom_kills,
    poll_exit,
    vsize,
    wipe_work_dirs,
)

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": JOB_DIR, "TMPDIR": JOB_DIR}
READ_CHUNK = 65536
RESULT_SLACK = 1 << 20  # a call test's return value may be larger than its printed output cap
FILE_SIZE_LIMIT = 64 * 1024 * 1024
# Imported once here so that forked test processes find them loaded instead of paying for
# the import in every process. Kept small: every module makes each fork slower (measured in
# the image: bare 0.78 ms, these 0.91 ms, adding decimal/statistics/random/datetime 1.11 ms).
PRELOAD = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string")
GC_REFREEZE_EVERY = 100
COMPILE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)


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

    def feed(self) -> None:
        """Read what is available (one read) and parse complete frames."""
        data = os.read(self.fd_in, READ_CHUNK)
        if not data:
            self.closed = True
        self.buffer += data
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes exceeds {MAX_FRAME}")
            if len(self.buffer) < HEADER.size + size:
                return
            self.pending.append(json.loads(self.buffer[HEADER.size : HEADER.size + size]))
            self.buffer = self.buffer[HEADER.size + size :]

    def receive(self) -> dict[str, Any] | None:
        """The next frame, blocking; None once the host has closed the channel."""
        while not self.pending:
            if self.closed:
                return None
            self.feed()
        return self.pending.pop(0)


def _drain(fd: int, buffer: bytearray, cap: int, blocking: bool = True) -> bool:
    """Read from fd into buffer (one read, or all that is ready); True once past the cap."""
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


class Runner:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.jobs = 0
        self.selector = selectors.DefaultSelector()
        self.selector.register(channel.fd_in, selectors.EVENT_READ)
        self.vsize = vsize()
        self.oom_kills = oom_kills()
        self.spare: Spare | None = None
        self.spare_exposed = False
        self.fingerprint = fingerprint()

    def _new_oom_kill(self, status: int | None) -> bool:
        """Did the kernel's OOM killer act since we last looked? Only read after a SIGKILL."""
        if status is None or not os.WIFSIGNALED(status) or os.WTERMSIG(status) != signal.SIGKILL:
            return False
        before, self.oom_kills = self.oom_kills, oom_kills()
        return self.oom_kills > before

    def _check_cancel(self, job_id: Any) -> None:
        for frame in list(self.channel.pending):
            if frame.get("type") == "cancel" and frame.get("id") == job_id:
                self.channel.pending.remove(frame)
                raise Cancelled()

    def _take_spare(self) -> Spare:
        spare, self.spare = self.spare, None
        return spare if spare is not None else fork_spare()

    def run_batch(
        self, job: dict[str, Any], batch: list[tuple[int, dict[str, Any], Any]], codes: dict[str, Any], more: bool
    ) -> dict[int, dict[str, Any]]:
        """Run consecutive tests in one process, one after the other, each judged on its own.

        `batch` holds (index, test, compiled test code); `more` when tests follow (fork their
        process now). Returns the results of the tests that were decided; a test after one
        that ended the process (crash, exit, timeout, output flood) is left out, to be run
        in a fresh process.
        """
        limits = job["limits"]
        cpu_s = max(1, int(limits["time_limit_s"] + 0.999)) * len(batch)
        nonces = [os.urandom(16).hex() for _ in batch]
        order = {
            "tests": [
                {"kind": t["kind"], "nonce": n, "code": code, "args_json": t.get("args_json", "[]")}
                for (_, t, code), n in zip(batch, nonces)
            ],
            "program": codes["program"],
            "setup": codes["setup"],
            "sources": codes["sources"],
            "entry_point": job.get("entry_point", ""),
            "cpu_s": cpu_s,
            "address_space": self.vsize + limits["memory_limit_mb"] * 1024 * 1024,
        }
        first = batch[0][1]
        stdin = first["stdin"].encode("utf-8", errors="surrogateescape") if first["kind"] == "io" else b""
        spare = self._take_spare()
        start = time.monotonic()
        try:
            give_order(spare, order, stdin)
        except SpareLost:  # killed by a process of the previous test: use a fresh one
            spare.close()
            kill_strays()
            spare = fork_spare()
            start = time.monotonic()
            give_order(spare, order, stdin)
        if more:  # the next process, forked while this one runs
            self.spare = fork_spare()
            self.spare_exposed = True  # this job's program could signal it: not for another job
        output_cap = limits["output_limit_bytes"] * len(batch)
        caps = {spare.stdout: output_cap, spare.stderr: output_cap, spare.result: output_cap + RESULT_SLACK}
        buffers: dict[int, bytearray] = {fd: bytearray() for fd in caps}
        watched = {*caps, spare.exit_fd}
        for fd in watched:
            self.selector.register(fd, selectors.EVENT_READ)
        decided: dict[int, dict[str, Any]] = {}
        current = 0  # position in the batch of the test running now
        timed_out = exceeded = cancelled = stop = False
        status: int | None = None
        cpu = 0.0
        began = start
        fail_fast = job.get("fail_fast", False)

        def settle(obs_status: int | None, now: float, timed_out: bool = False, exceeded: bool = False) -> None:
            """Judge the running test, and start the next one's clock."""
            nonlocal current, began, stop
            index, test, _ = batch[current]
            obs = Observation(
                kind=test["kind"],
                timed_out=timed_out,
                output_exceeded=exceeded,
                status=obs_status,
                cpu_time_s=cpu,
                cpu_limit_s=float(cpu_s),
                stdout=bytes(buffers[spare.stdout]),
                stderr=bytes(buffers[spare.stderr]),
                result=bytes(buffers[spare.result]),
                oom_killed=self._new_oom_kill(obs_status),
            )
            verdict, detail = judge(obs, nonces[current])
            decided[index] = {"verdict": verdict, "wall_time_s": round(now - began, 6), "detail": detail}
            stop = fail_fast and verdict != "PASSED"
            current, began = current + 1, now

        def reported() -> bool:
            return current < len(batch) and not stop and parse_frame(bytes(buffers[spare.result]), nonces[current]) is not None

        try:
            while current < len(batch) and status is None and not (exceeded or cancelled or stop or self.channel.closed):
                remaining = began + limits["time_limit_s"] - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in self.selector.select(remaining):
                    if key.fd == spare.exit_fd:
                        ended = poll_exit(spare)
                        if ended is not None:
                            status, cpu = ended
                    elif key.fd == self.channel.fd_in:
                        self.channel.feed()
                        try:
                            self._check_cancel(job["id"])
                        except Cancelled:
                            cancelled = True
                    else:
                        before = len(buffers[key.fd])
                        exceeded |= _drain(key.fd, buffers[key.fd], caps[key.fd])
                        if len(buffers[key.fd]) == before:  # end of file: stop watching
                            self.selector.unregister(key.fd)
                            watched.discard(key.fd)
                while not exceeded and reported():
                    settle(0, time.monotonic())
            now = time.monotonic()
            if status is None:
                os.kill(spare.pid, signal.SIGKILL)
                if current >= len(batch) or stop:
                    status = 0  # every test it had to run reported; the sweep reaps it
                else:
                    _, status, usage = os.wait4(spare.pid, 0)
                    cpu = usage.ru_utime + usage.ru_stime
            for fd in caps:  # what the process wrote just before it ended
                exceeded |= _drain(fd, buffers[fd], caps[fd], blocking=False)
            while not (timed_out or exceeded) and reported():  # reports that came with its end
                settle(0, now)
            if current < len(batch) and not stop and not (cancelled or self.channel.closed):
                # This test ended the process, or ran out of time or output. The tests after
                # it are left undecided: they run again in a fresh process.
                settle(status, now, timed_out, exceeded)
        finally:
            for fd in watched:
                self.selector.unregister(fd)
            if more:  # the last test's processes are swept after the reply, off the critical path
                kill_strays(keep=self.spare.pid if self.spare else None)
            spare.close()
        if cancelled or self.channel.closed:
            raise Cancelled()
        return decided

    @staticmethod
    def compile_job(job: dict[str, Any]) -> tuple[dict[str, Any] | None, str, str]:
        """Compile setup and program once: (codes, "", "") or (None, verdict, detail)."""
        codes: dict[str, Any] = {"setup": None, "sources": {"<program>": job["program"]}}
        try:
            if job.get("setup_code"):
                codes["setup"] = compile(job["setup_code"], "<setup>", "exec", dont_inherit=True)
                codes["sources"]["<setup>"] = job["setup_code"]
        except COMPILE_ERRORS as exc:
            return None, "SANDBOX_ERROR", f"setup_code does not compile: {exc}"
        try:
            codes["program"] = compile(job["program"], "<program>", "exec", dont_inherit=True)
        except COMPILE_ERRORS as exc:
            return None, "SYNTAX_ERROR", f"{type(exc).__name__}: {exc}"
        return codes, "", ""

    def run_job(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        os.makedirs(JOB_DIR, mode=0o700, exist_ok=True)
        codes, bad_verdict, bad_detail = self.compile_job(job)
        tests = job["tests"]
        results: dict[int, dict[str, Any]] = {}
        if codes is None:
            return [{"verdict": bad_verdict, "wall_time_s": 0.0, "detail": bad_detail} for _ in tests]
        pending: list[tuple[int, dict[str, Any], Any]] = []
        sources = dict(codes["sources"])
        for index, test in enumerate(tests):
            code = None
            if test["kind"] == "assert":
                try:
                    code = harness.compile_test(test["code"])
                except COMPILE_ERRORS as exc:
                    results[index] = {"verdict": "SANDBOX_ERROR", "wall_time_s": 0.0, "detail": f"test code does not compile: {exc}"}
                    continue
                sources["<test>"] = test["code"]  # for tracebacks (the last one wins: tests share the name)
            pending.append((index, test, code))
        codes = {**codes, "sources": sources}
        failed = False
        while pending and not failed:
            self._check_cancel(job["id"])
            # io tests run alone (their stdout is the output); others share a process.
            size = 1 if pending[0][1]["kind"] == "io" else next((i for i, p in enumerate(pending) if p[1]["kind"] == "io"), len(pending))
            batch, rest = pending[:size], pending[size:]
            decided = self.run_batch(job, batch, codes, more=bool(rest))
            results.update(decided)
            pending = [p for p in batch if p[0] not in decided] + rest
            failed = job.get("fail_fast", False) and any(r["verdict"] != "PASSED" for r in decided.values())
        for index, _, _ in pending:
            results[index] = {"verdict": "SKIPPED", "wall_time_s": 0.0, "detail": ""}
        return [results[i] for i in range(len(tests))]

    def _clean_up(self) -> str | None:
        """After a job's reply: leave the container as a new one would be, or say why not.

        Kills every process but a clean waiting spare (a spare forked while this job's
        program ran could have been tampered with, stopped say, so it goes too), checks that
        nobody changed the runner's own limits or scheduling, and empties the tmpfs.
        """
        if self.spare is not None and self.spare_exposed:
            self.spare.close()
            self.spare = None
        if kill_strays(keep=self.spare.pid if self.spare else None, wait=True):
            return "stray_processes"
        if fingerprint() != self.fingerprint:
            return "runner_tampered"
        if wipe_work_dirs():
            return "work_dirs_not_empty"
        return None

    def serve(self) -> int:
        self.spare = fork_spare()
        self.channel.send({"type": "hello", "pid": os.getpid(), "python": sys.version.split()[0]})
        while True:
            frame = self.channel.receive()
            if frame is None:
                return 0
            if frame.get("type") != "job":
                continue  # a cancel for a job already finished
            reply: dict[str, Any] = {"type": "result", "id": frame.get("id")}
            try:
                reply["tests"] = self.run_job(frame)
            except Cancelled:
                reply["cancelled"] = True
            except Exception as exc:  # a runner bug: reported as an infrastructure fault
                reply["error"] = f"{type(exc).__name__}: {exc}"
            self.jobs += 1
            reply["health"] = {"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "jobs": self.jobs}
            if self.channel.closed:
                return 0
            self.channel.send(reply)
            # Off the critical path: the host is busy with the reply meanwhile. The next job is
            # not read before this is done, so it never lands on a dirty container: if the
            # container cannot be made clean, the runner says so and exits.
            problem = self._clean_up()
            if problem is not None:
                self.channel.send({"type": "retire", "reason": problem})
                print(f"runner: retiring ({problem})", file=sys.stderr)
                return 3
            if self.jobs % GC_REFREEZE_EVERY == 0:
                gc.unfreeze()
                gc.collect()
                gc.freeze()
            if self.spare is None:
                self.spare, self.spare_exposed = fork_spare(), False


def _set_non_dumpable() -> None:
    PR_SET_DUMPABLE = 4
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        print("runner: could not mark itself non-dumpable", file=sys.stderr)


def _prepare_process() -> None:
    """Runner start-up: what every forked test process inherits."""
    os.environ.clear()
    os.environ.update(CHILD_ENV)
    sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")  # type: ignore[union-attr]
    sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace", line_buffering=True)  # type: ignore[union-attr]
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    sys.argv = ["solution.py"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES_LIMIT, OPEN_FILES_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # PID 1 receives no signal from inside its namespace unless it has a handler for it.
    # Python installs one for SIGINT; dropping it means a program cannot signal the runner.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
