"""One client, several reward servers: a single ScoreStream (the baseline, in the same run)
against `SpreadSession` (one stream per server, each group to the least loaded).

Two `reward-server` processes on loopback, `--workers` sandboxes each. The programs sleep
(`--sleep-s`) instead of computing, so that this 2-core machine's CPUs are not what limits the
servers: what is measured is how the client spreads its groups. Each variant streams the same
number of groups (distinct programs: no dedup) with all of them in flight, as a trainer does,
and reports groups/s and how many programs each server ran (from its Prometheus endpoint).

    python bench/bench_spread.py [--groups 40] [--group-size 4] [--workers 1] [--sleep-s 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reward_api.client import AsyncRewardClient, SpreadSession  # noqa: E402
from reward_api.listening import find_listening  # noqa: E402
from reward_api.types import assert_test, make_problem, make_request  # noqa: E402

BIN = Path(sys.executable).parent
ADD = make_problem("add", [assert_test("assert add(1, 2) == 3")], entry_point="add")


class Server:
    def __init__(self, workers: int) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "reward-server"), "--port", "0", "--metrics-port", "0", "--workers", str(workers), "--log-level", "WARNING"],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            listening = find_listening(line)
            if listening:
                self.target, self.metrics_port = f"127.0.0.1:{listening.port}", listening.metrics_port or 0
                return
        raise SystemExit(f"reward-server did not start (exit {self.proc.wait()})")

    def programs(self) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("codereward_programs_total{"))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def requests(tag: str, groups: int, size: int, sleep_s: float) -> list:  # type: ignore[type-arg]
    return [
        make_request(
            ADD,
            [f"import time\ntime.sleep({sleep_s})\ndef add(a, b):\n    return a + b  # {tag} {g} {k}\n" for k in range(size)],
            request_id=f"{tag}-{g}",
        )
        for g in range(groups)
    ]


async def one_stream(targets: list[str], batch: list) -> float:  # type: ignore[type-arg]
    async with AsyncRewardClient(targets) as client, client.session() as session:
        started = time.perf_counter()
        await asyncio.gather(*(session.submit(r) for r in batch))
        return time.perf_counter() - started


async def spread(targets: list[str], batch: list) -> float:  # type: ignore[type-arg]
    async with SpreadSession(targets) as session:
        started = time.perf_counter()
        await asyncio.gather(*(session.submit(r) for r in batch))
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="sandboxes per server")
    parser.add_argument("--sleep-s", type=float, default=0.2, help="what each program does: sleep this long")
    args = parser.parse_args()
    servers = [Server(args.workers), Server(args.workers)]
    try:
        targets = [s.target for s in servers]
        asyncio.run(spread(targets, requests("warm-up", 4, args.group_size, 0.0)))
        rates = {}
        for name, run in (("one ScoreStream", one_stream), ("SpreadSession", spread)):
            before = [s.programs() for s in servers]
            seconds = asyncio.run(run(targets, requests(name, args.groups, args.group_size, args.sleep_s)))
            ran = [int(s.programs() - b) for s, b in zip(servers, before)]
            rates[name] = args.groups / seconds
            print(f"{name:16s} {args.groups} groups in {seconds:6.2f} s = {rates[name]:6.2f} groups/s; programs per server {ran}")
        print(f"SpreadSession / one ScoreStream: {rates['SpreadSession'] / rates['one ScoreStream']:.2f}x")
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
