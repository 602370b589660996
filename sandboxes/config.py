"""Configuration of the sandbox pool: one validated dataclass."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from .types import Limits

CONTAINER_LABEL = "codereward.sandbox"
RUNTIMES = ("runc", "runsc")


@dataclass(frozen=True)
class SandboxConfig:
    """How sandbox containers are made, how many are kept warm, and the limits of a job."""

    image: str = ""
    """Sandbox image; empty = the tag this source tree builds (see `codereward-build-image`)."""
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    """Warm containers kept ready; each runs one job at a time."""
    jobs_per_container: int = 1000
    """A container is replaced after this many jobs, even when it looks healthy."""
    runtime: str = "runc"
    """OCI runtime: `runc` (Docker's default) or `runsc` (gVisor, stronger isolation, slower)."""
    container_memory_mb: int = 768
    """Memory (and memory+swap: no swap) of one container: the runner plus one job."""
    container_cpus: float = 1.0
    """CPU quota of one container, in cores."""
    pids_limit: int = 64
    """Processes and threads in one container: what stops a fork bomb."""
    tmpfs_mb: int = 64
    """Size of /tmp, the only writable place in a container."""
    default_limits: Limits = Limits(time_limit_s=5.0, memory_limit_mb=256, output_limit_bytes=1 << 20)
    """Per-test limits used where a problem leaves a limit at 0."""
    max_limits: Limits = Limits(time_limit_s=30.0, memory_limit_mb=512, output_limit_bytes=16 << 20)
    """Largest per-test limits a problem may ask for."""
    start_timeout_s: float = 30.0
    """Time a new container gets to say hello before it counts as failed."""
    job_grace_s: float = 5.0
    """Slack beyond the sum of a job's test limits before its container counts as unresponsive."""
    outage_timeout_s: float = 60.0
    """When no container has been alive for this long (the Docker engine is down, or containers
    fail to start), jobs waiting for one are answered SANDBOX_ERROR, and new jobs at once, until
    a container is back. 0 = wait for a container however long it takes."""
    max_runner_rss_mb: int = 128
    """A runner whose own memory grows past this is replaced."""
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    """Label value `host:pid` naming this pool's process, so orphans of a dead process can be told apart."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: need at least 1 warm container")
        if self.jobs_per_container < 1:
            raise ValueError(f"jobs_per_container={self.jobs_per_container}: must be at least 1")
        if self.outage_timeout_s < 0:
            raise ValueError(f"outage_timeout_s={self.outage_timeout_s}: must be 0 (wait forever) or positive")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime={self.runtime!r}: choose one of {', '.join(RUNTIMES)}")
        if self.max_limits.memory_limit_mb + 64 > self.container_memory_mb:
            raise ValueError(
                f"max_limits.memory_limit_mb={self.max_limits.memory_limit_mb} leaves under 64 MB of "
                f"container_memory_mb={self.container_memory_mb} for the runner: raise container_memory_mb"
            )
        for name in ("time_limit_s", "memory_limit_mb", "output_limit_bytes"):
            default, cap = getattr(self.default_limits, name), getattr(self.max_limits, name)
            if not 0 < default <= cap:
                raise ValueError(f"default_limits.{name}={default} must be positive and at most max_limits.{name}={cap}")

    def resolve(self, limits: Limits) -> Limits:
        """A problem's limits with zeros replaced by defaults. Raises ValueError above the caps."""
        resolved = {}
        for name in ("time_limit_s", "memory_limit_mb", "output_limit_bytes"):
            asked, cap = getattr(limits, name), getattr(self.max_limits, name)
            if asked < 0 or asked > cap:
                raise ValueError(f"limits.{name}={asked} is outside [0, {cap}] (0 = server default)")
            resolved[name] = asked or getattr(self.default_limits, name)
        return Limits(**resolved)
