"""One hardened sandbox container and the framed channel to the runner inside it.

The runner is the container's main process. The host talks to it over the container's
attach stream: jobs go in on stdin, results come back on stdout (Docker multiplexes stdout
and stderr into 8-byte-headed chunks; stderr carries the runner's own diagnostics). The
container is created with `StdinOnce`, so when this process dies its stdin closes, the
runner exits and Docker's auto-remove deletes the container: no orphan outlives a crash for
long, and the start-up sweep (`sweep_orphans`) removes any that did.

Every Docker call has a timeout (the SDK client's) or runs in a thread with one here; an
infrastructure failure raises `SandboxFault`, never a verdict.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import socket
import struct
from typing import Any

import docker
import docker.errors
from docker.types import LogConfig, Ulimit

from .config import CONTAINER_LABEL, SandboxConfig
from .runner.protocol import Job, Result, encode_frame

log = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct(">I")
MUX_HEADER = struct.Struct(">BxxxI")
STDOUT, STDERR = 1, 2
_HOST = socket.gethostname()


class SandboxFault(Exception):
    """The sandbox infrastructure failed (container gone, runner silent, Docker unreachable)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_orphans(client: docker.DockerClient) -> int:
    """Remove sandbox containers left by dead processes of this host; return how many."""
    removed = 0
    for summary in client.api.containers(all=True, filters={"label": CONTAINER_LABEL}):
        host, _, pid = (summary.get("Labels") or {}).get(CONTAINER_LABEL, "").rpartition(":")
        if host != _HOST or not pid.isdigit() or _pid_alive(int(pid)):
            continue  # another host's, or a live process's pool (another server here, or our own)
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.api.remove_container(summary["Id"], force=True)
            removed += 1
    return removed


def container_options(config: SandboxConfig, image: str) -> dict[str, Any]:
    """`docker.containers.create` arguments: every hardening measure in one place."""
    memory = f"{config.container_memory_mb}m"
    return dict(
        image=image,
        detach=False,  # with stdin_open: sets StdinOnce (stdin closes when we go away)
        stdin_open=True,
        tty=False,
        hostname="sandbox",
        user="0:0",  # the runner: it drops to the program's and the judge's uids (see runner/process.py)
        environment={"LANG": "C.UTF-8"},
        labels={CONTAINER_LABEL: config.owner},
        network_mode="none",
        ipc_mode="none",  # no /dev/shm: the tmpfs below is the only writable place
        read_only=True,
        tmpfs={"/tmp": f"rw,noexec,nosuid,nodev,size={config.tmpfs_mb}m,mode=1777"},
        cap_drop=["ALL"],
        # What the runner (root, trusted) needs and nothing more: to become the program's and the
        # judge's uids, to kill their processes, and to wipe the files they leave. Both lose
        # every capability, bounding set included (SETPCAP), when they drop root.
        cap_add=list(RUNNER_CAPABILITIES),
        # No System V IPC objects or POSIX message queues: they would outlive a job in a warm
        # container (they belong to the container's IPC namespace, not to a process).
        sysctls=dict(IPC_SYSCTLS),
        security_opt=["no-new-privileges:true"],  # Docker's default seccomp profile stays on
        # gVisor's ptrace platform backs sandboxed processes with host processes of its own:
        # the host-side limit must leave it room (the sandbox's own limit is nproc, below).
        pids_limit=config.pids_limit * (4 if config.runtime == "runsc" else 1),
        mem_limit=memory,
        memswap_limit=memory,
        nano_cpus=config.nano_cpus,
        ulimits=_ulimits(config),
        log_config=LogConfig(type=LogConfig.types.NONE),  # frames are not written to disk
        runtime=config.runtime,
        auto_remove=True,
    )


RUNNER_CAPABILITIES = ("SETUID", "SETGID", "SETPCAP", "KILL", "CHOWN", "FOWNER", "DAC_OVERRIDE")
IPC_SYSCTLS = (
    ("kernel.shmall", "0"),
    ("kernel.shmmax", "0"),
    ("kernel.shm_rmid_forced", "1"),
    ("kernel.msgmni", "0"),
    ("kernel.sem", "0 0 0 0"),
    ("fs.mqueue.queues_max", "0"),
)


