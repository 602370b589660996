"""Sandbox throughput and overhead on HumanEval's 164 canonical solutions.

Everything is measured in this one run, on this machine, so the ratios mean something on a
noisy shared host:
  in-process    all 164 programs exec'd in this process, no isolation (the programs' own time)
  python3 -c    one fresh `python3 -c` subprocess per program, no isolation
  docker run    one hardened `docker run --rm` per program (a subset, it is slow)
  pool          our warm pool (one container per core), one job per program

Prints programs/s for each, the pool's ratio to the baselines, its median per-program
overhead over the program's own run time (sequential, one job in flight), the pool's
start-up time, and checks every verdict (all canonical PASSED, all `return None` stubs not).

    python bench/bench_sandbox.py [--rounds 3] [--docker-run-sample 24] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandboxes.config import SandboxConfig  # noqa: E402
from sandboxes.container import container_options  # noqa: E402
from sandboxes.datasets import HumanEvalTask, humaneval_tasks  # noqa: E402
from sandboxes.pool import SandboxPool  # noqa: E402
from sandboxes.types import Verdict  # noqa: E402


def script(task: HumanEvalTask) -> str:
    test = task.problem.tests[0]
    return task.canonical_program + "\n" + test.code  # type: ignore[union-attr]


def in_process_times(tasks: list[HumanEvalTask]) -> list[float]:
    times = []
    for task in tasks:
        code = compile(script(task), task.problem.id, "exec")
        start = time.perf_counter()
        exec(code, {"__name__": "solution"})
        times.append(time.perf_counter() - start)
    return times


def python_c_rate(tasks: list[HumanEvalTask], parallel: int) -> float:
    def one(task: HumanEvalTask) -> None:
        subprocess.run([sys.executable, "-c", script(task)], check=True, capture_output=True, timeout=60)

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(one, tasks))
    return len(tasks) / (time.perf_counter() - start)


def docker_run_rate(tasks: list[HumanEvalTask], image: str, parallel: int) -> float:
    client = docker.from_env()
    options = container_options(SandboxConfig(image=image), image)
    for key in ("detach", "stdin_open", "labels", "log_config", "auto_remove"):
        options.pop(key)

    def one(task: HumanEvalTask) -> None:
        client.containers.run(entrypoint=["python3", "-c", script(task)], remove=True, **options)

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(one, tasks))
    return len(tasks) / (time.perf_counter() - start)


async def pool_measurements(tasks: list[HumanEvalTask], config: SandboxConfig, rounds: int) -> dict[str, object]:
    began = time.perf_counter()
    async with SandboxPool(config) as pool:
        ready_s = time.perf_counter() - began
        rates = []
        for _ in range(rounds):
            start = time.perf_counter()
            results = await asyncio.gather(*(pool.run(t.problem, t.canonical_program) for t in tasks))
            rates.append(len(tasks) / (time.perf_counter() - start))
            bad = [t.problem.id for t, r in zip(tasks, results) if r.verdict is not Verdict.PASSED]
            assert not bad, f"canonical solutions failed: {bad}"
        stubs = await asyncio.gather(*(pool.run(t.problem, t.stub_program) for t in tasks))
        cheats = [t.problem.id for t, r in zip(tasks, stubs) if r.verdict is Verdict.PASSED]
        assert not cheats, f"stubs passed: {cheats}"
        latencies = []
        for task in tasks:
            start = time.perf_counter()
            await pool.run(task.problem, task.canonical_program)
            latencies.append(time.perf_counter() - start)
    return {"ready_s": ready_s, "rates": rates, "latencies": latencies}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="pool rounds over all 164 programs (median reported)")
    parser.add_argument("--docker-run-sample", type=int, default=24, help="programs for the docker-run baseline (0 = skip)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runtime", default="runc", help="OCI runtime for the pool (runc or runsc)")
    parser.add_argument(
        "--baseline-parallel", type=int, default=1, help="baseline processes at once (default 1, as DESIGN.md measured them)"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    tasks = humaneval_tasks()
    config = SandboxConfig(workers=args.workers, runtime=args.runtime)
    own = in_process_times(tasks)
    pool = asyncio.run(pool_measurements(tasks, config, args.rounds))
    python_c = python_c_rate(tasks, args.baseline_parallel)
    docker_run = (
        docker_run_rate(tasks[: args.docker_run_sample], config.image or pool_image(), args.baseline_parallel)
        if args.docker_run_sample
        else float("nan")
    )

    rate = statistics.median(pool["rates"])  # type: ignore[arg-type]
    latencies: list[float] = pool["latencies"]  # type: ignore[assignment]
    overhead_ms = statistics.median((lat - t) * 1e3 for lat, t in zip(latencies, own))
    rows = [
        ("in-process (no isolation)", len(tasks) / sum(own)),
        (f"python3 -c subprocess per program, {args.baseline_parallel} at a time", python_c),
        (f"docker run per program, {args.baseline_parallel} at a time ({args.docker_run_sample} programs)", docker_run),
        (f"warm pool, {args.workers} containers ({args.runtime})", rate),
    ]
    print(f"HumanEval canonical solutions: {len(tasks)} programs, all PASSED; all {len(tasks)} `return None` stubs failed")
    print(f"{'method':<55} {'programs/s':>11}")
    for name, value in rows:
        print(f"{name:<55} {value:>11.1f}")
    print(f"pool / python3 -c: {rate / python_c:.1f}x   pool / docker run: {rate / docker_run:.1f}x")
    print(f"pool rounds (programs/s): {', '.join(f'{r:.0f}' for r in pool['rates'])}")  # type: ignore[union-attr]
    print(
        f"sequential latency: median {statistics.median(latencies) * 1e3:.2f} ms, p99 {sorted(latencies)[int(0.99 * len(latencies))] * 1e3:.2f} ms"
    )
    print(f"median overhead over the program's own run time: {overhead_ms:.2f} ms")
    print(f"pool of {args.workers} ready in {pool['ready_s']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "overhead_ms": overhead_ms, **pool}, indent=1))
    return 0


def pool_image() -> str:
    from sandboxes.image import image_tag

    return image_tag()


if __name__ == "__main__":
    sys.exit(main())
