"""Test processes and the container's clean-up. Stdlib only; runs inside the container.

A test process is forked from the runner *before* its test is known (a "spare"), so the
fork, the most expensive step here, happens while the previous test runs or while the host
is busy with the previous reply, not between receiving a test and starting it.
The spare isolates itself (new session, its own pipes on fds 0-3, every other descriptor
closed, `oom_score_adj` 1000), then blocks on a private pipe for its order: marshalled code
objects and the job's limits. Having been forked before the job arrived, it inherits no part
of it beyond what the order carries.
"""

from __future__ import annotations

import fcntl
import linecache
import marshal
import os
import resource
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from . import harness

JOB_DIR = "/tmp/job"
WORK_ROOTS = ("/tmp", "/dev/shm")
OPEN_FILES_LIMIT = 256
ORDER_FD = 4


class SpareLost(Exception):
    """The spare process died before it got its order (only a previous job could do that)."""


@dataclass
class Spare:
    pid: int
    exit_fd: int  # readable once the process has ended (a pidfd, or the shared SIGCHLD pipe)
    order: int  # write end of the order pipe
    stdin: int  # memfd shared (same offset) with the spare's fd 0
    stdout: int
    stderr: int
    result: int

    def close_order_side(self) -> None:
        """Close the runner's ends used to give the order (once: the numbers get reused)."""
        for fd in (self.order, self.stdin):
            if fd >= 0:
                os.close(fd)
        self.order = self.stdin = -1

    def close(self) -> None:
        self.close_order_side()
        if self.exit_fd != _sigchld_fd:
            os.close(self.exit_fd)
        for fd in (self.stdout, self.stderr, self.result):
            os.close(fd)


def fork_spare() -> Spare:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    order_r, order_w = os.pipe()
    stdin = os.memfd_create("stdin")
    try:
        pid = _fork()
    except OSError:
        for fd in (out_r, out_w, err_r, err_w, res_r, res_w, order_r, order_w, stdin):
            os.close(fd)
        raise
    if pid == 0:
        _await_order({0: stdin, 1: out_w, 2: err_w, 3: res_w, ORDER_FD: order_r})
    for fd in (out_w, err_w, res_w, order_r):
        os.close(fd)
    return Spare(pid, _exit_fd(pid), order_w, stdin, out_r, err_r, res_r)


_sigchld_fd = -1


def _exit_fd(pid: int) -> int:
    """A descriptor that becomes readable when `pid` ends: its pidfd where the kernel has
    them (Linux 5.3+), else one pipe that a SIGCHLD handler writes to (gVisor lacks pidfds)."""
    global _sigchld_fd
    if _sigchld_fd < 0:
        try:
            return os.pidfd_open(pid)
        except OSError:
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            os.set_blocking(write_end, False)
            signal.set_wakeup_fd(write_end)
            signal.signal(signal.SIGCHLD, lambda *_: None)
            _sigchld_fd = read_end
    return _sigchld_fd


def poll_exit(spare: Spare) -> tuple[int, float] | None:
    """(wait status, CPU seconds) if the spare's process has ended, else None."""
    if spare.exit_fd == _sigchld_fd:
        try:
            while os.read(spare.exit_fd, 4096):
                pass
        except BlockingIOError:
            pass
        pid, status, usage = os.wait4(spare.pid, os.WNOHANG)
        if pid == 0:
            return None
    else:
        _, status, usage = os.wait4(spare.pid, 0)
    return status, usage.ru_utime + usage.ru_stime


def _fork(attempts: int = 100) -> int:
    """fork(), waiting out EAGAIN: the processes of a fork bomb just killed may still count
    against the process limit for a moment (gVisor releases them lazily)."""
    for _ in range(attempts - 1):
        try:
            return os.fork()
        except BlockingIOError:
            _reap()
            time.sleep(0.01)
    return os.fork()


