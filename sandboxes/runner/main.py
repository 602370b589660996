"""The in-container runner: PID 1 of every sandbox container. Stdlib only.

It reads jobs from its stdin (the container's attach stream) in the frames of `protocol.py`
and answers each with a result. Per job it runs the tests in *batches*: an `io` test alone
in one program process; consecutive `assert` and `call` tests in one program process and one
judge process, connected by a socket (see `program.py` and `judge.py`). Every process is
forked from the runner ahead of need (see `process.py`), as root, and drops to its role's
uid once it has its order, so no program can reach a judge, a spare or the runner.

The runner never reads the tests' code: it follows the job's frame as raw bytes, which the
runner copies into a memfd for the judge through one small buffer that it zeroes after, so
that no process forked from the runner (the program's included) holds a copy in its memory.

What decides a verdict, the runner observes itself: the program process's CPU time (per
test, read from /proc; the wall clock is capped at a multiple of it, `protocol.wall_cap_s`),
its exit status, the OOM killer's count, its output against the cap, and the judge's report.
After each job it kills every other process in the container's PID namespace, wipes the
tmpfs, and checks that no IPC object and no change to its own limits or scheduling is left;
it says `ready` only once the container is as clean as a new one, else `retire` and exits.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import importlib
import json
import os
import resource
import select
import selectors
import signal
import socket
import sys
import time
from typing import Any

from . import verdict as verdicts
from .process import (
    OPEN_FILES_LIMIT,
    Spare,
    SpareLost,
    Zygote,
    fingerprint,
    give_order,
    ipc_objects,
    kill,
    kill_strays,
    make_work_dirs,
    oom_kills,
    own_cpu_seconds,
    poll_exit,
    program_cpu,
    rss_mb,
    vsize,
    wipe_work_dirs,
)
from .protocol import (
    HEADER,
    MAX_FRAME,
    FrameBuffer,
    Job,
    JobTest,
    Result,
    TestReport,
    Verdict,
    send_order,
    wall_cap_s,
    write_frame,
)

CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp/job", "TMPDIR": "/tmp/job"}
READ_CHUNK = 65536
REPLY_SLACK = 1 << 20  # a call test's return value may be larger than its printed output cap
FILE_SIZE_LIMIT = 64 * 1024 * 1024
SPARES = 1  # program processes forked ahead; a job that needs more (io tests, re-runs) forks them as it goes
JUDGE_BATCHES = 500  # the judge is replaced after this many batches
JUDGE_IDLE_WAIT_S = 0.1  # a judge not done with its last batch by then is replaced (it may be stuck in a hostile reply)
JUDGE_MAX_RSS_MB = 256  # a judge grown past this is replaced after the job
# Imported once here so that forked test processes find them loaded instead of paying for
# the import in every process. Kept small: every module makes each fork slower.
PRELOAD = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "ast", "fractions", "decimal")
GC_REFREEZE_EVERY = 100
COMPILE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)


class Cancelled(Exception):
    pass


class Channel:
    """Frames to and from the host. Reads exactly one frame at a time, never ahead: the bytes
    after a job's frame are the judge's part, which must not pass through this process's heap."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self.fd_in, self.fd_out = fd_in, fd_out
        self.closed = False
        self.pending: list[dict[str, Any]] = []
        self._scratch = bytearray(READ_CHUNK)

    def send(self, message: dict[str, Any]) -> None:
        write_frame(self.fd_out, message)

    def _read_exact(self, size: int) -> bytes | None:
        data = bytearray()
        while len(data) < size:
            chunk = os.read(self.fd_in, size - len(data))
            if not chunk:
                self.closed = True
                return None
            data += chunk
        return bytes(data)

    def read_frame(self) -> dict[str, Any] | None:
        """The next frame, blocking; None once the host has closed the channel."""
        header = self._read_exact(HEADER.size)
        if header is None:
            return None
        (size,) = HEADER.unpack(header)
        if size > MAX_FRAME:
            raise ValueError(f"frame of {size} bytes exceeds {MAX_FRAME}")
        body = self._read_exact(size)
        if body is None:
            return None
        frame = json.loads(body)
        if not isinstance(frame, dict):
            raise ValueError("a frame must hold a JSON object")
        return frame

    def receive(self) -> dict[str, Any] | None:
        return self.pending.pop(0) if self.pending else self.read_frame()

    def copy_from_memfd(self, memfd: int, size: int) -> None:
        """`size` bytes of a memfd to the host, through the same buffer, zeroed after."""
        view = memoryview(self._scratch)
        offset = 0
        try:
            while offset < size:
                got = os.preadv(memfd, [view[: min(size - offset, READ_CHUNK)]], offset)
                if not got:
                    raise OSError(f"memfd ended at {offset} of {size} bytes")
                written = 0
                while written < got:
                    written += os.write(self.fd_out, view[written:got])
                offset += got
        finally:
            view.release()
            self._scratch[:] = bytes(READ_CHUNK)

    def copy_to_memfd(self, size: int) -> int:
        """The next `size` bytes into a new memfd, through one reused buffer zeroed after."""
        memfd = os.memfd_create("tests")
        view = memoryview(self._scratch)
        left = size
        try:
            while left:
                got = os.readv(self.fd_in, [view[: min(left, READ_CHUNK)]])
                if not got:
                    self.closed = True
                    break
                written = 0
                while written < got:
                    written += os.write(memfd, view[written:got])
                left -= got
        finally:
            view.release()
            self._scratch[:] = bytes(READ_CHUNK)
        return memfd


