"""Scale-out: two real `reward-server` processes on two loopback ports, one client spreading
500 programs over both (gRPC round_robin); one server is SIGKILLed midway and its groups move
to the other, with no program lost and every verdict right. (A ScoreSession whose server is
killed is tests/test_faults.py's subject.)"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import grpc
import pytest

from reward_api.client import AsyncRewardClient, RewardServiceError, SpreadSession
from reward_api.types import GroupScore, Verdict, assert_test, call_test, make_problem, make_request
from sandboxes.config import CONTAINER_LABEL
from sandboxes.container import sweep_orphans

from .server_proc import ServerProcess

pytestmark = pytest.mark.docker

ADD = make_problem("add", [assert_test("assert add(1, 2) == 3"), call_test([2, 3], 5)], entry_point="add")
GROUPS, GROUP_SIZE = 125, 4  # 500 programs
EXPECTED = [Verdict.PASSED, Verdict.FAILED, Verdict.RUNTIME_ERROR, Verdict.SYNTAX_ERROR]


def group_codes(index: int) -> list[str]:
    """Four distinct programs with known verdicts (distinct across groups too: no dedup)."""
    return [
        f"def add(a, b):\n    return a + b  # {index}\n",
        f"def add(a, b):\n    return a - b  # {index}\n",
        f"def add(a, b):\n    raise ValueError({index})\n",
        f"def add(a, b) return {index}\n",
    ]


@pytest.fixture
def two_servers(sandbox_image: str, docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    servers: list[ServerProcess] = []
    try:
        servers.append(ServerProcess(sandbox_image))
        servers.append(ServerProcess(sandbox_image))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()
        # A SIGKILLed server cannot remove its containers; they end when their attach stream
        # closes, and the sweep that a restarted server would do removes any left.
        sweep_orphans(docker_client)
        host = os.uname().nodename
        for server in servers:
            owner = f"{CONTAINER_LABEL}={host}:{server.proc.pid}"
            for _ in range(50):
                if not docker_client.api.containers(all=True, filters={"label": owner}):
                    break
                time.sleep(0.1)
            assert docker_client.api.containers(all=True, filters={"label": owner}) == [], f"containers of {owner} left behind"


def check(groups: list[GroupScore | None]) -> None:
    assert all(g is not None for g in groups), f"{sum(g is None for g in groups)} groups never answered"
    for index, group in enumerate(groups):
        assert group is not None
        assert [r.verdict for r in group.results] == EXPECTED, (index, [(r.verdict, r.tests) for r in group.results])
        assert group.rewards == [1.0, 0.0, 0.0, 0.0]


async def test_load_spreads_over_two_servers_and_survives_one_killed(two_servers: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = two_servers
    results: list[GroupScore | None] = [None] * GROUPS
    done = asyncio.Event()
    kill_after = GROUPS // 3
    slots = asyncio.Semaphore(8)
    started = finished = 0
    async with AsyncRewardClient([a.target, b.target], retry_timeout_s=60.0) as client:

        async def one(index: int) -> None:
            nonlocal started, finished
            async with slots:
                started += 1
                results[index] = await client.score_group(ADD, group_codes(index))
            finished += 1
            if finished >= kill_after:
                done.set()

        tasks = [asyncio.create_task(one(i)) for i in range(GROUPS)]
        await done.wait()
        served_by_b_before = await asyncio.to_thread(b.programs_served)
        served_by_a = await asyncio.to_thread(a.programs_served)
        a.kill()  # SIGKILL with groups in flight on it
        # No await since the kill: these counts are the client's state at the kill.
        started_at_kill, finished_at_kill = started, finished
        await asyncio.gather(*tasks)
    served_by_b = await asyncio.to_thread(b.programs_served)
    check(results)  # every group answered, every verdict right: the in-flight ones were rerun
    assert finished_at_kill < started_at_kill, "nothing was in flight at the kill"
    assert served_by_a > 0 and served_by_b_before > 0, ("the load was not spread before the kill", served_by_a, served_by_b_before)
    # Groups first sent after the kill can only have run on b. (a's count cannot be read after
    # the SIGKILL, and the scrape above may miss groups a finished just before it.)
    assert served_by_b >= (GROUPS - started_at_kill) * GROUP_SIZE, (served_by_b, started_at_kill)


async def test_a_spread_session_uses_every_server_and_moves_a_dead_ones_groups(two_servers: tuple[ServerProcess, ServerProcess]) -> None:
    """The trainer's path with two servers: one ScoreStream would stay on one server for its
    whole life; a SpreadSession keeps one per server and sends each group to the least loaded.
    When one server is SIGKILLed, the groups its stream had in flight are answered by the other."""
    a, b = two_servers
    async with SpreadSession([a.target, b.target], retry_timeout_s=60.0) as session:
        first = await asyncio.gather(*(session.submit(make_request(ADD, group_codes(i), request_id=f"g{i}")) for i in range(20)))
        check(list(first))
        served = await asyncio.gather(asyncio.to_thread(a.programs_served), asyncio.to_thread(b.programs_served))
        assert min(served) >= 20, served  # 80 programs: each server ran at least a quarter
        pending = [session.submit(make_request(ADD, group_codes(i), request_id=f"g{i}")) for i in range(20, 60)]
        assert session.in_flight == 40  # 20 groups on each stream: the least loaded takes the next
        while await asyncio.to_thread(a.programs_served) < served[0] + GROUP_SIZE:
            await asyncio.sleep(0.05)
        a.kill()  # SIGKILL mid-work: a has answered some of its 20 groups, not all
        rest = await asyncio.gather(*pending)
        check(list(rest))
        assert session.reconnects >= 1
    # b ran its own 20 groups and the ones a had not finished
    assert await asyncio.to_thread(b.programs_served) > served[1] + 20 * GROUP_SIZE


async def test_a_spread_session_follows_the_addresses_a_name_resolves_to(two_servers: tuple[ServerProcess, ServerProcess]) -> None:
    """A headless Service's name resolves to the pods there are now. The name here resolves
    first to a, then to a and b, then to b only (the function that resolves it is the test's;
    the servers and the streams are real): b gets a stream and a share of the groups; when a
    leaves, its stream closes and the groups it had not answered are answered by b."""
    a, b = two_servers
    address = {s: ("127.0.0.1", s.target.rsplit(":", 1)[1]) for s in (a, b)}
    resolved = [address[a]]
    async with SpreadSession("reward.example:50051", retry_timeout_s=30.0, refresh_s=0.1, resolve=lambda _: list(resolved)) as session:
        assert session.addresses == [address[a]]
        check(list(await asyncio.gather(*(session.submit(make_request(ADD, group_codes(i), request_id=f"g{i}")) for i in range(4)))))
        resolved.append(address[b])
        while len(session.addresses) < 2:
            await asyncio.sleep(0.05)
        before_b = await asyncio.to_thread(b.programs_served)
        check(list(await asyncio.gather(*(session.submit(make_request(ADD, group_codes(i), request_id=f"g{i}")) for i in range(4, 24)))))
        assert await asyncio.to_thread(b.programs_served) >= before_b + 20  # b took a share once it appeared
        before_b = await asyncio.to_thread(b.programs_served)
        pending = [session.submit(make_request(ADD, group_codes(i), request_id=f"g{i}")) for i in range(24, 64)]
        resolved.remove(address[a])  # a leaves with its 20 groups (mostly) unanswered on its stream
        rest = await asyncio.gather(*pending)
        check(list(rest))
        assert session.addresses == [address[b]]
    assert await asyncio.to_thread(b.programs_served) > before_b + 20 * GROUP_SIZE  # b's 20 groups and some of a's


async def test_a_stream_that_gave_up_gets_no_more_groups(sandbox_image: str) -> None:
    """One server refuses this client for good (another token: UNAUTHENTICATED is not retried).
    Its stream gives up; the group on it fails with the reason, and every later group goes to
    the server that answers, instead of waiting forever on the dead stream."""
    servers = [ServerProcess(sandbox_image, "--token", "not-yours", workers=1)]
    try:
        servers.append(ServerProcess(sandbox_image, "--token", "s3cret", workers=1))
        refusing, answering = servers
        async with SpreadSession([refusing.target, answering.target], token="s3cret", retry_timeout_s=5.0) as session:
            first, second = (
                session.submit(make_request(ADD, group_codes(0), request_id="g0")),
                session.submit(make_request(ADD, group_codes(1), request_id="g1")),
            )
            results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), timeout=60)
            refused = [r for r in results if isinstance(r, RewardServiceError)]
            assert len(refused) == 1 and refused[0].code == grpc.StatusCode.UNAUTHENTICATED, results
            later = await asyncio.wait_for(
                asyncio.gather(*(session.submit(make_request(ADD, group_codes(i), request_id=f"g{i}")) for i in range(2, 12))), timeout=120
            )
            check(list(later))
        assert await asyncio.to_thread(answering.programs_served) >= 10 * GROUP_SIZE
    finally:
        for server in servers:
            server.stop()
