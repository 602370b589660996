"""The reward service over a real socket: a real server on localhost:0, real Docker."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from codereward.v1 import reward_pb2 as pb
from codereward.v1 import reward_pb2_grpc as pb_grpc
from reward_api.client import AsyncRewardClient, RewardClient, RewardServiceError
from reward_api.types import Verdict, assert_test, call_test, io_test, make_problem, make_request
from reward_server.config import ServerConfig
from reward_server.server import RewardServer
from sandboxes.config import SandboxConfig

from .conftest import our_containers
from .helpers import parse_metrics

pytestmark = pytest.mark.docker

ADD = make_problem("add", [assert_test("assert add(1, 2) == 3"), call_test([2, 3], 5)], entry_point="add")
GOOD, BAD = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n"


async def start_server(sandbox: SandboxConfig, **overrides: object) -> RewardServer:
    config = ServerConfig(**{"port": 0, "metrics_port": 0, "grace_s": 5.0, "sandbox": sandbox, **overrides})  # type: ignore[arg-type]
    server = RewardServer(config)
    await server.start()
    return server


@pytest.fixture
async def server(fast_config: SandboxConfig) -> AsyncIterator[RewardServer]:
    srv = await start_server(fast_config)
    try:
        yield srv
    finally:
        await srv.stop(grace_s=0)


@pytest.fixture
async def client(server: RewardServer) -> AsyncIterator[AsyncRewardClient]:
    async with AsyncRewardClient(f"127.0.0.1:{server.port}", retry_timeout_s=2.0) as c:
        yield c


def scrape(server: RewardServer) -> dict[str, float]:
    return parse_metrics(urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode())


async def test_score_answers_in_request_order_with_dedup(client: AsyncRewardClient) -> None:
    group = await client.score_group(ADD, [GOOD, BAD, GOOD, "def add(a, b) return"], mode="FRACTION")
    assert [r.id for r in group.results] == ["0", "1", "2", "3"]
    assert [r.verdict for r in group.results] == [Verdict.PASSED, Verdict.FAILED, Verdict.PASSED, Verdict.SYNTAX_ERROR]
    assert group.rewards == [1.0, 0.0, 1.0, 0.0]
    assert [r.deduplicated for r in group.results] == [False, False, True, False]
    assert (group.results[0].passed, group.results[0].total) == (2, 2)
    assert "expected 5, got -1" in group.results[1].tests[1].detail


async def test_io_tests_over_the_wire(client: AsyncRewardClient) -> None:
    problem = make_problem("echo", [io_test("3\n", "6\n"), io_test("4\n", "9\n")])
    group = await client.score_group(problem, ["print(2 * int(input()))"], mode="FRACTION")
    assert [t.verdict for t in group.results[0].tests] == [Verdict.PASSED, Verdict.FAILED]
    assert group.results[0].reward == 0.5


async def test_stream_answers_each_group_as_soon_as_it_is_done(client: AsyncRewardClient) -> None:
    slow = make_request(ADD, ["import time\ntime.sleep(0.6)\n" + GOOD], request_id="slow")
    fast = make_request(ADD, [GOOD], request_id="fast")
    order = []
    async with client.session() as session:
        futures = [session.submit(slow), session.submit(fast)]
        for future in asyncio.as_completed(futures):
            order.append((await future).request_id)
    assert order == ["fast", "slow"]


BAD_REQUESTS = {
    "no completions": (make_request(ADD, []), "completions: empty"),
    "too many completions": (make_request(ADD, [GOOD] * 300), "300 programs exceed the limit of 256"),
    "code too large": (make_request(ADD, ["x = 1\n" * 20000]), "completions[0].code: 120000 bytes exceeds the limit of 65536"),
    "no tests": (make_request(make_problem("p", []), [GOOD]), "problem.tests: empty"),
    "too many tests": (make_request(make_problem("p", [assert_test("pass")] * 300), [GOOD]), "300 tests exceed the limit of 256"),
    "unknown language": (
        make_request(pb.Problem(id="p", language="cobol", tests=[assert_test("pass")]), [GOOD]),
        "'cobol' is not supported",
    ),
    "limit above cap": (
        make_request(make_problem("p", [assert_test("pass")], time_limit_s=999), [GOOD]),
        "problem.limits.time_limit_s: 999.0 is outside [0, 30.0]",
    ),
    "memory above cap": (
        make_request(make_problem("p", [assert_test("pass")], memory_limit_mb=100000), [GOOD]),
        "problem.limits.memory_limit_mb",
    ),
    "call without entry point": (
        make_request(make_problem("p", [call_test([1], 1)]), [GOOD]),
        "problem.tests[0].call: needs problem.entry_point",
    ),
    "malformed args_json": (
        make_request(make_problem("p", [pb.TestCase(call=pb.CallTest(args_json="[1,", expected_json="1"))], entry_point="f"), [GOOD]),
        "problem.tests[0].call.args_json: not JSON",
    ),
    "args_json not a list": (
        make_request(make_problem("p", [pb.TestCase(call=pb.CallTest(args_json='{"a": 1}', expected_json="1"))], entry_point="f"), [GOOD]),
        "must be a JSON array",
    ),
    "empty test": (make_request(make_problem("p", [pb.TestCase()]), [GOOD]), "problem.tests[0]: empty"),
    "test does not compile": (
        make_request(make_problem("p", [assert_test("assert (")]), [GOOD]),
        "problem.tests[0].assert_code: does not compile",
    ),
    "NUL in setup": (
        make_request(make_problem("p", [assert_test("pass")], setup_code="x = 1\x00"), [GOOD]),
        "problem.setup_code: contains a NUL",
    ),
    "bad entry point": (
        make_request(make_problem("p", [assert_test("pass")], entry_point="not a name"), [GOOD]),
        "is not a Python identifier",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
async def test_bad_requests_are_refused_with_the_field_and_limit(client: AsyncRewardClient, case: str) -> None:
    request, message = BAD_REQUESTS[case]
    with pytest.raises(RewardServiceError) as caught:
        await client.score(request)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.message
    assert (await client.score_group(ADD, [GOOD])).rewards == [1.0]


async def test_a_bad_group_in_a_stream_spoils_nothing_else(client: AsyncRewardClient) -> None:
    async with client.session() as session:
        good = session.submit(make_request(ADD, [GOOD], request_id="good"))
        bad = session.submit(make_request(ADD, [], request_id="bad"))
        later = session.submit(make_request(ADD, [BAD], request_id="later"))
        assert (await good).rewards == [1.0]
        with pytest.raises(RewardServiceError, match="completions: empty"):
            await bad
        assert (await later).rewards == [0.0]


async def test_queue_limit_gives_resource_exhausted(fast_config: SandboxConfig) -> None:
    server = await start_server(fast_config, max_queue=3)
    try:
        async with AsyncRewardClient(f"127.0.0.1:{server.port}") as client:
            with pytest.raises(RewardServiceError) as caught:
                await client.score_group(ADD, [GOOD, BAD, GOOD + "\n", BAD + "\n"])
            assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_queue=3" in caught.value.message
            assert (await client.score_group(ADD, [GOOD, BAD, GOOD])).rewards == [1.0, 0.0, 1.0]  # 2 distinct: admitted
            assert scrape(server)['codereward_rejected_requests_total{reason="queue_full"}'] == 1
    finally:
        await server.stop(grace_s=0)


async def test_cancelled_and_expired_calls_stop_their_jobs(server: RewardServer) -> None:
    spin = make_problem("spin", [assert_test("pass")], time_limit_s=20)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = pb_grpc.RewardServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Score(make_request(spin, ["while True:\n    pass\n"] * 2), timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    call = stub.Score(make_request(spin, ["while True:\n    x = 1\n"]))
    await asyncio.sleep(0.3)
    call.cancel()
    assert server.pool is not None
    for _ in range(100):  # the jobs are killed in their containers, which are kept
        if server.pool.busy == 0 and server.pool.idle == 2:
            break
        await asyncio.sleep(0.05)
    assert (server.pool.busy, server.pool.idle, server.pool.size) == (0, 2, 2)
    await channel.close()
    metrics = scrape(server)
    assert metrics.get('codereward_container_recycles_total{reason="cancel_unacknowledged"}', 0) == 0


async def test_metrics_are_present_and_increase(server: RewardServer, client: AsyncRewardClient) -> None:
    before = scrape(server)
    await client.score_group(ADD, [GOOD, GOOD, BAD])
    after = scrape(server)
    assert (
        after['codereward_requests_total{code="OK",method="Score"}']
        == before.get('codereward_requests_total{code="OK",method="Score"}', 0) + 1
    )
    assert after['codereward_programs_total{language="python",verdict="PASSED"}'] >= before.get('codereward_programs_total{language="python",verdict="PASSED"}', 0) + 1
    assert after['codereward_programs_total{language="python",verdict="FAILED"}'] >= before.get('codereward_programs_total{language="python",verdict="FAILED"}', 0) + 1
    assert after["codereward_dedup_hits_total"] == before.get("codereward_dedup_hits_total", 0) + 1
    assert after["codereward_program_duration_seconds_count"] >= 2
    assert after["codereward_queue_wait_seconds_count"] >= 2
    assert after['codereward_tests_total{language="python",verdict="PASSED"}'] >= 2
    for name in (
        "codereward_queue_depth",
        'codereward_sandboxes{state="idle"}',
        "codereward_inflight_requests",
        "codereward_container_starts_total",
    ):
        assert name in after, name
    assert after["codereward_container_starts_total"] == 2


async def test_health_and_reflection(server: RewardServer, client: AsyncRewardClient) -> None:
    assert await client.health() == "SERVING"
    assert await client.health("codereward.v1.RewardService") == "SERVING"
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    services = [s.name async for r in responses for s in r.list_services_response.service]
    assert "codereward.v1.RewardService" in services and "grpc.health.v1.Health" in services
    await channel.close()


async def test_graceful_stop_finishes_in_flight_work_and_removes_containers(fast_config: SandboxConfig, docker_client: object) -> None:
    server = await start_server(fast_config, drain_s=2.0)
    async with AsyncRewardClient(f"127.0.0.1:{server.port}", retry_timeout_s=0.5) as client:
        slow = asyncio.create_task(client.score_group(ADD, ["import time\ntime.sleep(0.7)\n" + GOOD]))
        await asyncio.sleep(0.3)
        stopping = asyncio.create_task(server.stop())
        await asyncio.sleep(0.1)
        assert await client.health() == "NOT_SERVING"  # still answering while draining
        assert (await slow).rewards == [1.0]  # in flight when the listener closed: finished
        await stopping
        with pytest.raises(RewardServiceError) as caught:
            await client.score_group(ADD, [GOOD])
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert our_containers(docker_client) == []  # type: ignore[arg-type]


async def test_token_is_checked_on_every_call_but_health(fast_config: SandboxConfig) -> None:
    server = await start_server(fast_config, token="s3cret")
    try:
        target = f"127.0.0.1:{server.port}"
        async with (
            AsyncRewardClient(target, retry_timeout_s=0.5) as anonymous,
            AsyncRewardClient(target, token="wrong") as wrong,
            AsyncRewardClient(target, token="s3cret") as right,
        ):
            for client in (anonymous, wrong):
                with pytest.raises(RewardServiceError) as caught:
                    await client.score_group(ADD, [GOOD])
                assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
                async with client.session() as session:
                    with pytest.raises(RewardServiceError, match="UNAUTHENTICATED"):
                        await session.submit(make_request(ADD, [GOOD]))
            assert await anonymous.health() == "SERVING"
            assert (await right.score_group(ADD, [GOOD])).rewards == [1.0]
    finally:
        await server.stop(grace_s=0)


async def test_client_retries_until_a_restarting_server_is_back(fast_config: SandboxConfig) -> None:
    server = await start_server(fast_config)
    port = server.port
    await server.stop(grace_s=0)
    async with AsyncRewardClient(f"127.0.0.1:{port}", retry_timeout_s=30.0) as client:
        pending = asyncio.create_task(client.score_group(ADD, [GOOD]))
        await asyncio.sleep(0.5)
        assert not pending.done()
        restarted = await start_server(fast_config, port=port)
        try:
            assert (await pending).rewards == [1.0]
        finally:
            await restarted.stop(grace_s=0)


async def test_sync_client(server: RewardServer) -> None:
    def use() -> None:  # in a thread: the server runs on this test's event loop
        with RewardClient(f"127.0.0.1:{server.port}") as client:
            assert client.health() == "SERVING"
            assert client.score_group(ADD, [GOOD, BAD]).rewards == [1.0, 0.0]

    await asyncio.to_thread(use)


async def test_sandbox_errors_are_masked_not_zero(fast_config: SandboxConfig, docker_client: object) -> None:
    server = await start_server(dataclasses.replace(fast_config, workers=1))
    try:
        async with AsyncRewardClient(f"127.0.0.1:{server.port}") as client:
            assert server.pool is not None
            pool = server.pool
            job = asyncio.create_task(client.score_group(ADD, ["import time\ntime.sleep(0.8)\n" + GOOD]))
            for _ in range(2):  # kill the container under both attempts
                for _ in range(200):
                    if pool.busy:
                        break
                    await asyncio.sleep(0.02)
                sandbox = next(iter(pool._live))
                await asyncio.to_thread(docker_client.api.kill, sandbox.container.id)  # type: ignore[attr-defined]
                await sandbox.exited.wait()
            group = await job
            assert group.results[0].verdict is Verdict.SANDBOX_ERROR and group.results[0].reward is None and group.results[0].masked
            assert scrape(server)["codereward_sandbox_errors_total"] == 1
    finally:
        await server.stop(grace_s=0)


async def test_tls_with_a_token(fast_config: SandboxConfig, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = await start_server(fast_config, tls_cert=cert, tls_key=key, token="t0k3n")
    try:
        target = f"127.0.0.1:{server.port}"
        async with AsyncRewardClient(target, tls=True, tls_ca=cert, token="t0k3n") as client:
            assert (await client.score_group(ADD, [GOOD])).rewards == [1.0]
        async with AsyncRewardClient(target, token="t0k3n", retry_timeout_s=0.5) as plaintext:
            with pytest.raises(RewardServiceError) as caught:
                await plaintext.score_group(ADD, [GOOD])
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE  # no plaintext on a TLS port
    finally:
        await server.stop(grace_s=0)
