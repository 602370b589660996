"""Configuration of the sandbox pool: one validated dataclass."""

from __future__ import annotations

import os
import socket
from dataclasses import MISSING, dataclass, field
from typing import Any

from .types import Limits

CONTAINER_LABEL = "codereward.sandbox"
RUNTIMES = ("runc", "runsc")
MIN_CONTAINER_CPUS = 0.01  # Docker's smallest --cpus: 1 ms of CPU per 100 ms period


def _option(default: Any = MISSING, help: str = "", *, default_factory: Any = MISSING) -> Any:
    """A field with its help text in `metadata["help"]`, as `reward_api.config_flags.option`
    declares them (the sandbox layer does not import the API package): `reward-server` makes
    flags and their help from it."""
    return field(default=default, default_factory=default_factory, metadata={"help": help})


@dataclass(frozen=True)
class SandboxConfig:
    """How sandbox containers are made, how many are kept warm, and the limits of a job."""

    image: str = _option("", "Sandbox image; empty = the tag this source tree builds (`codereward-build-image`).")
    workers: int = _option(
        help="Warm sandbox containers, each running one job at a time; by default one per CPU core.",
        default_factory=lambda: os.cpu_count() or 1,
    )
    jobs_per_container: int = _option(1000, "A sandbox container is replaced after this many jobs, even when it looks healthy.")
    runtime: str = _option("runc", "OCI runtime of the sandboxes: runc (Docker's default), or runsc (gVisor: stronger isolation, slower).")
    container_memory_mb: int = _option(768, "Memory (and memory+swap: no swap) of one container: the runner plus one job.")
    container_cpus: float = _option(
        1.0, "CPU quota of one container, in cores (at least 0.01). Under 1, a test's real-time cap grows by 1/container_cpus."
    )
    pids_limit: int = _option(64, "Processes and threads in one container: what stops a fork bomb.")
    tmpfs_mb: int = _option(64, "Size of /tmp, the only writable place in a container.")
    default_limits: Limits = _option(
        Limits(time_limit_s=5.0, memory_limit_mb=256, output_limit_bytes=1 << 20),
        "Per-test limits used where a problem leaves a limit at 0.",
    )
    max_limits: Limits = _option(
        Limits(time_limit_s=30.0, memory_limit_mb=512, output_limit_bytes=16 << 20), "Largest per-test limits a problem may ask for."
    )
    start_timeout_s: float = _option(30.0, "Time a new container gets to say hello before it counts as failed.")
    job_grace_s: float = _option(5.0, "Slack beyond the sum of a job's test limits before its container counts as unresponsive.")
    outage_timeout_s: float = _option(
        60.0,
        "With no sandbox container alive for this long (the Docker engine is down, or containers fail to start), programs are answered SANDBOX_ERROR (masked, counted in codereward_sandbox_errors_total) instead of waiting, until a container is back; 0 = wait however long it takes.",
    )
    binary_cache_entries: int = _option(4096, "Compiled programs (C++, Java) kept for identical sources, by entries; 0 = no cache.")
    binary_cache_mb: int = _option(256, "Megabytes of compiled artefacts kept for identical sources (least recently used first out).")
    checker_limits: Limits = _option(
        Limits(time_limit_s=10.0, memory_limit_mb=512, output_limit_bytes=65536),
        "Limits of one run of a problem's checker (CPU seconds, MB, bytes of output), whatever the problem's own limits.",
    )
    testlib_header: str = _option(
        "",
        "Path of testlib.h (https://github.com/MikeMirzayanov/testlib), put next to a C++ checker's source so that `#include \"testlib.h\"` compiles; empty: checkers that include it get SANDBOX_ERROR.",
    )
    max_runner_rss_mb: int = _option(128, "A runner whose own memory grows past this is replaced.")
    owner: str = _option(
        help="Label value `host:pid` naming this pool's process, so orphans of a dead process can be told apart.",
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}",
    )

    @property
    def nano_cpus(self) -> int:
        """The quota as Docker takes it (`--cpus` in billionths of a core)."""
        return round(self.container_cpus * 1e9)

    @property
    def quota_cpus(self) -> float:
        """The quota the container's cgroup ends up with, which its runner reads: Docker writes
        NanoCPUs × 100000 / 10⁹ µs per 100 ms period, rounded down. The host's deadline for a
        job uses this, so that it is never shorter than the runner's cap (`overload_cap_s`)."""
        return (self.nano_cpus * 100_000 // 1_000_000_000) / 100_000

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: need at least 1 warm container")
        if not self.container_cpus >= MIN_CONTAINER_CPUS:
            raise ValueError(f"container_cpus={self.container_cpus}: must be at least {MIN_CONTAINER_CPUS} (Docker's smallest CPU quota)")
        if self.jobs_per_container < 1:
            raise ValueError(f"jobs_per_container={self.jobs_per_container}: must be at least 1")
        if self.outage_timeout_s < 0:
            raise ValueError(f"outage_timeout_s={self.outage_timeout_s}: must be 0 (wait forever) or positive")
        if self.binary_cache_entries < 0 or self.binary_cache_mb < 0:
            raise ValueError("binary_cache_entries and binary_cache_mb must be >= 0 (0 = no binary cache)")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime={self.runtime!r}: choose one of {', '.join(RUNTIMES)}")
        if self.max_limits.memory_limit_mb + 64 > self.container_memory_mb:
            raise ValueError(
                f"max_limits.memory_limit_mb={self.max_limits.memory_limit_mb} leaves under 64 MB of "
                f"container_memory_mb={self.container_memory_mb} for the runner: raise container_memory_mb"
            )
        if self.testlib_header and not os.path.isfile(self.testlib_header):
            raise ValueError(f"testlib_header={self.testlib_header!r}: no such file")
        if not (self.checker_limits.time_limit_s > 0 and self.checker_limits.output_limit_bytes > 0):
            raise ValueError("checker_limits: time_limit_s and output_limit_bytes must be positive")
        if not 0 < self.checker_limits.memory_limit_mb <= self.container_memory_mb - 64:
            raise ValueError(
                f"checker_limits.memory_limit_mb={self.checker_limits.memory_limit_mb} must be positive and leave 64 MB "
                f"of container_memory_mb={self.container_memory_mb} for the runner"
            )
        for name in ("time_limit_s", "memory_limit_mb", "output_limit_bytes"):
            default, cap = getattr(self.default_limits, name), getattr(self.max_limits, name)
            if not 0 < default <= cap:
                raise ValueError(f"default_limits.{name}={default} must be positive and at most max_limits.{name}={cap}")

    def testlib_bytes(self) -> bytes:
        with open(self.testlib_header, "rb") as f:
            return f.read()

    def resolve(self, limits: Limits) -> Limits:
        """A problem's limits with zeros replaced by defaults. Raises ValueError above the caps."""
        resolved = {}
        for name in ("time_limit_s", "memory_limit_mb", "output_limit_bytes"):
            asked, cap = getattr(limits, name), getattr(self.max_limits, name)
            if asked < 0 or asked > cap:
                raise ValueError(f"limits.{name}={asked} is outside [0, {cap}] (0 = server default)")
            resolved[name] = asked or getattr(self.default_limits, name)
        return Limits(**resolved)
