"""Which failures the client library retries: transport failures only, never a refusal or an
error raised by the server's own code (retrying those would hide bugs and repeat work)."""

from __future__ import annotations

import grpc
import pytest

from reward_api.client import retryable


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
