"""Fault injection with real processes: sandbox containers killed under load, a reward server
SIGKILLed in the middle of a ScoreStream, the Docker engine stopped and started under a
running server. What must hold: no program lost, none scored wrong (an infrastructure fault
is SANDBOX_ERROR, never FAILED), and the service heals by itself.

(A job that fills the sandbox's tmpfs is covered where the sandbox's other attacks are:
`test_sandbox_attacks.py::test_filling_the_tmpfs_does_not_affect_the_next_job`, and again in
the soak, `test_soak.py`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from reward_api.client import AsyncRewardClient, RewardClient
from reward_api.types import GroupScore, Verdict, assert_test, call_test, make_problem, make_request
from reward_server.config import ServerConfig
from reward_server.server import RewardServer
from sandboxes.config import SandboxConfig

from .server_proc import ServerProcess, wait_for

pytestmark = pytest.mark.docker

ADD = make_problem("add", [assert_test("assert add(1, 2) == 3"), call_test([2, 3], 5)], entry_point="add")
GOOD, BAD = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n"


def group(index: int, sleep_s: float = 0.0) -> tuple[list[str], list[Verdict]]:
    """Four distinct programs (two right, two wrong), salted so that no two groups share one."""
    pause = f"import time\ntime.sleep({sleep_s})\n" if sleep_s else ""
    codes = [f"{pause}# group {index} program {k}\n{GOOD if k % 2 == 0 else BAD}" for k in range(4)]
    return codes, [Verdict.PASSED, Verdict.FAILED, Verdict.PASSED, Verdict.FAILED]


def assert_correct(score: GroupScore, expected: list[Verdict]) -> None:
    assert [r.verdict for r in score.results] == expected, score
    assert score.rewards == [1.0 if v is Verdict.PASSED else 0.0 for v in expected]


# -- a reward server SIGKILLed mid-stream ------------------------------------------------------


@pytest.mark.parametrize("takeover", ["restarted", "second_server"])
async def test_server_sigkilled_mid_stream_loses_no_group(sandbox_image: str, docker_client: docker.DockerClient, takeover: str) -> None:
    """The trainer's path: one ScoreSession; the server carrying its stream dies with SIGKILL
    after some groups were answered. The session reopens the stream, on the same address once
    the server is restarted there, or on the second server of its target list, and sends every
    unanswered group again: every group comes back, every verdict right."""
    servers = [ServerProcess(sandbox_image)]
    try:
        if takeover == "second_server":
            servers.append(ServerProcess(sandbox_image))
        groups = [group(i, sleep_s=0.15) for i in range(12)]
        async with AsyncRewardClient([s.target for s in servers], retry_timeout_s=90.0) as client, client.session() as session:
            futures = [session.submit(make_request(ADD, codes, request_id=f"g{i}")) for i, (codes, _) in enumerate(groups)]
            for _ in range(600):
                if sum(f.done() for f in futures) >= 2:
                    break
                await asyncio.sleep(0.02)
            carrying = next(s for s in servers if s.metrics().get("codereward_inflight_requests", 0) > 0)
            answered_before = sum(f.done() for f in futures)
            assert 2 <= answered_before < len(futures), "the kill must land mid-stream"
            await asyncio.to_thread(carrying.kill)
            if takeover == "restarted":
                servers.append(await asyncio.to_thread(ServerProcess, sandbox_image, port=carrying.port))
            scores = await asyncio.wait_for(asyncio.gather(*futures), 120)
            assert session.reconnects >= 1
        for score, (_, expected), i in zip(scores, groups, range(len(groups))):
            assert score.request_id == f"g{i}"
            assert_correct(score, expected)
        # The dead server's sandboxes go away on their own (their stdin closed with it).
        wait_for(lambda: carrying.containers(docker_client) == [], 30, what="the killed server's containers removed")
    finally:
        for server in servers:
            server.stop()


# -- sandbox containers killed under load ------------------------------------------------------


async def test_containers_killed_under_load_give_no_wrong_answer_and_the_pool_heals(
    fast_config: SandboxConfig, docker_client: docker.DockerClient
) -> None:
    """`docker kill` on busy sandboxes, again and again, while a stream of groups flows: every
    program is re-run on a healthy container or answered SANDBOX_ERROR (masked), never FAILED
    for a right program nor PASSED for a wrong one; afterwards the pool is back to full size
    and scores correctly."""
    server = RewardServer(ServerConfig(port=0, metrics_port=None, grace_s=5.0, sandbox=dataclasses.replace(fast_config, workers=2)))
    await server.start()
    try:
        assert server.pool is not None
        pool = server.pool
        groups = [group(i, sleep_s=0.1) for i in range(16)]
        kills = 0

        async def chaos(futures: list[asyncio.Future[GroupScore]]) -> None:
            nonlocal kills
            rng = random.Random(7)
            while kills < 5 and not all(f.done() for f in futures):
                await asyncio.sleep(rng.uniform(0.2, 0.4))
                busy = [s for s in list(pool._live) if not s.dead and s._pending]  # a job in flight on it
                if busy:
                    await asyncio.to_thread(docker_client.api.kill, rng.choice(busy).container.id)
                    kills += 1

        async with AsyncRewardClient(f"127.0.0.1:{server.port}") as client, client.session() as session:
            futures = [session.submit(make_request(ADD, codes, request_id=f"g{i}")) for i, (codes, _) in enumerate(groups)]
            await chaos(futures)
            scores = await asyncio.wait_for(asyncio.gather(*futures), 120)
            assert kills >= 3
            masked = 0
            for score, (_, expected) in zip(scores, groups):
                for result, want in zip(score.results, expected):
                    if result.verdict is Verdict.SANDBOX_ERROR:
                        assert result.reward is None
                        masked += 1
                    else:
                        assert result.verdict is want, result
            assert masked <= kills  # each kill can cost at most the jobs it hit twice
            for _ in range(400):
                if pool.size == 2:
                    break
                await asyncio.sleep(0.05)
            assert pool.size == 2
            assert_correct(await client.score(make_request(ADD, group(99)[0])), group(99)[1])
    finally:
        await server.stop(grace_s=0)


# -- the Docker engine stopped and started -----------------------------------------------------


class PrivateEngine:
    """A second dockerd of our own (own data, exec root, socket, no bridge, no iptables), so that
    stopping it disturbs no one else's tests on the shared engine."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.host = f"unix://{self.socket}"
        (root / "daemon.json").write_text("{}")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--config-file",
                str(self.root / "daemon.json"),
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "-H",
                self.host,
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--shutdown-timeout=2",
            ],  # the runner (PID 1) ignores SIGTERM: do not wait the default 15 s
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "dockerd.log", "ab"),  # noqa: SIM115 (closed with the process)
        )
        wait_for(self.ping, 60, 0.2, what="the private dockerd answering")

    def ping(self) -> bool:
        with contextlib.suppress(Exception):
            client = docker.DockerClient(base_url=self.host, timeout=5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        return False

    def stop(self) -> None:
        """Stop it as an operator would (SIGTERM: it stops its containers and unmounts)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None

    def load(self, image: str) -> None:
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        assert save.stdout is not None
        loaded = subprocess.run(["docker", "-H", self.host, "load", "-q"], stdin=save.stdout, capture_output=True, timeout=300)
        save.stdout.close()
        assert save.wait(timeout=300) == 0 and loaded.returncode == 0, loaded.stderr


@pytest.fixture
def private_engine(docker_client: docker.DockerClient) -> Iterator[PrivateEngine]:
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is not installed, but a Docker engine is reachable: cannot start a private one")
    root = Path(tempfile.mkdtemp(prefix="crpd-", dir="/tmp"))  # short: a unix socket path has a 108-byte limit
    engine = PrivateEngine(root)
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()
        # Whatever a killed daemon left mounted under its roots must go before the files do.
        subprocess.run(["bash", "-c", f"grep -o ' {root}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"], check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_engine_stopped_and_started_under_a_running_server(private_engine: PrivateEngine, sandbox_image: str) -> None:
    """Health goes NOT_SERVING while the engine is down (no sandbox alive); a group sent then
    waits for a sandbox, and once none has been alive for --outage-timeout-s it is answered
    SANDBOX_ERROR (masked, counted), never a verdict made up from the fault. When the engine is
    back the pool rebuilds itself (before the fix in `SandboxPool._replace` it stayed empty for
    good), health says SERVING again and requests are scored right."""
    private_engine.load(sandbox_image)
    server = ServerProcess(sandbox_image, "--outage-timeout-s", "3", env={"DOCKER_HOST": private_engine.host})
    try:
        with RewardClient(server.target, retry_timeout_s=5.0, timeout_s=120.0) as client:
            codes, expected = group(0)
            assert client.health() == "SERVING"
            assert_correct(client.score(make_request(ADD, codes)), expected)
            assert server.metrics()["codereward_sandbox_outage"] == 0

            private_engine.stop()
            wait_for(lambda: client.health() == "NOT_SERVING", 30, what="health NOT_SERVING with the engine down")
            codes, _ = group(1)
            masked = client.score(make_request(ADD, codes))  # waits out the outage timeout
            assert [r.verdict for r in masked.results] == [Verdict.SANDBOX_ERROR] * 4, masked
            assert masked.rewards == [None] * 4 and all(r.masked for r in masked.results)
            metrics = server.metrics()
            assert metrics["codereward_sandbox_outage"] == 1
            assert metrics["codereward_sandbox_errors_total"] == 4
            assert metrics.get('codereward_programs_total{language="python",verdict="FAILED"}', 0) == 2  # group 0's two only

            private_engine.start()
            wait_for(lambda: client.health() == "SERVING", 60, what="health SERVING once the engine is back")
            codes, expected = group(2)
            assert_correct(client.score(make_request(ADD, codes)), expected)
            wait_for(lambda: server.metrics().get('codereward_sandboxes{state="idle"}', 0) == 2, 30, what="the pool back to full size")
            assert server.metrics()["codereward_sandbox_outage"] == 0
        assert server.stop() == 0
    finally:
        server.stop()
