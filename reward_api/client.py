"""Clients of the reward service: `AsyncRewardClient` (asyncio) and `RewardClient` (sync).

    async with AsyncRewardClient(["10.0.0.5:50051", "10.0.0.6:50051"]) as client:
        group = await client.score_group(problem, codes)          # GroupScore
        async with client.session() as session:                   # one long-lived ScoreStream
            futures = [session.submit(request) for request in requests]

- Several targets share one channel with gRPC's `round_robin` policy (client-side load
  balancing; `dns:///name:port` works too, e.g. a Kubernetes headless Service).
- `UNAVAILABLE` (server down, restarting, draining) is retried with exponential backoff until
  `retry_timeout_s`; every other status is raised at once as `RewardServiceError`.
- A `ScoreSession` reopens its stream after `UNAVAILABLE` and sends again every request not yet
  answered, on whichever server is up: a server killed mid-stream loses no group.
- A stream stays on one server, so a `SpreadSession` keeps one stream per server and sends each
  group on the least loaded: what a trainer with several reward servers uses.

This module is the public entry point; the code lives by job in `channel` (targets and channel
options), `clients` (the two clients and their retry rule) and `sessions` (streams).
"""

from __future__ import annotations

from .channel import MAX_MESSAGE_BYTES, ClientOptions, address_list, channel_options, channel_target, resolve_addresses
from .clients import AsyncRewardClient, Backoff, RewardClient, RewardServiceError, retryable
from .sessions import ScoreSession, SpreadSession

__all__ = [
    "MAX_MESSAGE_BYTES",
    "AsyncRewardClient",
    "Backoff",
    "ClientOptions",
    "RewardClient",
    "RewardServiceError",
    "ScoreSession",
    "SpreadSession",
    "address_list",
    "channel_options",
    "channel_target",
    "resolve_addresses",
    "retryable",
]
