"""Scale-out: two real `reward-server` processes on two loopback ports, one client spreading
500 programs over both (gRPC round_robin); one server is SIGKILLed midway and its groups move
to the other, with no program lost and every verdict right. (A ScoreSession whose server is
killed is tests/test_faults.py's subject.)"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from reward_api.client import AsyncRewardClient
from reward_api.types import GroupScore, Verdict, assert_test, call_test, make_problem
from sandboxes.config import CONTAINER_LABEL
from sandboxes.container import sweep_orphans

pytestmark = pytest.mark.docker

BIN = Path(sys.executable).parent
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


class ServerProcess:
    """One `reward-server` process; its log goes to a file (a pipe nobody reads would fill)."""

    def __init__(self, image: str, log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "reward-server"), "--port", "0", "--metrics-port", "0", "--workers", "2", "--image", image, "--drain-s", "0.2", "--grace-s", "5"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.port = self.metrics_port = 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            match = re.search(r"listening on [\d.]+:(\d+), metrics on :(\d+)", log_path.read_text(errors="replace"))
            if match:
                self.port, self.metrics_port = int(match.group(1)), int(match.group(2))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"reward-server did not start:\n{log_path.read_text(errors='replace')[-3000:]}")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def programs_served(self) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        return sum(float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith("codereward_programs_total{"))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def two_servers(sandbox_image: str, docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    servers: list[ServerProcess] = []
    try:
        servers.append(ServerProcess(sandbox_image, tmp_path / "a.log"))
        servers.append(ServerProcess(sandbox_image, tmp_path / "b.log"))
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
    finished = 0
    async with AsyncRewardClient([a.target, b.target], retry_timeout_s=60.0) as client:

        async def one(index: int) -> None:
            nonlocal finished
            async with slots:
                results[index] = await client.score_group(ADD, group_codes(index))
            finished += 1
            if finished >= kill_after:
                done.set()

        tasks = [asyncio.create_task(one(i)) for i in range(GROUPS)]
        await done.wait()
        served_by_a = await asyncio.to_thread(a.programs_served)
        a.kill()  # SIGKILL with groups in flight on it
        killed_at = finished
        await asyncio.gather(*tasks)
    served_by_b = await asyncio.to_thread(b.programs_served)
    check(results)
    assert killed_at < GROUPS, "the kill came after the run: nothing was in flight"
    assert served_by_a > 0 and served_by_b > 0, (served_by_a, served_by_b)
    assert served_by_a + served_by_b >= GROUPS * GROUP_SIZE  # b ran everything a did not finish

