"""Load: many trainer ranks at once against one `reward-server` process on loopback.

16 clients, each with its own channel (half call `Score`, half keep a `ScoreSession` stream,
as the trainer does), each sending groups of 8 (6 distinct programs, 2 repeats: GRPO groups
repeat themselves). Every request must be answered, every verdict right, the queue must be
empty again afterwards, and the server's RSS must stay within a stated bound. The default
run is 16 x 12 requests; the full 16 x 200 runs under the `soak` marker (CODEREWARD_SOAK=1).
With a low `--max-queue` the excess is refused with RESOURCE_EXHAUSTED, never dropped.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest

from reward_api.client import AsyncRewardClient, RewardServiceError
from reward_api.types import GroupScore, assert_test, make_problem, make_request

from .server_proc import ServerProcess

pytestmark = pytest.mark.docker

SOAK = [
    pytest.mark.soak,
    pytest.mark.skipif(os.environ.get("CODEREWARD_SOAK") != "1", reason="long run: set CODEREWARD_SOAK=1 (.ci/run does when time allows)"),
]
CLIENTS = 16
GROUP = 8
# Growth of the server's RSS allowed from after a warm-up to the end of the load. Measured
# here: a few MB over 16 x 12 and 16 x 200 requests (gRPC buffers, Prometheus samples); a leak
# of one request's messages (~2 KB) or one program's result per request would exceed it on the
# full run.
RSS_GROWTH_BOUND_MB = 40.0

# Groups a streaming client keeps in flight, as a trainer does for one step's prompts. (With all
# 200 in flight at once, 8 streams x 200 x 6 programs exceed the default max_queue=4096: the
# excess is then refused with RESOURCE_EXHAUSTED, as the last test here shows on purpose.)
WINDOW = 16
# Descriptors the server may gain over the run without a leak: the Docker SDK's connection pool
# keeps up to 10 sockets to the engine as container recycling makes calls from several threads.
FD_SLACK = 16

ADD = make_problem("add", [assert_test("assert add(1, 2) == 3"), assert_test("assert add(-4, 4) == 0")])


def request_for(client: int, index: int) -> tuple[object, list[float]]:
    """A group of 8: six distinct programs (right when k is even) and two repeats."""
    codes = [f"def add(a, b):\n    return a {'+' if k % 2 == 0 else '*'} b  # {client}/{index}/{k}\n" for k in range(6)]
    codes += [codes[0], codes[1]]
    return make_request(ADD, codes, request_id=f"c{client}-r{index}"), [1.0 if k % 2 == 0 else 0.0 for k in range(6)] + [1.0, 0.0]


async def one_client(target: str, client_index: int, requests: int, streaming: bool) -> Counter[str]:
    """Send `requests` groups; count the outcomes ('ok', 'wrong', or a status name)."""
    outcomes: Counter[str] = Counter()

    def check(score: GroupScore, expected: list[float], request_id: str) -> None:
        outcomes["ok" if score.request_id == request_id and score.rewards == expected else "wrong"] += 1

    async with AsyncRewardClient(target, retry_timeout_s=30.0, timeout_s=300.0) as client:
        if streaming:
            async with client.session() as session:
                window = asyncio.Semaphore(WINDOW)

                async def one(i: int) -> None:
                    request, expected = request_for(client_index, i)
                    async with window:
                        try:
                            check(await session.submit(request), expected, request.request_id)  # type: ignore[arg-type, attr-defined]
                        except RewardServiceError as exc:
                            outcomes[exc.code.name] += 1

                await asyncio.gather(*(one(i) for i in range(requests)))
        else:
            for i in range(requests):
                request, expected = request_for(client_index, i)
                try:
                    check(await client.score(request), expected, request.request_id)  # type: ignore[arg-type, attr-defined]
                except RewardServiceError as exc:
                    outcomes[exc.code.name] += 1
    return outcomes


async def burst(target: str, requests: int) -> Counter[str]:
    counts = await asyncio.gather(*(one_client(target, c, requests, streaming=c % 2 == 0) for c in range(CLIENTS)))
    return sum(counts, Counter())


@pytest.fixture
def server(sandbox_image: str) -> Iterator[ServerProcess]:
    process = ServerProcess(sandbox_image, workers=2)
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.mark.parametrize("requests", [pytest.param(12, id="16x12"), pytest.param(200, id="16x200", marks=SOAK)])
async def test_many_clients_every_request_answered_right_and_memory_bounded(server: ServerProcess, requests: int) -> None:
    assert await burst(server.target, 2) == Counter(ok=CLIENTS * 2)  # warm-up: channels, caches, metric series
    rss_before, fds_before = server.rss_mb(), server.open_fds()
    began = time.monotonic()
    outcomes = await burst(server.target, requests)
    seconds = time.monotonic() - began
    rss_after, fds_after = server.rss_mb(), server.open_fds()
    total = CLIENTS * requests
    print(
        f"\n{total} requests ({total * GROUP} programs, {total * 6} distinct) in {seconds:.1f}s; server RSS {rss_before:.1f} -> {rss_after:.1f} MB, fds {fds_before} -> {fds_after}"
    )
    assert outcomes == Counter(ok=total)
    metrics = server.metrics()
    assert metrics["codereward_queue_depth"] == 0 and metrics["codereward_admitted_programs"] == 0
    assert metrics['codereward_requests_total{code="OK",method="Score"}'] + metrics[
        'codereward_requests_total{code="OK",method="ScoreStream"}'
    ] == CLIENTS * (requests + 2)
    assert metrics["codereward_dedup_hits_total"] == 2 * CLIENTS * (requests + 2)
    assert rss_after - rss_before < RSS_GROWTH_BOUND_MB, f"server RSS grew {rss_after - rss_before:.1f} MB"
    assert fds_after <= fds_before + FD_SLACK  # no descriptor leak per request (3200 on the full run) or per channel


async def test_a_low_queue_limit_refuses_the_excess_explicitly(sandbox_image: str) -> None:
    """max_queue=8 admits one group of 6 distinct programs at a time: the rest of a 16-client
    burst is refused with RESOURCE_EXHAUSTED (an answer, not a loss), and whatever was admitted
    is scored right."""
    server = ServerProcess(sandbox_image, "--max-queue", "8", workers=2)
    try:
        outcomes = await burst(server.target, 4)
        assert sum(outcomes.values()) == CLIENTS * 4
        assert set(outcomes) == {"ok", grpc.StatusCode.RESOURCE_EXHAUSTED.name}, outcomes
        assert (
            server.metrics()['codereward_rejected_requests_total{reason="queue_full"}'] == outcomes[grpc.StatusCode.RESOURCE_EXHAUSTED.name]
        )
        assert await one_client(server.target, 99, 2, streaming=False) == Counter(ok=2)  # the burst is over: admitted again
    finally:
        assert server.stop() == 0