def _ulimits(config: SandboxConfig) -> list[Ulimit]:
    ulimits = [
        Ulimit(name="nofile", soft=1024, hard=1024),
        Ulimit(name="fsize", soft=config.tmpfs_mb << 20, hard=config.tmpfs_mb << 20),
        Ulimit(name="core", soft=0, hard=0),
    ]
    if config.runtime == "runsc":
        # gVisor counts RLIMIT_NPROC inside its own kernel, per sandbox (runc would count it
        # across every container of this uid): that is the fork-bomb limit under gVisor.
        ulimits.append(Ulimit(name="nproc", soft=config.pids_limit, hard=config.pids_limit))
    return ulimits


class Sandbox:
    """A started container whose runner has said hello."""

    def __init__(self, container: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.container = container
        self.id: str = container.id[:12]
        self._reader, self._writer = reader, writer
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ready: dict[int, asyncio.Future[bool]] = {}
        self._hello: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=32)
        self._next_id = 0
        self.jobs = 0
        self.retire_reason: str | None = None
        self.exited = asyncio.Event()
        self._read_task = asyncio.create_task(self._read_loop(), name=f"sandbox-{self.id}-reader")

    @classmethod
    async def start(cls, client: docker.DockerClient, config: SandboxConfig, image: str) -> Sandbox:
        try:
            container = await asyncio.to_thread(client.containers.create, **container_options(config, image))
        # OSError: with the engine down, the SDK raises requests' ConnectionError (an OSError,
        # not a DockerException); it is the same infrastructure fault.
        except (docker.errors.DockerException, OSError) as exc:
            raise SandboxFault(f"cannot create a sandbox container: {exc}") from exc
        sandbox = None
        try:
            attached = await asyncio.to_thread(container.attach_socket, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            raw: socket.socket = getattr(attached, "_sock", attached)  # type: ignore[arg-type]
            sock = raw.dup()  # ours alone: the SDK's response object may close its copy
            attached.close()
            raw.close()
            await asyncio.to_thread(container.start)
            reader, writer = await asyncio.open_connection(sock=sock)
            sandbox = cls(container, reader, writer)
            await asyncio.wait_for(asyncio.shield(sandbox._hello), config.start_timeout_s)
            return sandbox
        except BaseException as exc:
            if sandbox is not None:
                await sandbox.close()
            else:
                await asyncio.to_thread(_remove, container)
            if isinstance(exc, (docker.errors.DockerException, OSError, asyncio.TimeoutError, SandboxFault)):
                raise SandboxFault(f"sandbox container did not start: {exc!r}") from exc
            raise

    @property
    def dead(self) -> bool:
        """Exited, or about to: no job may be sent to it."""
        return self.exited.is_set() or self.retire_reason is not None

    def stderr_tail(self) -> str:
        return b"".join(self._stderr).decode("utf-8", errors="replace")[-1000:]

    async def _read_loop(self) -> None:
        buffer = bytearray()
        awaiting: tuple[dict[str, Any], int] | None = None  # a frame waiting for the raw bytes after it
        try:
            while True:
                stream, size = MUX_HEADER.unpack(await self._reader.readexactly(MUX_HEADER.size))
                payload = await self._reader.readexactly(size)
                if stream != STDOUT:
                    self._stderr.append(payload)
                    continue
                buffer += payload
                while True:
                    if awaiting is not None:
                        frame, extra = awaiting
                        if len(buffer) < extra:
                            break
                        frame["details"] = bytes(buffer[:extra])
                        del buffer[:extra]
                        awaiting = None
                        self._dispatch(frame)
                        continue
                    if len(buffer) < FRAME_HEADER.size:
                        break
                    (length,) = FRAME_HEADER.unpack_from(buffer)
                    if len(buffer) < FRAME_HEADER.size + length:
                        break
                    frame = json.loads(buffer[FRAME_HEADER.size : FRAME_HEADER.size + length])
                    del buffer[: FRAME_HEADER.size + length]
                    extra = int(frame.get("detail_bytes", 0)) if isinstance(frame, dict) else 0
                    if extra > 0:
                        awaiting = (frame, extra)
                    else:
                        self._dispatch(frame)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError) as exc:
            reason = f"sandbox {self.id} channel closed ({type(exc).__name__}); runner stderr: {self.stderr_tail()!r}"
        except asyncio.CancelledError:
            reason = f"sandbox {self.id} closed"
        self.exited.set()
        for future in [self._hello, *self._pending.values()]:
            if not future.done():
                future.set_exception(SandboxFault(reason))
        self._pending.clear()
        self._resolve_ready(False)

    def _resolve_ready(self, ready: bool, job_id: Any = None) -> None:
        for key in list(self._ready):
            if job_id is None or key == job_id:
                future = self._ready.pop(key)
                if not future.done():
                    future.set_result(ready)

    async def wait_ready(self, job_id: int, timeout_s: float) -> bool:
        """Whether the runner is clean again after job `job_id` (False: it retires, or is gone)."""
        future = self._ready.get(job_id)
        if future is None:
            return not self.dead
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            return False

    def _dispatch(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "hello":
            if not self._hello.done():
                self._hello.set_result(frame)
            return
        if frame.get("type") == "retire":  # the runner could not clean up after a job, and exits
            self.retire_reason = str(frame.get("reason", "unknown"))
            self._resolve_ready(False)
            return
        if frame.get("type") == "ready":  # clean again after the job: it may take the next
            self._resolve_ready(True, frame.get("id"))
            return
        future = self._pending.pop(frame.get("id", -1), None)
        if future is not None and not future.done():
            future.set_result(frame)

    async def _send(self, message: dict[str, Any], payload: bytes = b"") -> None:
        try:
            self._writer.write(encode_frame(message) + payload)
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise SandboxFault(f"sandbox {self.id}: cannot send: {exc}") from exc

    def submit(self) -> tuple[int, asyncio.Future[dict[str, Any]]]:
        """Assign the next job an id and a future for its result (send it with `run`)."""
        if self.dead:
            raise SandboxFault(f"sandbox {self.id} has exited")
        self._next_id += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[self._next_id] = future
        self._ready[self._next_id] = loop.create_future()
        return self._next_id, future

    async def run(self, job: Job, timeout_s: float) -> Result:
        """Run one job; the runner's result. Raises SandboxFault if the runner goes silent.

        The tests' code follows the job's frame as raw bytes (`judge_bytes`): the runner hands
        them to the judge unread, so that no program process inherits them."""
        job_id, future = self.submit()
        self.jobs += 1
        message = job.to_message(job_id)
        judge_part = json.dumps([t.code for t in job.tests]).encode()
        message["judge_bytes"] = len(judge_part)
        await self._send(message, judge_part)
        try:
            message = await asyncio.wait_for(asyncio.shield(future), timeout_s)
            return Result.from_message(message, message.pop("details", b""))
        except TimeoutError:
            raise SandboxFault(f"sandbox {self.id}: no answer within {timeout_s:.1f}s") from None

    @property
    def current_job(self) -> int:
        return self._next_id

    async def cancel(self, job_id: int, timeout_s: float) -> dict[str, Any]:
        """Ask the runner to kill a running job; its (cancelled) reply, once the container is clean."""
        future = self._pending.get(job_id)
        if future is None:
            raise SandboxFault(f"sandbox {self.id}: job {job_id} is not running")
        await self._send({"type": "cancel", "id": job_id})
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            raise SandboxFault(f"sandbox {self.id}: cancel not acknowledged within {timeout_s:.1f}s") from None

    async def close(self) -> None:
        """Stop the reader, close the channel and remove the container (idempotent)."""
        self._read_task.cancel()
        with contextlib.suppress(BaseException):
            await self._read_task
        self._writer.close()
        await asyncio.to_thread(_remove, self.container)


def _remove(container: Any) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: removal already in progress (auto-remove)
            log.warning("could not remove sandbox container %s: %s", container.id[:12], exc)
    except (
        docker.errors.DockerException,
        OSError,
    ) as exc:  # engine unreachable (requests' ConnectionError is an OSError): the start-up sweep retries
        log.warning("could not remove sandbox container %s: %s", container.id[:12], exc)
