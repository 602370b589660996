"""Which failures the client library retries: transport failures only, never a refusal or an
error raised by the server's own code (retrying those would hide bugs and repeat work); and
which addresses a client spreads its streams over."""

from __future__ import annotations

import grpc
import pytest

from reward_api.client import channel_target, resolve_addresses, retryable


@pytest.mark.parametrize(
    ("code", "details", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", True),
        (grpc.StatusCode.INTERNAL, "Internal error from Core", True),  # server SIGKILLed mid-stream (tests/test_scaleout.py)
        (grpc.StatusCode.INTERNAL, "Received RST_STREAM with error code 2", True),
        (grpc.StatusCode.UNKNOWN, "Stream removed", True),
        (grpc.StatusCode.INTERNAL, "ValueError: the server's own bug", False),
        (grpc.StatusCode.INTERNAL, None, False),
        (grpc.StatusCode.INVALID_ARGUMENT, "Internal error from Core", False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full", False),
        (grpc.StatusCode.UNAUTHENTICATED, "bad token", False),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", False),
    ],
)
def test_only_transport_failures_are_retried(code: grpc.StatusCode, details: str | None, expected: bool) -> None:
    assert retryable(code, details) is expected


def test_targets_become_addresses_or_stay_uris() -> None:
    """What SpreadSession opens one stream per: every address of HOST:PORT targets (names
    resolved, repeats dropped); a URI target is gRPC's to resolve (one stream)."""
    assert resolve_addresses(["10.0.0.5:50051", "10.0.0.6:50051", "10.0.0.5:50051"]) == [("10.0.0.5", "50051"), ("10.0.0.6", "50051")]
    assert resolve_addresses("10.0.0.5:50051,[::1]:7") == [("10.0.0.5", "50051"), ("::1", "7")]
    assert resolve_addresses("localhost:50051") and all(port == "50051" for _, port in resolve_addresses("localhost:50051") or [])
    for uri in ("dns:///codereward-server.codereward.svc:50051", "ipv4:10.0.0.5:1,10.0.0.6:1", "unix:/run/cr.sock"):
        assert resolve_addresses(uri) is None and channel_target(uri) == uri
    assert channel_target(["10.0.0.6:1", "10.0.0.5:1"]) == "ipv4:10.0.0.6:1,10.0.0.5:1"
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        resolve_addresses(["10.0.0.5"])
