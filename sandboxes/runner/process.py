"""Test processes and the container's clean-up. Stdlib only; runs inside the container.

A test process is forked from the runner (root) *before* its test is known (a "spare"), so
the fork, the most expensive step here, happens while the previous test runs or while the
host is busy with the previous reply. The spare isolates itself (new session, its own pipes
on fds 0-3, every other descriptor closed), then blocks on a private socket for its order:
its role (the program, the judge, or a command to execute: a compiler or a compiled program),
marshalled code objects or the command, limits, and, passed with the order, its end of the
socket between the two (or the artefact to execute). Only then does it drop root for its role's
uid: a spare cannot be signalled or stopped by any program, and the program's process and
the judge's run under different uids.
"""

from __future__ import annotations

import ctypes
import fcntl
import linecache
import os
import resource
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from . import judge, program
from .protocol import JUDGE_UID, PROGRAM_UID, receive_order, send_order

JOB_DIR = "/tmp/job"
JUDGE_DIR = "/tmp/judge"
WORK_ROOTS = ("/tmp", "/dev/shm")
OPEN_FILES_LIMIT = 256
ORDER_FD = 4
PEER_FD = 5
SYSV_IPC = ("/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem")
PR_SET_DUMPABLE = 4


class SpareLost(Exception):
    """The spare process died before it got its order."""


@dataclass
class Spare:
    pid: int
    exit_fd: int  # readable once the process has ended (a pidfd, or the shared SIGCHLD pipe)
    order: socket.socket | None  # the runner's end of the order socket
    stdin: int  # memfd shared (same offset) with the spare's fd 0
    stdout: int  # memfds shared with its fds 1, 2 and 3 (the hint channel of runner/program.py):
    stderr: int  # written without ever waiting for the runner, read by position
    report: int

    def close_order_side(self) -> None:
        """Close the runner's ends used to give the order (once: the numbers get reused)."""
        if self.order is not None:
            self.order.close()
        if self.stdin >= 0:
            os.close(self.stdin)
        self.order, self.stdin = None, -1

    def close(self) -> None:
        """Close every descriptor the runner holds for it (again: nothing more)."""
        self.close_order_side()
        if self.exit_fd >= 0 and self.exit_fd != _sigchld_fd:
            os.close(self.exit_fd)
        self.exit_fd = -1
        for fd in (self.stdout, self.stderr, self.report):
            if fd >= 0:
                os.close(fd)
        self.stdout = self.stderr = self.report = -1


class Zygote:
    """A clean process that forks the spares. It is forked from the runner before the runner
    has read any job, and is told nothing but "fork": a program's process inherits its memory,
    never the runner's, which holds earlier jobs' programs, outputs and results (a program
    could otherwise read an earlier, right program of its group out of its own memory).

    Each spare is forked twice (the zygote forks a child that forks the spare and exits), so
    that it is orphaned and becomes the runner's child: PID 1 adopts every orphan in its PID
    namespace, and the runner can wait for it, read its exit status and its CPU time."""

    def __init__(self, close_in_child: tuple[int, ...] = ()) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            self.sock.close()
            for fd in close_in_child:
                os.close(fd)
            _zygote(theirs)
        theirs.close()
        self.pid = pid
        self.requested: list[tuple[socket.socket, int, int, int, int]] = []

    def request(self) -> None:
        """Ask for a spare without waiting: the zygote forks it while the runner does other work
        (answers arrive in order; `collect` takes the oldest)."""
        order_runner, order_spare = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stdin, out, err, rep = (os.memfd_create(name) for name in ("stdin", "stdout", "stderr", "report"))
        try:
            socket.send_fds(self.sock, [b"F"], [stdin, out, err, rep, order_spare.fileno()])
        except OSError:
            for fd in (out, err, rep, stdin):
                os.close(fd)
            order_runner.close()
            raise
        finally:
            order_spare.close()
        self.requested.append((order_runner, stdin, out, err, rep))

    def collect(self) -> Spare:
        """The spare of the oldest request (OSError if the zygote could not fork it)."""
        order_runner, stdin, out, err, rep = self.requested.pop(0)
        data = b""
        while len(data) < 8:
            chunk = self.sock.recv(8 - len(data))
            if not chunk:
                break
            data += chunk
        pid = int.from_bytes(data, "big") if len(data) == 8 else 0
        if pid <= 0:
            for fd in (out, err, rep, stdin):
                os.close(fd)
            order_runner.close()
            raise OSError("the zygote could not fork a spare")
        return Spare(pid, _exit_fd(pid), order_runner, stdin, out, err, rep)

    def fork_spare(self) -> Spare:
        """A spare now: the one already asked for, or a new one."""
        if not self.requested:
            self.request()
        return self.collect()