def _read_some(fd: int, buffer: bytearray) -> int:
    """One read from fd into buffer: the bytes read, 0 at end of file, -1 when none are ready."""
    try:
        data = os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return -1
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            return -1
        raise
    buffer += data
    return len(data)


class Batch:
    """Consecutive tests of a job in one program process (and, for assert and call tests, one
    judge process). Phases: `start` hands the processes their orders; `watch` follows them
    until every test is decided or the program's process ends, runs out of CPU time, wall
    time or output; `stop` kills both and settles the test that was running. `decided` maps
    test index → report; tests after one that ended the program's process are left for a
    fresh batch."""

    def __init__(self, runner: Runner, job: Job, tests: list[tuple[int, JobTest]], codes: dict[str, Any], fds: tuple[int, int]) -> None:
        self.runner, self.job, self.tests, self.codes = runner, job, tests, codes
        self.tests_fd, self.details_fd = fds  # the job's memfds: tests' code in, judge's texts out
        self.io = tests[0][1].kind == "io"
        self.limits = job.limits
        self.cpu_limit = job.limits.time_limit_s
        self.wall_limit = wall_cap_s(job.limits.time_limit_s)
        self.output_cap = job.limits.output_limit_bytes * len(tests)
        self.decided: dict[int, TestReport] = {}
        self.position = 0  # the test running now (or next): index into self.tests
        self.program: Spare | None = None
        self.judge: Spare | None = None
        self.outputs: dict[int, bytearray] = {}
        self.program_status: tuple[int, float] | None = None
        self.gone_cpu = 0.0  # CPU of the program's processes reaped by the runner in this batch
        self.output_exceeded = self.cancelled = self.stopped = False
        self.watched: set[int] = set()
        runner.batches += 1
        self.batch_id = runner.batches

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        self.program = self.runner.take_spare()
        cpu_s = max(1, int(self.cpu_limit * len(self.tests) + 0.999)) + 1
        order = {
            "role": "main" if self.io else "program",
            "program": self.codes["program"],
            "setup": self.codes["setup"],
            "sources": self.codes["sources"],
            "cpu_s": cpu_s,
            "address_space": self.runner.vsize + self.limits.memory_limit_mb * 1024 * 1024,
        }
        if self.io:
            stdin = self.tests[0][1].stdin.encode("utf-8", errors="surrogateescape")
            self.program = self._give(self.program, order, stdin=stdin)
        else:
            self.judge = self.runner.ready_judge()
            judge_end, program_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.program = self._give(self.program, order, fds=(program_end.fileno(),))
                self.runner.judge_busy, self.runner.judge_batch = True, self.batch_id
                self.runner.judge_served += 1
                assert self.judge.order is not None
                send_order(self.judge.order, self._judge_order(), fds=(judge_end.fileno(), self.tests_fd, self.details_fd))
            finally:
                judge_end.close()
                program_end.close()
            self._watch_fd(self.judge.report)
            self._watch_fd(self.judge.exit_fd)
        for fd in (self.program.stdout, self.program.stderr, self.program.exit_fd):
            self._watch_fd(fd)
        self.outputs = {self.program.stdout: bytearray(), self.program.stderr: bytearray(), self.program.report: bytearray()}
        self._begin_clock()

    def _judge_order(self) -> dict[str, Any]:
        return {
            "batch": self.batch_id,
            "tests": [{"index": i, "kind": t.kind, "args_json": t.args_json, "code_index": i} for i, t in self.tests],
            "setup": self.codes["setup"],
            "entry_point": self.job.entry_point,
            "program_names": list(self.job.program_names),
            "reply_cap": self.limits.output_limit_bytes + REPLY_SLACK,
        }

    def _give(self, spare: Spare, order: dict[str, Any], stdin: bytes = b"", fds: tuple[int, ...] = ()) -> Spare:
        try:
            give_order(spare, order, stdin, fds)
            return spare
        except SpareLost:  # should not happen (no program can reach a spare): use a fresh one
            spare.close()
            fresh = self.runner.zygote.fork_spare()
            give_order(fresh, order, stdin, fds)
            return fresh

    def _watch_fd(self, fd: int) -> None:
        if fd not in self.watched:  # without pidfds (gVisor) every process's exit_fd is one SIGCHLD pipe
            self.runner.selector.register(fd, selectors.EVENT_READ)
            self.watched.add(fd)

    def _unwatch(self, fd: int) -> None:
        if fd in self.watched:
            self.runner.selector.unregister(fd)
            self.watched.discard(fd)

    def _begin_clock(self) -> None:
        assert self.program is not None
        self.began = time.monotonic()
        self.cpu_at_start = self._program_cpu()

    # -- watch -----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.stopped or self.position >= len(self.tests)

    def _program_cpu(self) -> float:
        """CPU time of the program's processes so far: its process and every process it started
        (live, zombie, or waited for by it), and those the runner has reaped in this batch.
        Everything in the container but the runner's own processes is the program's."""
        return program_cpu(self.runner.own_pids(), self.runner.own_gone_cpu, self.gone_cpu)

    def _cpu_used(self) -> float:
        return max(0.0, self._program_cpu() - self.cpu_at_start)

    def _reap_program(self) -> None:
        assert self.program is not None
        if self.program_status is None:
            self.program_status = poll_exit(self.program)
            if self.program_status is not None:
                self.gone_cpu += self.program_status[1]

    def watch(self) -> None:
        while not self.done:
            now = time.monotonic()
            used = self._cpu_used()
            if used > self.cpu_limit or now - self.began > self.wall_limit:
                self._out_of_time(wall=now - self.began > self.wall_limit)
                return
            # The program's CPU time grows at most as fast as the wall clock (one core's quota),
            # so its limit cannot be passed before the CPU time it has left has gone by.
            wake = min(self.began + self.wall_limit, now + max(0.005, self.cpu_limit - used))
            for key, _ in self.runner.selector.select(max(0.0, wake - now)):
                self._dispatch(key.fd)
                if self.done:
                    return

    def _dispatch(self, fd: int) -> None:
        assert self.program is not None
        if self.judge is not None and fd == self.judge.report:
            self._on_judge_data()
        elif fd in (self.program.exit_fd, self.judge.exit_fd if self.judge else None):
            if fd == self.program.exit_fd and self.program_status is None:
                self._on_program_exit()
            if self.judge is not None and fd == self.judge.exit_fd and not self.done:
                self._on_judge_exit()
        elif fd == self.runner.channel.fd_in:
            self._on_channel()
        elif fd in self.outputs:
            if _read_some(fd, self.outputs[fd]) == 0:
                self._unwatch(fd)
            self._check_output(fd)

    def _check_output(self, fd: int) -> None:
        if len(self.outputs[fd]) > self.output_cap and not self.output_exceeded:
            self.output_exceeded = True
            self._settle_running(verdicts.report(self._observed(), Verdict.OUTPUT_LIMIT))
            self.stopped = True

    def _observed(self, timed_out: bool = False) -> verdicts.Observed:
        return verdicts.Observed(
            wall_time_s=time.monotonic() - self.began,
            cpu_time_s=self._cpu_used(),
            cpu_limit_s=self.cpu_limit,
            wall_limit_s=self.wall_limit,
            output_exceeded=self.output_exceeded,
            timed_out=timed_out,
        )

    def _on_judge_data(self) -> None:
        frames = self.runner.read_judge()
        if frames is None:  # the judge is gone: its exit settles the test
            assert self.judge is not None
            self._unwatch(self.judge.report)
            return
        for frame in frames:
            if frame.get("batch") != self.batch_id:
                continue  # the end of an earlier batch that stopped early
            if frame.get("done"):
                self.runner.judge_busy = False
            elif self.done:
                continue  # decided already; read on only for `done`
            elif "crashed" in frame:
                self._settle_running(TestReport(Verdict.SANDBOX_ERROR, None, detail=f"the judge failed ({str(frame['crashed'])[:100]})"))
                self.stopped = True
            else:
                self._on_judge_frame(frame)

    def _on_judge_frame(self, frame: dict[str, Any]) -> None:
        if self.position >= len(self.tests):
            return
        index = self.tests[self.position][0]
        if frame.get("end") == index:
            report = verdicts.outcome(self._observed(), frame)
            if report is None:  # the judge lost the program's process: its exit status says why
                report = self._program_gone()
            self._settle(report)
            if self.program_status is not None:  # it ended: the tests left need a fresh process
                self.stopped = True

    def _program_gone(self) -> TestReport:
        """The judge lost the program: judged from how its process ended."""
        assert self.program is not None
        deadline = time.monotonic() + 0.5
        while self.program_status is None and time.monotonic() < deadline:
            self._reap_program()
            if self.program_status is None:
                time.sleep(0.002)
        if self.program_status is None:  # alive, but it closed its end of the socket
            kill(self.program.pid)
            return verdicts.report(self._observed(), Verdict.RUNTIME_ERROR, "the program broke its connection to the judge")
        return self._ended_report()

    def _ended_report(self) -> TestReport:
        assert self.program is not None and self.program_status is not None
        status = self.program_status[0]
        stderr = bytes(self.outputs.get(self.program.stderr, b""))
        return verdicts.process_ended(self._observed(), status, self.runner.new_oom_kill(status), stderr)

    def _on_program_exit(self) -> None:
        assert self.program is not None
        self._reap_program()
        if self.program_status is None:
            return
        self._unwatch(self.program.exit_fd)
        self._drain_all()
        if self.io:
            status = self.program_status[0]
            stdout, stderr, hint = (bytes(self.outputs[fd]) for fd in (self.program.stdout, self.program.stderr, self.program.report))
            report = verdicts.io_ended(self._observed(), status, self.runner.new_oom_kill(status), stdout, stderr, hint)
            self._settle(report)
            return
        # The judge's reports written before the process ended come first (a judge that is done
        # with its tests closes the socket, and the program's process then exits on its own).
        assert self.judge is not None
        while not self.done and select.select([self.judge.report], [], [], 0)[0]:
            before = self.position
            self._on_judge_data()
            if self.position == before:
                break
        if not self.done:
            # It ended during a test (or between two: the next one is charged with it, so every
            # batch decides at least one). Not waiting for the judge: a process the program left
            # behind may hold the socket open, and the judge would wait on it.
            self._settle(self._ended_report())
            self.stopped = True

    def _on_judge_exit(self) -> None:
        assert self.judge is not None
        ended = poll_exit(self.judge)
        if ended is None:
            return
        self._unwatch(self.judge.exit_fd)
        if not self.done:
            self._on_judge_data()  # reports it wrote before it ended
        if not self.done:
            status = ended[0]
            if self.runner.new_oom_kill(status):
                report = verdicts.report(self._observed(), Verdict.MEMORY_LIMIT, "the container ran out of memory during the test")
            else:
                report = TestReport(Verdict.SANDBOX_ERROR, None, detail=f"the judge process ended unexpectedly ({verdicts.exit_detail(status, b'')})")
            self._settle(report)
            self.stopped = True
        self.runner.drop_judge()

    def _on_channel(self) -> None:
        frame = self.runner.channel.read_frame()
        if frame is None or (frame.get("type") == "cancel" and frame.get("id") == self.runner.job_id):
            self.cancelled = self.stopped = True
        elif frame.get("type") != "cancel":
            self.runner.channel.pending.append(frame)

    def _out_of_time(self, wall: bool) -> None:
        assert self.program is not None
        kill(self.program.pid)
        self._settle_running(verdicts.report(self._observed(timed_out=wall), Verdict.TIMEOUT, "time limit exceeded"))
        self.stopped = True

    # -- settle and stop -------------------------------------------------------------------

    def _settle(self, report: TestReport) -> None:
        index = self.tests[self.position][0]
        self.decided[index] = report
        self.position += 1
        self._begin_clock()  # the next test's clocks start as this one ends
        if self.job.fail_fast and report.verdict not in (None, Verdict.PASSED):
            self.stopped = True

    def _settle_running(self, report: TestReport) -> None:
        if self.position < len(self.tests):
            self._settle(report)

    def _drain_all(self) -> None:
        """What the program's process wrote just before it ended (its children may still hold
        the pipes open: read only what is there)."""
        for fd, buffer in self.outputs.items():
            os.set_blocking(fd, False)
            while len(buffer) <= self.output_cap and _read_some(fd, buffer) > 0:
                pass
            if len(buffer) > self.output_cap:
                self.output_exceeded = True

    def stop(self) -> None:
        if self.program is not None and self.program_status is None:
            kill(self.program.pid)
            try:  # reaped here, so the sweep after the job finds nothing left to wait for
                os.waitpid(self.program.pid, 0)
            except ChildProcessError:
                pass
        for fd in list(self.watched):
            self._unwatch(fd)
        if self.program is not None:
            self.program.close()

    def run(self) -> dict[int, TestReport]:
        self.runner.selector.register(self.runner.channel.fd_in, selectors.EVENT_READ)
        try:
            self.start()
            self.watch()
        finally:
            self.runner.selector.unregister(self.runner.channel.fd_in)
            self.stop()
        if self.cancelled or self.runner.channel.closed:
            raise Cancelled()
        return self.decided


