"""The reward service end to end: a `reward-server` process, clients over gRPC on loopback.

Measured in one run, on this machine:
  python3 -c    one fresh subprocess per HumanEval program, one at a time (no isolation):
                the baseline, as DESIGN.md measured it
  gRPC stream   HumanEval's 164 canonical programs, one group each, over one ScoreStream
  CLI           the same 164 through `reward-client score` (convert + score, one command)
  server CPU    the reward-server process's own CPU time per program during the stream run
  latency       one group of 8 distinct trivial completions with 3 asserts each (as one test,
                and as three tests: a process each), one client, one request in flight:
                p50 / p99 over --latency-requests requests

    python bench/bench_server.py [--workers 2] [--latency-requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reward_api.client import AsyncRewardClient  # noqa: E402
from reward_api.datasets import humaneval_requests  # noqa: E402
from reward_api.listening import find_listening  # noqa: E402
from reward_api.types import assert_test, make_problem, make_request  # noqa: E402

BIN = Path(sys.executable).parent


def start_server(workers: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [str(BIN / "reward-server"), "--port", "0", "--metrics-port", "0", "--workers", str(workers), "--log-level", "WARNING"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        listening = find_listening(line)
        if listening:
            return proc, listening.port
    raise SystemExit(f"reward-server did not start (exit {proc.wait()})")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def python_c_rate(programs: list[str], parallel: int) -> float:
    def one(code: str) -> None:
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(one, programs))
    return len(programs) / (time.perf_counter() - start)


async def stream_rate(target: str) -> float:
    requests = list(humaneval_requests())
    async with AsyncRewardClient(target) as client, client.session() as session:
        await asyncio.gather(*(session.submit(r) for r in requests[:20]))  # warm-up
        start = time.perf_counter()
        for r in requests:
            r.request_id += "-timed"
        groups = await asyncio.gather(*(session.submit(r) for r in requests))
        elapsed = time.perf_counter() - start
    assert all(g.results[0].reward == 1.0 for g in groups), "a canonical solution failed"
    return len(requests) / elapsed


ASSERTS = ("assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4")


async def latencies(target: str, count: int, separate_tests: bool) -> list[float]:
    tests = [assert_test(a) for a in ASSERTS] if separate_tests else [assert_test("\n".join(ASSERTS))]
    problem = make_problem("add", tests)
    codes = [f"def add(a, b):\n    return a + b  # variant {i}\n" for i in range(8)]
    times = []
    async with AsyncRewardClient(target) as client:
        for i in range(count + 20):
            start = time.perf_counter()
            group = await client.score(make_request(problem, codes))
            if i >= 20:
                times.append(time.perf_counter() - start)
            assert group.rewards == [1.0] * 8
    return times


def cli_rate(target: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        requests, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        subprocess.run([str(BIN / "reward-client"), "convert", "humaneval", "-o", str(requests)], check=True, capture_output=True)
        start = time.perf_counter()
        subprocess.run(
            [str(BIN / "reward-client"), "score", "--target", target, str(requests), "-o", str(out), "--quiet"],
            check=True,
            capture_output=True,
        )
        return 164 / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--latency-requests", type=int, default=300)
    args = parser.parse_args()
    proc, port = start_server(args.workers)
    target = f"127.0.0.1:{port}"
    try:
        programs = [r.completions[0].code + "\n" + r.problem.tests[0].assert_code for r in humaneval_requests()]
        baseline = python_c_rate(programs, 1)  # as DESIGN.md measured it: one at a time
        cpu_before = cpu_seconds(proc.pid)
        stream = asyncio.run(stream_rate(target))
        server_cpu_ms = (cpu_seconds(proc.pid) - cpu_before) * 1e3 / (164 + 20)
        cli = cli_rate(target)
        cpu_before = cpu_seconds(proc.pid)
        one_test = sorted(asyncio.run(latencies(target, args.latency_requests, separate_tests=False)))
        group_cpu_ms = (cpu_seconds(proc.pid) - cpu_before) * 1e3 / ((args.latency_requests + 20) * 8)
        three_tests = sorted(asyncio.run(latencies(target, args.latency_requests, separate_tests=True)))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(f"{'method':<48} {'programs/s':>11}")
    print(f"{'python3 -c subprocess per program, sequential':<48} {baseline:>11.1f}")
    print(f"{'gRPC ScoreStream, 164 groups':<48} {stream:>11.1f}   ({stream / baseline:.1f}x python3 -c)")
    print(f"{'reward-client score (process start included)':<48} {cli:>11.1f}   ({cli / baseline:.1f}x python3 -c)")
    print(
        f"reward-server's own CPU per program (gRPC, validation, queueing, sandbox I/O): {server_cpu_ms:.2f} ms with one program per request, {group_cpu_ms:.2f} ms in groups of 8"
    )
    for label, times in (("3 asserts in one test", one_test), ("3 asserts as 3 tests", three_tests)):
        p50, p99 = statistics.median(times) * 1e3, times[int(0.99 * len(times))] * 1e3
        print(f"group of 8 trivial completions, {label}, one client: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(times)} requests)")
    print(f"reward-server exited with {proc.returncode} after SIGTERM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