def _zygote(sock: socket.socket) -> None:
    """The zygote's life: a spare per request, until the runner closes the socket. Never returns."""
    try:
        while True:
            message, fds, _, _ = socket.recv_fds(sock, 1, 5)
            if not message:
                os._exit(0)
            read_end, write_end = os.pipe()
            try:
                middle = _fork()
            except OSError:
                middle = -1
            if middle == 0:
                os.close(read_end)
                spare = _fork()
                if spare == 0:
                    os.close(write_end)
                    sock.close()
                    _await_order(dict(zip((0, 1, 2, 3, ORDER_FD), fds)))
                os.write(write_end, spare.to_bytes(8, "big"))
                os._exit(0)
            os.close(write_end)
            data = os.read(read_end, 8) if middle > 0 else b""
            os.close(read_end)
            if middle > 0:
                os.waitpid(middle, 0)  # once it is gone, the spare is the runner's child
            for fd in fds:
                os.close(fd)
            sock.sendall(data if len(data) == 8 else bytes(8))
    finally:
        os._exit(0)


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


def kill(pid: int) -> None:
    """SIGKILL, if the process is still there."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def poll_exit(spare: Spare) -> tuple[int, float] | None:
    """(wait status, CPU seconds) if the spare's process has ended, else None."""
    if spare.exit_fd == _sigchld_fd:
        try:
            while os.read(spare.exit_fd, 4096):
                pass
        except BlockingIOError:
            pass
    try:
        pid, status, usage = os.wait4(spare.pid, os.WNOHANG)
    except ChildProcessError:  # reaped already by a sweep: it was killed
        return signal.SIGKILL, 0.0
    if pid == 0:
        return None
    return status, usage.ru_utime + usage.ru_stime


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread, and the children it waited for) of a process that
    is alive or a zombie; 0.0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / _TICK  # utime, stime, cutime, cstime
    except (OSError, IndexError, ValueError):
        return 0.0


# The container's own CPU counter: cgroup v2, then v1 (path, key or None, seconds per unit).
_CGROUP_CPU = (
    ("/sys/fs/cgroup/cpu.stat", "usage_usec", 1e-6),
    ("/sys/fs/cgroup/cpuacct/cpuacct.usage", None, 1e-9),
    ("/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", None, 1e-9),
)


def container_cpu() -> float | None:
    """CPU time of every process the container ever ran, reaped or not; None if unreadable."""
    for path, key, unit in _CGROUP_CPU:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if key is None:
            return int(text.split()[0]) * unit
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value) * unit
    return None


# The container's CPU quota: cgroup v2 ("QUOTA PERIOD" or "max PERIOD"), then v1 (quota, period).
_CGROUP_QUOTA_V2 = "/sys/fs/cgroup/cpu.max"
_CGROUP_QUOTA_V1 = ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct")  # folders holding cpu.cfs_quota_us and cpu.cfs_period_us