class Runner:
    def __init__(self, channel: Channel) -> None:
        self.zygote = Zygote(close_in_child=(channel.fd_in, channel.fd_out))  # before any job is read
        self.channel = channel
        self.jobs = 0
        self.job_id: Any = None
        self.selector = selectors.DefaultSelector()
        self.vsize = vsize()
        self.oom_kills = oom_kills()
        self.spares: list[Spare] = []
        self.judge: Spare | None = None  # the judge process: it lives on across jobs (see `ready_judge`)
        self.judge_busy = False  # it has not yet said `done` to its last batch
        self.judge_frames = FrameBuffer()
        self.judge_batch = self.judge_served = 0
        self.own_gone_cpu = 0.0  # CPU of the runner's own processes that are gone, or became the program's
        self.batches = 0
        self.fingerprint = fingerprint()

    def new_oom_kill(self, status: int | None) -> bool:
        """Did the kernel's OOM killer act since we last looked? Only read after a SIGKILL."""
        if status is None or not os.WIFSIGNALED(status) or os.WTERMSIG(status) != signal.SIGKILL:
            return False
        before, self.oom_kills = self.oom_kills, oom_kills()
        return self.oom_kills > before

    def take_spare(self) -> Spare:
        spare = self.spares.pop(0) if self.spares else self.zygote.fork_spare()  # (collects one asked for)
        self.own_gone_cpu += own_cpu_seconds(spare.pid)  # from now on, its time is the program's
        return spare

    def own_pids(self) -> frozenset[int]:
        """The runner and the processes that are its, not the program's."""
        return self._spare_pids() | {os.getpid()}

    def _spare_pids(self) -> frozenset[int]:
        """The processes a sweep must spare: the zygote, the waiting spares and the judge (spares
        asked for are collected first: a sweep must not kill one in the making)."""
        while self.zygote.requested:
            self.spares.append(self.zygote.collect())
        return frozenset([self.zygote.pid, *(s.pid for s in self.spares)] + ([self.judge.pid] if self.judge else []))

    def read_judge(self) -> list[dict[str, Any]] | None:
        """The judge's frames that one read completes; None at the end of its pipe."""
        assert self.judge is not None
        data = os.read(self.judge.report, READ_CHUNK)
        return self.judge_frames.feed(data) if data else None

    def _judge_idle(self, wait_s: float) -> bool:
        """Whether the judge has said `done` to its last batch, waiting up to `wait_s` for it."""
        assert self.judge is not None
        deadline = time.monotonic() + wait_s
        while self.judge_busy:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.judge.report], [], [], left)[0]:
                break
            frames = self.read_judge()
            if frames is None:
                break  # the judge is gone
            if any(f.get("batch") == self.judge_batch and f.get("done") for f in frames):
                self.judge_busy = False
        return not self.judge_busy

    def ready_judge(self) -> Spare:
        """The judge, idle: the one alive if it has finished its last batch (it does within a
        moment of its program's process ending), else a new one. The judge is trusted and no
        program can reach it, so one serves many jobs; it is replaced every JUDGE_BATCHES."""
        if self.judge is not None and not self._judge_idle(JUDGE_IDLE_WAIT_S):
            self.drop_judge()
        if self.judge is not None and self.judge_served >= JUDGE_BATCHES:
            self.drop_judge()
        if self.judge is None:
            judge = self.zygote.fork_spare()
            give_order(judge, {"role": "judge"}, keep_open=True)
            for fd in (judge.stdout, judge.stderr):
                os.close(fd)
            judge.stdout = judge.stderr = -1
            self.judge, self.judge_busy, self.judge_frames, self.judge_served = judge, False, FrameBuffer(), 0
        return self.judge

    def drop_judge(self) -> None:
        if self.judge is not None:
            kill(self.judge.pid)
            try:
                _, _, usage = os.wait4(self.judge.pid, 0)
                self.own_gone_cpu += usage.ru_utime + usage.ru_stime
            except ChildProcessError:
                pass
            self.judge.close()
            self.judge, self.judge_busy = None, False

    @staticmethod
    def compile_job(job: Job) -> tuple[dict[str, Any] | None, Verdict, str]:
        """Compile setup and program once: (codes, _, "") or (None, verdict, detail)."""
        codes: dict[str, Any] = {"setup": None, "sources": {"<program>": job.program}}
        try:
            if job.setup_code:
                codes["setup"] = compile(job.setup_code, "<setup>", "exec", dont_inherit=True)
                codes["sources"]["<setup>"] = job.setup_code
        except COMPILE_ERRORS as exc:
            return None, Verdict.SANDBOX_ERROR, f"setup_code does not compile: {exc}"
        try:
            codes["program"] = compile(job.program, "<program>", "exec", dont_inherit=True)
        except COMPILE_ERRORS as exc:
            return None, Verdict.SYNTAX_ERROR, f"{type(exc).__name__}: {exc}"
        return codes, Verdict.PASSED, ""

    def run_job(self, job: Job, fds: tuple[int, int]) -> list[TestReport]:
        make_work_dirs()
        codes, bad, detail = self.compile_job(job)
        if codes is None:
            return [TestReport(bad, None, detail=detail) for _ in job.tests]
        results: dict[int, TestReport] = {}
        pending = list(enumerate(job.tests))
        while pending:
            # io tests run alone (their stdout is the output); the others share a batch.
            size = 1 if pending[0][1].kind == "io" else next((i for i, p in enumerate(pending) if p[1].kind == "io"), len(pending))
            batch, rest = pending[:size], pending[size:]
            decided = Batch(self, job, batch, codes, fds).run()
            results.update(decided)
            pending = [p for p in batch if p[0] not in decided] + rest
            if pending:
                kill_strays(keep=self._spare_pids())  # what the last batch's program left running
                self._top_up()
            if job.fail_fast and any(r.verdict not in (None, Verdict.PASSED) for r in decided.values()):
                break
        for index, _ in pending:
            results[index] = TestReport(Verdict.SKIPPED, None)
        return [results[i] for i in range(len(job.tests))]

    def _top_up(self, wait: bool = True) -> None:
        """Spares for the next batch. Without `wait`, they are only asked for: the zygote forks
        them while the runner waits for the next job, and `take_spare` collects them."""
        while len(self.spares) + len(self.zygote.requested) < SPARES:
            self.zygote.request()
        while wait and self.zygote.requested:
            self.spares.append(self.zygote.collect())

    def _clean_up(self) -> str | None:
        """After a job's reply: leave the container as a new one would be, or say why not."""
        if kill_strays(keep=self._spare_pids(), wait=True):
            return "stray_processes"
        if self.judge is not None and (not self._judge_idle(JUDGE_IDLE_WAIT_S) or rss_mb(self.judge.pid) > JUDGE_MAX_RSS_MB):
            self.drop_judge()
        if fingerprint() != self.fingerprint:
            return "runner_tampered"
        if ipc_objects():
            return "ipc_objects_left"
        if wipe_work_dirs():
            return "work_dirs_not_empty"
        return None

    def _answer(self, frame: dict[str, Any], details_fd: int) -> Result:
        self.job_id = frame.get("id")
        tests_fd = self.channel.copy_to_memfd(int(frame.get("judge_bytes", 0)))
        try:
            job = Job.from_message(frame)
            return Result(self.job_id, tuple(self.run_job(job, (tests_fd, details_fd))))
        except Cancelled:
            return Result(self.job_id, cancelled=True)
        except Exception as exc:  # a runner bug: reported as an infrastructure fault
            return Result(self.job_id, error=f"{type(exc).__name__}: {exc}")
        finally:
            os.close(tests_fd)

    def serve(self) -> int:
        self._top_up()
        self.channel.send({"type": "hello", "pid": os.getpid(), "python": sys.version.split()[0]})
        while True:
            frame = self.channel.receive()
            if frame is None:
                return 0
            if frame.get("type") != "job":
                continue  # a cancel for a job already finished
            details_fd = os.memfd_create("details")
            try:
                result = self._answer(frame, details_fd)
                self.jobs += 1
                health = {"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "jobs": self.jobs}
                if self.channel.closed:
                    return 0
                message = Result(result.job_id, result.tests, result.cancelled, result.error, health).to_message()
                message["detail_bytes"] = os.fstat(details_fd).st_size
                self.channel.send(message)
                self.channel.copy_from_memfd(details_fd, message["detail_bytes"])
            finally:
                os.close(details_fd)
            # Off the critical path: the host is busy with the reply meanwhile. The host sends
            # no job before `ready`, so a job never lands on a dirty container.
            problem = self._clean_up()
            if problem is not None:
                self.channel.send({"type": "retire", "reason": problem})
                print(f"runner: retiring ({problem})", file=sys.stderr)
                return 3
            if self.jobs % GC_REFREEZE_EVERY == 0:
                gc.unfreeze()
                gc.collect()
                gc.freeze()
            self._top_up(wait=False)
            self.channel.send({"type": "ready", "id": result.job_id})


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
    if os.geteuid() != 0:
        print("runner: refusing to start: it must run as root (it drops to other uids for the program and the judge)", file=sys.stderr)
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
