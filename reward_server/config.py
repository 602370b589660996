"""Configuration of one reward server process: one validated dataclass, from flags or TOML.

The sandbox pool's settings are a `SandboxConfig` (sandboxes/config.py) inside it, declared
once there; `SANDBOX_FLAGS` names those the command line and TOML files set, as flat keys
(`--workers`, `workers = 8`).
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from reward_api.config_flags import option
from sandboxes.config import SandboxConfig

# The SandboxConfig fields an operator sets from `reward-server`'s flags and TOML file, as flat
# keys; their help texts are the fields' own (sandboxes/config.py).
SANDBOX_FLAGS = ("workers", "image", "runtime", "jobs_per_container", "outage_timeout_s", "testlib_header")


@dataclass(frozen=True)
class ServerConfig:
    host: str = option("127.0.0.1", "Address to listen on. Anything but loopback needs TLS and a token, or --insecure.")
    port: int = option(50051, "gRPC port (0 = pick a free one).")
    metrics_port: int | None = option(9464, "Prometheus /metrics port (0 = pick a free one, None = no metrics endpoint).")
    metrics_host: str = option("", "Address of the metrics endpoint; empty = the same as `host`.")
    sandbox: SandboxConfig = option(
        help="The sandbox pool: containers, their limits and how they are replaced.", default_factory=SandboxConfig
    )
    max_completions: int = option(256, "Most completions in one request.")
    max_code_bytes: int = option(64 * 1024, "Largest size of one completion's code.")
    max_test_bytes: int = option(64 * 1024, "Largest size of one test (assert code, stdin + expected stdout, or args + expected JSON).")
    max_setup_bytes: int = option(64 * 1024, "Largest size of a problem's setup code.")
    max_checker_bytes: int = option(1 << 20, "Largest size of a problem's checker source (one that carries testlib.h inside it fits).")
    max_tests: int = option(256, "Most tests in one problem.")
    max_queue: int = option(4096, "Programs admitted (queued or running) before requests get RESOURCE_EXHAUSTED.")
    token: str | None = option(None, "Bearer token every call must carry (authorization metadata), health checks aside.")
    tls_cert: Path | None = option(None, "PEM certificate chain of the server; with --tls-key, the server speaks TLS only.")
    tls_key: Path | None = option(None, "PEM private key of --tls-cert.")
    insecure: bool = option(False, "Allow a non-loopback address without TLS and token. This server runs arbitrary code.")
    drain_s: float = option(
        2.0,
        "On SIGTERM, how long to keep answering with health NOT_SERVING, so that load balancers "
        "and clients move to other servers, before new calls are refused.",
    )
    grace_s: float = option(30.0, "Then, how long in-flight requests get to finish.")

    def __post_init__(self) -> None:
        for name in ("max_completions", "max_code_bytes", "max_test_bytes", "max_tests", "max_queue", "max_checker_bytes"):
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
    def from_flat(cls, data: dict[str, Any], source: str = "config") -> ServerConfig:
        """From flat keys: this class's fields, and the SANDBOX_FLAGS of its sandbox."""
        known = {f.name for f in fields(cls) if f.name != "sandbox"} | set(SANDBOX_FLAGS)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        sandbox = SandboxConfig(**{k: v for k, v in data.items() if k in SANDBOX_FLAGS})
        return cls(**{k: v for k, v in data.items() if k not in SANDBOX_FLAGS}, sandbox=sandbox)

    @classmethod
    def from_toml(cls, path: Path, **overrides: Any) -> ServerConfig:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        data = data.get("server", data)
        for key in ("tls_cert", "tls_key"):
            if data.get(key):
                data[key] = Path(data[key])
        return cls.from_flat({**data, **overrides}, source=str(path))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
