"""Where a client connects and how its channel is set up: targets, options, credentials.

- Several `host:port` targets become one `ipv4:`/`ipv6:` address list (hostnames resolved
  now), balanced by gRPC's `round_robin` policy; a URI target (`dns:///name:port`, `ipv4:...`,
  `unix:...`) is passed to gRPC as it is, to resolve itself.
- gRPC's own retries are off: the clients retry, explicitly and only transport failures.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ClientOptions:
    token: str | None = None
    """Bearer token sent as `authorization` metadata on every call."""
    tls: bool = False
    """Use TLS (server certificate checked against `tls_ca`, or the system roots)."""
    tls_ca: Path | None = None
    timeout_s: float = 600.0
    """Deadline of one call."""
    retry_timeout_s: float = 60.0
    """How long UNAVAILABLE is retried before giving up."""
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    keepalive_s: float = 30.0


def resolve_addresses(targets: str | Sequence[str]) -> list[tuple[str, str]] | None:
    """(host, port) of every address of `host:port` targets, hostnames resolved now, in order,
    without repeats; None for a single URI target (`dns:///name:port`, `ipv4:...`, `unix:...`)."""
    if isinstance(targets, str):
        targets = [targets] if _is_uri(targets) else [t for t in targets.split(",") if t]
    if len(targets) == 1 and _is_uri(targets[0]):
        return None
    addresses = []
    for target in targets:
        host, sep, port = target.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"target {target!r}: expected HOST:PORT")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            addresses.append((host, port))
        except ValueError:
            for info in socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM):
                addresses.append((str(info[4][0]), port))
    return list(dict.fromkeys(addresses))


def _is_uri(target: str) -> bool:
    return "://" in target or target.startswith(("ipv4:", "ipv6:", "unix:"))


def channel_target(targets: str | Sequence[str]) -> str:
    """One gRPC target for one or several `host:port` (hostnames resolved now) or a URI."""
    addresses = resolve_addresses(targets)
    if addresses is None:
        return targets if isinstance(targets, str) else targets[0]
    return address_list(addresses)


def address_list(addresses: Sequence[tuple[str, str]]) -> str:
    """A gRPC `ipv4:` or `ipv6:` target; with both families, IPv4 addresses as IPv4-mapped."""
    if any(":" in host for host, _ in addresses):
        return "ipv6:" + ",".join(f"[{h}]:{p}" if ":" in h else f"[::ffff:{h}]:{p}" for h, p in addresses)
    return "ipv4:" + ",".join(f"{h}:{p}" for h, p in addresses)


def channel_options(options: ClientOptions, policy: str = "round_robin") -> list[tuple[str, Any]]:
    config: dict[str, Any] = {"loadBalancingConfig": [{policy: {}}]}
    return [
        ("grpc.service_config", json.dumps(config)),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", int(options.keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 0),  # retries are ours: explicit, and only on UNAVAILABLE
    ]


def open_channel(api: Any, targets: str | Sequence[str], options: ClientOptions, policy: str = "round_robin") -> Any:
    """A channel to `targets` from `api`, the module `grpc` (sync) or `grpc.aio` (asyncio): both
    have the same `insecure_channel` and `secure_channel`."""
    target = channel_target(targets)
    opts = channel_options(options, policy)
    if not options.tls:
        return api.insecure_channel(target, options=opts)
    roots = options.tls_ca.read_bytes() if options.tls_ca else None
    return api.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots), options=opts)


def call_metadata(options: ClientOptions) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {options.token}"),) if options.token else ()