def cpu_quota() -> float:
    """The cores this container may use (Docker's `--cpus`); 1.0 where it has no quota or the
    cgroup cannot be read (gVisor): that is the stricter reading of the real-time cap."""
    try:
        with open(_CGROUP_QUOTA_V2) as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        for folder in _CGROUP_QUOTA_V1:
            try:
                quota, period = _read_text(f"{folder}/cpu.cfs_quota_us"), _read_text(f"{folder}/cpu.cfs_period_us")
                break
            except OSError:
                continue
        else:
            return 1.0
    try:
        cores = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):  # "max" (v2) and -1 (v1): no quota
        return 1.0
    return cores if cores > 0 else 1.0


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def own_cpu_seconds(pid: int) -> float:
    """CPU time of one of the runner's own single-threaded processes, itself only (not the
    children it reaped), in nanoseconds' precision where the kernel has schedstat."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) * 1e-9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def run_delays(pids: list[int]) -> dict[int, float]:
    """Per thread of these processes, the time it has spent runnable but waiting for a CPU
    (schedstat's second field, in seconds); threads gone or unreadable are left out."""
    delays = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    delays[int(tid)] = int(f.read().split()[1]) * 1e-9
            except (OSError, ValueError, IndexError):
                continue
    return delays


def program_cpu(own: frozenset[int], own_gone_s: float, reaped_s: float) -> float:
    """CPU time of the program's processes: the container's whole counter less the runner's own
    processes (`own`, and `own_gone_s` for those it has reaped). The counter sees every process,
    even one reaped at once because its parent ignores SIGCHLD. Without a readable cgroup
    (gVisor), the sum over live and zombie processes that are not the runner's, plus `reaped_s`
    for the program's processes the runner has reaped."""
    total = container_cpu()
    if total is None:
        return reaped_s + sum(cpu_seconds(pid) for pid in other_pids() if pid not in own)
    return total - own_gone_s - sum(own_cpu_seconds(pid) for pid in own)


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


def give_order(spare: Spare, order: dict[str, Any], stdin: bytes = b"", fds: tuple[int, ...] = (), keep_open: bool = False) -> None:
    """Hand the spare its order (see `_await_order`) and the descriptors that go with it (its
    end of the judge ↔ program socket). `keep_open`: the order socket stays, for more orders
    (the judge's)."""
    assert spare.order is not None
    try:
        if stdin:
            _write_all(spare.stdin, stdin)
            os.lseek(spare.stdin, 0, os.SEEK_SET)
        spare.order.settimeout(5.0)  # a spare is root until it reads this: no program can stop it
        send_order(spare.order, order, fds)
    except (OSError, ProcessLookupError) as exc:
        spare.close_order_side()
        raise SpareLost(str(exc)) from exc
    if not keep_open:
        spare.close_order_side()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


PR_CAPBSET_DROP = 24
CAP_LAST = 63


def _drop_to(uid: int, dumpable: bool) -> None:
    """Become `uid` with no capability left, none in the bounding set either (so nothing it
    executes can ever regain one), and no supplementary groups."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(CAP_LAST + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the kernel's last: ignored
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    libc.prctl(PR_SET_DUMPABLE, int(dumpable), 0, 0, 0)


def _await_order(fds: dict[int, int]) -> None:
    """In the forked process: isolate, wait for the order, become the program or the judge.
    Never returns.

    Kept short on purpose: every object touched after a fork costs a copy-on-write page
    fault. What can be set once (environment, stdio objects, file-size, descriptor and core
    limits, signal dispositions) is set on the runner at start-up and inherited.
    """
    try:
        os.setsid()
        high = {target: fcntl.fcntl(fd, fcntl.F_DUPFD, PEER_FD + 1) for target, fd in fds.items()}
        for target, fd in high.items():  # via high copies: a source may sit on a target number
            os.dup2(fd, target)
        os.closerange(PEER_FD, OPEN_FILES_LIMIT)
        order_sock = socket.socket(fileno=ORDER_FD)
        received = receive_order(order_sock)
        if received is None:
            os._exit(0)  # the runner discarded this spare
        order, passed = received
        if order["role"] == "judge":
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.close(devnull)
            os.dup2(passed[0], 3)  # its report pipe, in place of a program's hint memfd
            os.close(passed[0])
            _drop_to(JUDGE_UID, dumpable=False)
            judge.serve(order_sock, 3, JUDGE_DIR)
        order_sock.close()
        if passed and passed[0] != PEER_FD:
            os.dup2(passed[0], PEER_FD)
            os.close(passed[0])
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        resource.setrlimit(resource.RLIMIT_CPU, (order["cpu_s"], order["cpu_s"] + 1))
        resource.setrlimit(resource.RLIMIT_AS, (order["address_space"], order["address_space"]))
        for limit, key in ((resource.RLIMIT_STACK, "stack"), (resource.RLIMIT_FSIZE, "file_size")):
            if order.get(key):
                resource.setrlimit(limit, (order[key], order[key]))
        os.chdir(order.get("cwd", JOB_DIR))
        _drop_to(PROGRAM_UID, dumpable=True)
        if order["role"] == "exec":
            program.exec_command(order["argv"], PEER_FD if passed else -1, 3)
        for filename, source in order["sources"].items():
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        if order["role"] == "main":
            sys.argv = list(order["argv"])
            program.run_main(order["program"], order["setup"], 3)
        program.Server(PEER_FD, order["program"], order["setup"]).serve()
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


def kill_strays(keep: frozenset[int] = frozenset(), deadline_s: float = 1.0, wait: bool = False) -> int:
    """Kill every process in this PID namespace but the runner (and `keep`, the waiting
    spares); return how many could not be killed before the deadline.

    Only safe as PID 1 of a PID namespace: there `kill(-1)` reaches exactly the container.
    A process that has been sent SIGKILL never runs user code again, so it need not be
    waited for (it is reaped later); the sweep repeats only while new processes appear,
    which a fork bomb cannot keep up for long: killed processes fork no more and the pids
    limit caps the rest. With `wait`, also waits (until the deadline) for every killed process
    to be gone from the process table, reaped: what the end of a job does, off the critical
    path, so that no trace of a job is visible to the next.
    """
    end = time.monotonic() + deadline_s
    targets = {pid for pid in other_pids() if pid not in keep}
    while targets:
        if not keep:
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
        targets = {pid for pid in other_pids() if pid not in keep} - killed
        if targets and time.monotonic() > end:
            return len(targets)
    while wait:
        left = [pid for pid in other_pids() if pid not in keep]
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


def make_work_dirs() -> None:
    """The job's working directories: the program's and the judge's, each its uid's alone."""
    for path, uid in ((JOB_DIR, PROGRAM_UID), (JUDGE_DIR, JUDGE_UID)):
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chown(path, uid, uid)
        os.chmod(path, 0o700)


def ipc_objects() -> int:
    """System V shared memory segments, message queues and semaphore sets alive in this
    container's IPC namespace (the container's sysctls make them impossible to create; a
    job that left one behind anyway retires its container)."""
    count = 0
    for path in SYSV_IPC:
        try:
            with open(path) as f:
                count += max(0, len(f.read().splitlines()) - 1)  # after the header line
        except OSError:
            continue
    return count


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


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB; 0.0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def vsize() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
