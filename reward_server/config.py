"""Configuration of one reward server process: one validated dataclass, from flags or TOML."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    """Address to listen on. Anything but loopback needs TLS and a token, or --insecure."""
    port: int = 50051
    """gRPC port (0 = pick a free one)."""
    metrics_port: int | None = 9464
    """Prometheus /metrics port (0 = pick a free one, None = no metrics endpoint)."""
    metrics_host: str = ""
    """Address of the metrics endpoint; empty = the same as `host`."""
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    """Warm sandbox containers (one job each at a time)."""
    image: str = ""
    """Sandbox image; empty = the tag this source tree builds (`codereward-build-image`)."""
    runtime: str = "runc"
    """OCI runtime of the sandboxes: runc, or runsc (gVisor)."""
    jobs_per_container: int = 1000
    """A sandbox container is replaced after this many jobs."""
    outage_timeout_s: float = 60.0
    """With no sandbox container alive for this long (Docker engine down), programs are answered
    SANDBOX_ERROR (masked, counted in codereward_sandbox_errors_total) instead of waiting; 0 = wait."""
    max_completions: int = 256
    """Completions in one request."""
    max_code_bytes: int = 64 * 1024
    """Size of one completion's code."""
    max_test_bytes: int = 64 * 1024
    """Size of one test (assert code, stdin + expected stdout, or args + expected JSON)."""
    max_setup_bytes: int = 64 * 1024
    max_tests: int = 256
    """Tests in one problem."""
    max_queue: int = 4096
    """Programs admitted (queued or running) before requests get RESOURCE_EXHAUSTED."""
    token: str | None = None
    """Bearer token every call must carry (authorization metadata), health checks aside."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    """Allow a non-loopback address without TLS and token. This server runs arbitrary code."""
    drain_s: float = 2.0
    """On SIGTERM, how long to keep answering with health NOT_SERVING, so that load balancers
    and clients move to other servers, before new calls are refused."""
    grace_s: float = 30.0
    """Then, how long in-flight requests get to finish."""

    def __post_init__(self) -> None:
        for name in ("max_completions", "max_code_bytes", "max_test_bytes", "max_tests", "max_queue", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if not self.insecure and not _is_loopback(self.host) and (self.tls_cert is None or not self.token):
            raise ValueError(
                f"host={self.host!r} is not a loopback address: this server runs arbitrary code for whoever "
                "reaches it, so it needs --tls-cert/--tls-key and --token (or --insecure, on a network you trust)"
            )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @classmethod
    def from_toml(cls, path: Path, **overrides: Any) -> ServerConfig:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        data = data.get("server", data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        for key in ("tls_cert", "tls_key"):
            if data.get(key):
                data[key] = Path(data[key])
        return cls(**{**data, **overrides})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
