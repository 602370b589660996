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
import dataclasses
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

from . import build
from . import languages as registry
from . import verdict as verdicts
from .process import (
    JOB_DIR,
    OPEN_FILES_LIMIT,
    Spare,
    SpareLost,
    Zygote,
    cpu_quota,
    fingerprint,
    give_order,
    ipc_objects,
    kill,
    kill_strays,
    make_work_dirs,
    oom_kills,
    other_pids,
    own_cpu_seconds,
    poll_exit,
    program_cpu,
    rss_mb,
    run_delays,
    vsize,
    wipe_work_dirs,
)
from .protocol import (
    COMPILE_ERRORS,
    HEADER,
    MAX_FRAME,
    MAX_JOB_OUTPUT_BYTES,
    Compiled,
    FrameBuffer,
    Job,
    JobLimits,
    JobTest,
    Result,
    TestReport,
    Verdict,
    overload_cap_s,
    send_order,
    wall_cap_s,
    write_frame,
)

CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp/job", "TMPDIR": "/tmp/job"}
READ_CHUNK = 65536
REPLY_SLACK = 1 << 20  # a call test's return value may be larger than its printed output cap
FILE_SIZE_LIMIT = 64 * 1024 * 1024
OUTPUT_POLL_S = 0.05  # how often a running test's output is measured against its cap
SPARES = 1  # program processes forked ahead; a job that needs more (io tests, re-runs) forks them as it goes
JUDGE_BATCHES = 500  # the judge is replaced after this many batches
JUDGE_IDLE_WAIT_S = 0.1  # a judge not done with its last batch by then is replaced (it may be stuck in a hostile reply)
JUDGE_MAX_RSS_MB = 256  # a judge grown past this is replaced after the job
# Imported once here so that forked test processes find them loaded instead of paying for
# the import in every process. Kept small: every module makes each fork slower.
PRELOAD = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "ast", "fractions", "decimal")
GC_REFREEZE_EVERY = 100


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
        self.command: dict[str, Any] | None = codes.get("command")  # a language run by a command (`build.py`)
        self.cpu_limit = job.limits.time_limit_s + (self.command["startup_cpu_s"] if self.command else 0.0)
        self.wall_limit = wall_cap_s(self.cpu_limit)
        self.overload_limit = overload_cap_s(self.cpu_limit, runner.cpus)
        self.delays: dict[int, float] = {}  # thread id -> its run-queue delay at the last look (`_waiting_s`)
        self.waited_s = 0.0  # time this test has spent waiting for a CPU, up to the last look
        self.output_cap = min(job.limits.output_limit_bytes * len(tests), FILE_SIZE_LIMIT - 1)  # a write past the file limit fails
        self.decided: dict[int, TestReport] = {}
        self.position = 0  # the test running now (or next): index into self.tests
        self.program: Spare | None = None
        self.judge: Spare | None = None
        self.outputs: dict[int, bytearray] = {}
        self.program_status: tuple[int, float] | None = None
        self.gone_cpu = 0.0  # CPU of the program's processes reaped by the runner in this batch
        self.output_exceeded = self.cancelled = self.stopped = False
        self.captured: tuple[bytes, bytes] = (b"", b"")  # stdout and stderr, kept once the batch stops
        self.watched: set[int] = set()
        runner.batches += 1
        self.batch_id = runner.batches

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        self.program = self.runner.take_spare()
        cpu_s = max(1, int(self.cpu_limit * len(self.tests) + 0.999)) + 1
        if self.command is not None:
            self._start_command(cpu_s)
            return
        order = {
            "role": "main" if self.io else "program",
            "program": self.codes["program"],
            "setup": self.codes["setup"],
            "sources": self.codes["sources"],
            "cpu_s": cpu_s,
            "address_space": self.runner.vsize + self.limits.memory_limit_mb * 1024 * 1024,
        }
        if self.io:
            test = self.tests[0][1]
            build.place_test_files(JOB_DIR, test.files)
            order["argv"] = [registry.get(self.job.language).source, *test.args]
            self.program = self._give(self.program, order, stdin=test.stdin.encode("utf-8", errors="surrogateescape"))
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
        self._watch_outputs()
        self._begin_clock()

    def _start_command(self, cpu_s: int) -> None:
        """A test (or the compile) of a language run by a command: one process, its command
        executed under the program's uid and limits, `io` as a Python program's process."""
        assert self.program is not None and self.io
        command = self.command or {}
        order = {key: command[key] for key in ("argv", "cwd", "address_space", "stack", "file_size")}
        test = self.tests[0][1]
        build.place_test_files(command["cwd"], test.files)
        order.update(role="exec", cpu_s=cpu_s, argv=[*command["argv"], *test.args])
        stdin = test.stdin.encode("utf-8", errors="surrogateescape")
        exec_fd = int(command["exec_fd"])
        self.program = self._give(self.program, order, stdin=stdin, fds=(exec_fd,) if exec_fd >= 0 else ())
        self._watch_outputs()
        self._begin_clock()

    def _watch_outputs(self) -> None:
        """Follow the program's process and read its output as it grows. Its stdout, stderr and
        hint descriptor are memfds, not pipes: a write never waits for the runner, so every byte
        the program wrote is there the moment it wrote it, however late the runner looks. (Behind
        a full pipe, a runtime that queues its writes, as Node does, holds the excess back, and an
        output flood's verdict would depend on how fast a loaded runner read.)"""
        assert self.program is not None
        self.outputs = {fd: bytearray() for fd in (self.program.stdout, self.program.stderr, self.program.report)}
        self._watch_fd(self.program.exit_fd)

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
            try:
                give_order(fresh, order, stdin, fds)
            except BaseException:
                kill(fresh.pid)
                fresh.close()
                raise
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
        self.delays = run_delays(self._clocked_pids())
        self.waited_s = 0.0

    def _clocked_pids(self) -> list[int]:
        """The processes whose waiting for a CPU is left out of the test's wall clock: the
        program's (every process in the container but the runner's own) and the judge."""
        own = self.runner.own_pids()
        return [pid for pid in other_pids() if pid not in own] + ([self.judge.pid] if self.judge is not None else [])

    def _waiting_s(self) -> float:
        """The time this test has spent waiting for a CPU (run-queue delay), left out of its
        wall clock: at each look, the most that one thread of the program's processes or of the
        judge waited since the last look (threads wait at the same time, and a sum over threads
        would let a program buy wall time with many waiting threads), summed over the looks,
        because processes wait one after another too (g++'s driver sleeps while cc1plus, as and
        ld wait their turns). The total, not each look, is capped by the real time since the
        test began: the kernel adds a wait to a thread's counter when the wait ends, so one
        long wait lands in a single look. A thread not seen at the last look was born since,
        so all of its delay is new."""
        now = time.monotonic()
        delays = run_delays(self._clocked_pids())
        grown = max((delay - self.delays.get(tid, 0.0) for tid, delay in delays.items()), default=0.0)
        self.waited_s = min(self.waited_s + max(0.0, grown), now - self.began)
        self.delays = delays
        return self.waited_s

    def _wall_s(self, now: float) -> float:
        """The test's wall clock: real time since it began less the time spent waiting for a CPU."""
        return now - self.began - self._waiting_s()

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
            wall = self._wall_s(now)
            if used > self.cpu_limit or wall > self.wall_limit:
                self._out_of_time(wall=wall > self.wall_limit)
                return
            if now - self.began > self.overload_limit:  # waited or not, the test ends here
                self._out_of_time(wall=True)
                return
            self._check_output()
            if self.done:
                return
            # The program's CPU time and the test's wall clock grow at most as fast as real time,
            # so neither limit can be passed before the time it has left has gone by.
            left = min(self.wall_limit - wall, self.cpu_limit - used, self.began + self.overload_limit - now, OUTPUT_POLL_S)
            wake = now + max(0.005, left)
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

    def _check_output(self) -> None:
        self._read_outputs()
        if self.output_exceeded:
            self._settle_running(verdicts.report(self._observed(), Verdict.OUTPUT_LIMIT))
            self.stopped = True

    def _observed(self, timed_out: bool = False) -> verdicts.Observed:
        """What the runner has seen of the test, every byte the program has written so far
        included (read here, so that no verdict depends on when the runner last looked)."""
        self._read_outputs()
        return verdicts.Observed(
            wall_time_s=self._wall_s(time.monotonic()),
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
        self._read_outputs()
        status = self.program_status[0]
        stderr = bytes(self.outputs.get(self.program.stderr, b""))
        return verdicts.process_ended(self._observed(), status, self.runner.new_oom_kill(status), stderr)

    def _on_program_exit(self) -> None:
        assert self.program is not None
        self._reap_program()
        if self.program_status is None:
            return
        self._unwatch(self.program.exit_fd)
        self._read_outputs(from_start=self.io)
        if self.io:
            status = self.program_status[0]
            stdout, stderr, hint = (bytes(self.outputs[fd]) for fd in (self.program.stdout, self.program.stderr, self.program.report))
            oom = self.runner.new_oom_kill(status)
            if self.command is not None:
                memory_errors = tuple(self.command["memory_errors"])
                report = verdicts.command_ended(self._observed(), status, oom, stdout, stderr, hint, memory_errors)
            else:
                report = verdicts.io_ended(self._observed(), status, oom, stdout, stderr, hint)
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
                report = TestReport(
                    Verdict.SANDBOX_ERROR, None, detail=f"the judge process ended unexpectedly ({verdicts.exit_detail(status, b'')})"
                )
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
        self.decided[index] = self._within_job_output(report)
        self.position += 1
        self._begin_clock()  # the next test's clocks start as this one ends
        if self.output_exceeded or (self.job.fail_fast and report.verdict not in (None, Verdict.PASSED)):
            self.stopped = True

    def _within_job_output(self, report: TestReport) -> TestReport:
        """Outputs past MAX_JOB_OUTPUT_BYTES over the job's tests, in the order they end, are
        OUTPUT_LIMIT: they all travel in one result frame, whose JSON can be six times their
        size, and a runner that ran out of memory for it would make a wrong answer SANDBOX_ERROR."""
        if report.output is None:
            return report
        size = len(report.output.encode("utf-8", errors="replace"))
        if self.runner.job_output + size > MAX_JOB_OUTPUT_BYTES:
            detail = f"the program's outputs over the job's tests pass {MAX_JOB_OUTPUT_BYTES >> 20} MiB in all"
            return TestReport(Verdict.OUTPUT_LIMIT, None, report.wall_time_s, report.cpu_time_s, detail)
        self.runner.job_output += size
        return report

    def _settle_running(self, report: TestReport) -> None:
        if self.position < len(self.tests):
            self._settle(report)

    def _read_outputs(self, from_start: bool = False) -> None:
        """Read what the program has written since the last look, up to one byte past the cap,
        by position (its processes share the memfds' offsets). A file that shrank, or every file
        with `from_start`, is read again from its start: an io test's output is what its stdout
        holds when the program ends (a program may reopen /dev/stdout, which truncates it)."""
        for fd, buffer in self.outputs.items():
            size = os.fstat(fd).st_size
            if from_start or size < len(buffer):
                del buffer[:]
            end = min(size, self.output_cap + 1)
            while len(buffer) < end:
                chunk = os.pread(fd, min(READ_CHUNK, end - len(buffer)), len(buffer))
                if not chunk:
                    break
                buffer += chunk
            if size > self.output_cap:
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
            self._read_outputs()
            self.captured = (bytes(self.outputs.get(self.program.stdout, b"")), bytes(self.outputs.get(self.program.stderr, b"")))
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
        self.cpus = cpu_quota()  # the container's CPU quota, in cores: it stretches the real-time cap (`overload_cap_s`)
        self.oom_kills = oom_kills()
        self.spares: list[Spare] = []
        self.judge: Spare | None = None  # the judge process: it lives on across jobs (see `ready_judge`)
        self.judge_busy = False  # it has not yet said `done` to its last batch
        self.judge_frames = FrameBuffer()
        self.judge_batch = self.judge_served = 0
        self.own_gone_cpu = 0.0  # CPU of the runner's own processes that are gone, or became the program's
        self.batches = 0
        self.compiled: Compiled | None = None  # the compile the current job ran, if any
        self.job_output = 0  # bytes of output the current job's reports carry so far (`_within_job_output`)
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
            read_end, write_end = os.pipe()  # its reports: a pipe, to wait on with select
            try:
                give_order(judge, {"role": "judge"}, fds=(write_end,), keep_open=True)
            except BaseException:
                os.close(read_end)
                kill(judge.pid)
                judge.close()
                raise
            finally:
                os.close(write_end)
            for fd in (judge.stdout, judge.stderr, judge.report):
                os.close(fd)
            judge.stdout, judge.stderr, judge.report = -1, -1, read_end
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
        self.compiled = None
        language = registry.get(job.language)
        if job.compile_cpu_s > 0 or job.compile_memory_mb > 0:  # the host's limits: its registry decides
            cpu, memory = job.compile_cpu_s or language.compile_cpu_s, job.compile_memory_mb or language.compile_memory_mb
            language = dataclasses.replace(language, compile_cpu_s=cpu, compile_memory_mb=memory)
        if not language.in_process:
            built = self.prepare_command(job, language, fds)
            if isinstance(built, TestReport):
                return [built for _ in job.tests]
            try:
                return self._run_tests(job, built, fds)
            finally:
                if built["command"]["exec_fd"] >= 0:
                    os.close(built["command"]["exec_fd"])
        codes, bad, detail = self.compile_job(job)
        if codes is None:
            return [TestReport(bad, None, detail=detail) for _ in job.tests]
        return self._run_tests(job, codes, fds)

    def prepare_command(self, job: Job, language: registry.Language, fds: tuple[int, int]) -> dict[str, Any] | TestReport:
        """A language run by a command: its artefacts (the job's, from the host's cache, or
        compiled here once for all the job's tests) installed, and the command its tests run;
        or the report every test gets (COMPILE_ERROR, or SANDBOX_ERROR if the compiler could
        not start)."""
        if job.artefact is not None:
            files = job.artefact
        elif not language.compiled:
            files = ((language.source, job.program.encode("utf-8", errors="surrogateescape")),)
        else:
            compiled = self.compile(job, language, fds)
            if isinstance(compiled, TestReport):
                return compiled
            self.compiled = compiled
            if not compiled.ok:
                return TestReport(Verdict.COMPILE_ERROR, None, compiled.wall_time_s, compiled.cpu_time_s, compiled.detail)
            files = compiled.files
        memory = job.limits.memory_limit_mb << 20
        command = {
            "argv": language.run_argv(build.BUILD_DIR, job.limits.memory_limit_mb),
            "cwd": JOB_DIR,
            "exec_fd": build.install(files, language.executable),
            "address_space": memory + (language.run_address_space_mb << 20),
            "stack": memory if language.deep_stack else 0,
            "file_size": 0,
            "startup_cpu_s": language.startup_cpu_s,
            "memory_errors": list(language.memory_errors),
        }
        return {"command": command}

    def compile(self, job: Job, language: registry.Language, fds: tuple[int, int]) -> Compiled | TestReport:
        """Compile the job's program once, as the program's uid, under the language's compile
        limits (CPU, address space, file size, output), watched like a test."""
        build.write_source(language, job.program, job.compile_files)
        limits = JobLimits(language.compile_cpu_s, language.compile_memory_mb, language.compile_output_bytes)
        compile_job = dataclasses.replace(job, tests=(JobTest("io"),), limits=limits, fail_fast=False)
        command = {
            "argv": list(language.compile),
            "cwd": build.COMPILE_DIR,
            "exec_fd": -1,
            "address_space": language.compile_memory_mb << 20,
            "stack": 0,
            "file_size": build.MAX_ARTEFACT_BYTES,
            "startup_cpu_s": 0.0,
            "memory_errors": [],
        }
        batch = Batch(self, compile_job, [(0, compile_job.tests[0])], {"command": command}, fds)
        report = batch.run().get(0) or TestReport(Verdict.SANDBOX_ERROR, None, detail="the compile was not decided")
        kill_strays(keep=self._spare_pids())  # what the compiler left running
        self._top_up()
        try:
            if report.verdict is Verdict.SANDBOX_ERROR:
                return report
            if report.verdict is None:
                try:
                    files = build.collect(language)
                except build.ArtefactError as exc:
                    return Compiled(False, str(exc), (), report.cpu_time_s, report.wall_time_s)
                return Compiled(True, "", files, report.cpu_time_s, report.wall_time_s)
            detail = build.compile_detail(language, report, *batch.captured)
            circumstantial = (report.verdict is Verdict.TIMEOUT and "wall-clock" in report.detail) or (
                report.verdict is Verdict.MEMORY_LIMIT and "out-of-memory killer" in report.detail
            )
            return Compiled(False, detail, (), report.cpu_time_s, report.wall_time_s, cacheable=not circumstantial)
        finally:
            build.remove_compile_dir()

    def _run_tests(self, job: Job, codes: dict[str, Any], fds: tuple[int, int]) -> list[TestReport]:
        self.job_output = 0  # the tests' outputs only (a compile's are not sent)
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
            reports = tuple(self.run_job(job, (tests_fd, details_fd)))
            return Result(self.job_id, reports, compiled=self.compiled)
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
                message = dataclasses.replace(result, health=health).to_message()
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