def give_order(spare: Spare, order: dict[str, Any], stdin: bytes) -> None:
    """Hand the spare its test. `order` holds code objects, sources, limits (see `_await_order`)."""
    try:
        if stdin:
            _write_all(spare.stdin, stdin)
            os.lseek(spare.stdin, 0, os.SEEK_SET)
        _write_all(spare.order, marshal.dumps(order))
    except (BrokenPipeError, ProcessLookupError) as exc:
        raise SpareLost(str(exc)) from exc
    finally:
        spare.close_order_side()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _await_order(fds: dict[int, int]) -> None:
    """In the forked process: isolate, wait for the order, run the test. Never returns.

    Kept short on purpose: every object touched after a fork costs a copy-on-write page
    fault. What can be set once (environment, stdio objects, file-size, descriptor and core
    limits, signal dispositions) is set on the runner at start-up and inherited.
    """
    try:
        os.setsid()
        high = {target: fcntl.fcntl(fd, fcntl.F_DUPFD, ORDER_FD + 1) for target, fd in fds.items()}
        for target, fd in high.items():  # via high copies: a source may sit on a target number
            os.dup2(fd, target)
        os.closerange(ORDER_FD + 1, OPEN_FILES_LIMIT)
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        chunks = []
        while chunk := os.read(ORDER_FD, 1 << 20):
            chunks.append(chunk)
        os.close(ORDER_FD)
        if not chunks:
            os._exit(0)  # the runner discarded this spare
        order = marshal.loads(b"".join(chunks))
        resource.setrlimit(resource.RLIMIT_CPU, (order["cpu_s"], order["cpu_s"] + 1))
        resource.setrlimit(resource.RLIMIT_AS, (order["address_space"], order["address_space"]))
        os.chdir(JOB_DIR)
        for filename, source in order["sources"].items():
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        harness.run(order["tests"], 3, order["program"], order["setup"], order["entry_point"])
    finally:
        os._exit(70)


def other_pids() -> list[int]:
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]


def _reap() -> None:
    """Collect every exited child, our own and orphans reparented to us (PID 1)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_strays(keep: int | None = None, deadline_s: float = 1.0, wait: bool = False) -> int:
    """Kill every process in this PID namespace but the runner (and `keep`, the waiting
    spare); return how many could not be killed before the deadline.

    Only safe as PID 1 of a PID namespace: there `kill(-1)` reaches exactly the container.
    A process that has been sent SIGKILL never runs user code again, so it need not be
    waited for (it is reaped later); the sweep repeats only while new processes appear,
    which a fork bomb cannot keep up for long: killed processes fork no more and the pids
    limit caps the rest. With `wait`, also waits (until the deadline) for every killed process
    to be gone from the process table, reaped: what the end of a job does, off the critical
    path, so that no trace of a job is visible to the next.
    """
    end = time.monotonic() + deadline_s
    targets = {pid for pid in other_pids() if pid != keep}
    while targets:
        if keep is None:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            for pid in targets:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        _reap()
        killed = targets
        targets = {pid for pid in other_pids() if pid != keep} - killed
        if targets and time.monotonic() > end:
            return len(targets)
    while wait:
        left = [pid for pid in other_pids() if pid != keep]
        if not left:
            break
        if time.monotonic() > end:
            return len(left)
        time.sleep(0.001)
        _reap()
    return 0


def wipe_work_dirs() -> list[str]:
    """Empty the writable places; the paths that could not be removed."""

    def force(func: Any, path: str, _exc: Any) -> None:
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path):
            os.chmod(path, 0o700)
        func(path)

    stuck = []
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
                stuck.append(path)
    return stuck


def oom_kills() -> int:
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


_RLIMITS = tuple(getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_"))


def fingerprint() -> tuple[Any, ...]:
    """What a program running under the runner's uid could change about the runner itself.

    Programs share the runner's uid, and the kernel lets a process change another process's
    rlimits (prlimit), nice value, scheduling policy and CPU affinity when the uids match.
    The runner compares this after every job; a difference retires the container.
    """
    return (
        tuple(resource.getrlimit(r) for r in _RLIMITS),
        os.getpriority(os.PRIO_PROCESS, 0),
        os.sched_getscheduler(0),
        frozenset(os.sched_getaffinity(0)),
    )


def vsize() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
