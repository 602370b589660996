"""`AsyncRewardClient` (asyncio) and `RewardClient` (sync): one group per call, retried.

`UNAVAILABLE` (server down, restarting, draining) and transport failures are retried with
exponential backoff until `retry_timeout_s`; every other status is raised at once as
`RewardServiceError`. Both clients share the channel set-up, this rule and the health call;
they differ only in how they wait.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from codereward.v1 import reward_pb2 as pb
from codereward.v1 import reward_pb2_grpc as pb_grpc

from .channel import ClientOptions, call_metadata, open_channel
from .types import GroupScore, make_request

if TYPE_CHECKING:
    from .sessions import ScoreSession


class RewardServiceError(Exception):
    """The service refused or failed a request; `code` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


# A server killed mid-call does not always end the call with UNAVAILABLE: depending on when
# the connection breaks, gRPC core reports INTERNAL/UNKNOWN with one of these details (seen in
# tests/test_scaleout.py and tests/test_faults.py). Those are transport failures, retried like
# UNAVAILABLE; an INTERNAL raised by the server's own code (other details) is not.
_TRANSPORT_DETAILS = ("Internal error from Core", "RST_STREAM", "Stream removed", "Socket closed", "Connection reset", "GOAWAY")


def retryable(code: grpc.StatusCode, details: str | None) -> bool:
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    return code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) and any(marker in (details or "") for marker in _TRANSPORT_DETAILS)


class Backoff:
    """The retry rule of one call (or one stream between answers): exponential backoff with
    jitter until `retry_timeout_s` has passed since it began."""

    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        self.deadline = time.monotonic() + options.retry_timeout_s
        self.delay = options.initial_backoff_s

    def delay_after(self, code: grpc.StatusCode, details: str | None) -> float | None:
        """Seconds to wait before trying again after a failure with `code`, or None when that
        failure is not retried or retrying is over."""
        if not retryable(code, details) or time.monotonic() >= self.deadline:
            return None
        delay = min(self.delay, self.options.max_backoff_s) * random.uniform(0.8, 1.2)
        self.delay *= 2
        return min(delay, max(0.0, self.deadline - time.monotonic()))

    def delay_or_raise(self, exc: grpc.RpcError) -> float:
        """`delay_after` for a failed call; raises it as RewardServiceError when it is not retried."""
        delay = self.delay_after(exc.code(), exc.details())
        if delay is None:
            raise RewardServiceError(exc.code(), exc.details() or "") from exc
        return delay


class _Client:
    """What both clients share; `_api` is the module whose channels they use."""

    _api: Any

    def __init__(
        self, targets: str | Sequence[str], options: ClientOptions | None = None, *, policy: str = "round_robin", **kwargs: Any
    ) -> None:
        """`policy`: gRPC load balancing over the targets' addresses, `round_robin` (each call to
        the next server) or `pick_first` (the first one that answers, the next when it fails)."""
        self.options = options or ClientOptions(**kwargs)
        self.channel = open_channel(self._api, targets, self.options, policy)
        self.stub = pb_grpc.RewardServiceStub(self.channel)
        self.metadata = call_metadata(self.options)

    def _score_call(self, request: pb.ScoreRequest) -> Any:
        return self.stub.Score(request, timeout=self.options.timeout_s, metadata=self.metadata)

    def _health_call(self, service: str, timeout_s: float) -> Any:
        stub = health_pb2_grpc.HealthStub(self.channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s, metadata=self.metadata)


def _status_name(reply: health_pb2.HealthCheckResponse) -> str:
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


class AsyncRewardClient(_Client):
    _api = grpc.aio

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def score(self, request: pb.ScoreRequest) -> GroupScore:
        """Score one group; retries UNAVAILABLE, raises RewardServiceError otherwise."""
        backoff = Backoff(self.options)
        while True:
            try:
                return GroupScore.from_pb(await self._score_call(request))
            except grpc.aio.AioRpcError as exc:
                await asyncio.sleep(backoff.delay_or_raise(exc))

    async def score_group(self, problem: pb.Problem, codes: Sequence[str], **kwargs: Any) -> GroupScore:
        return await self.score(make_request(problem, codes, **kwargs))

    def session(self) -> ScoreSession:
        from .sessions import ScoreSession  # (sessions build on this client)

        return ScoreSession(self)

    async def health(self, service: str = "", timeout_s: float = 5.0) -> str:
        """The health service's status name for `service` ("" = the whole server)."""
        return _status_name(await self._health_call(service, timeout_s))


class RewardClient(_Client):
    """Synchronous client: the same behaviour as AsyncRewardClient, for scripts and notebooks."""

    _api = grpc

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def score(self, request: pb.ScoreRequest) -> GroupScore:
        """Score one group; retries UNAVAILABLE, raises RewardServiceError otherwise."""
        backoff = Backoff(self.options)
        while True:
            try:
                return GroupScore.from_pb(self._score_call(request))
            except grpc.RpcError as exc:
                time.sleep(backoff.delay_or_raise(exc))

    def score_group(self, problem: pb.Problem, codes: Sequence[str], **kwargs: Any) -> GroupScore:
        return self.score(make_request(problem, codes, **kwargs))

    def health(self, service: str = "", timeout_s: float = 5.0) -> str:
        """The health service's status name for `service` ("" = the whole server)."""
        return _status_name(self._health_call(service, timeout_s))
