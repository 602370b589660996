"""Step time of data-parallel GRPO: 1 rank against 2 ranks (gloo, CPU) on the same global batch,
with DDP and with FSDP2 (`parallelism = "fsdp"`), the default model (SmolLM2-135M-Instruct), HF
sampling, one local reward server.

    python bench/bench_ddp.py [--steps 4] [--prompts 4] [--group 4] [--tokens 64]

Each run is `grpo-train` (2 ranks: `--nproc 2`), one after the other; the first step is warm-up
and left out; the script prints the median seconds per step and its parts (generation,
reward wait, update) from rank 0's metrics.jsonl. With 1 rank the process gets every core
(torch's threads); with 2 ranks each gets its share (OMP_NUM_THREADS = cores / ranks), so on a
machine of a few CPU cores this measures the overhead of the collectives more than a gain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(ranks: int, parallelism: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    out = work / f"ranks-{ranks}-{parallelism}"
    threads = max(1, (os.cpu_count() or 1) // ranks)
    command = [
        str(Path(sys.executable).parent / "grpo-train"), "--nproc", str(ranks), "--no-progress",
        "--set", f'output_dir="{out}"', "--set", 'dataset="basics"', "--set", 'sampler="hf"', "--set", 'eval_dataset=""',
        "--set", f"max_steps={args.steps}", "--set", f"prompts_per_step={args.prompts}", "--set", f"group_size={args.group}",
        "--set", f"max_completion_tokens={args.tokens}", "--set", "save_every=0", "--set", "tensorboard=false",
        "--set", "local_server_workers=1", "--set", "seed=0", "--set", f'parallelism="{parallelism}"',
    ]
    began = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, cwd=ROOT)
    wall = time.perf_counter() - began
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:]  # the first step warms up
    keys = ("time/step", "time/generation", "time/reward_wait", "time/update", "time/weight_sync")
    parts = {key: statistics.median(r[key] for r in records) for key in keys}
    return {**parts, "wall": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step: the global batch")
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64, help="max new tokens")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        results = {(ranks, mode): run(ranks, mode, args, Path(tmp)) for ranks, mode in ((1, "ddp"), (2, "ddp"), (2, "fsdp"))}
    print(f"global batch {args.prompts} prompts x G={args.group}, <= {args.tokens} new tokens, {os.cpu_count()} cores, median of steps 2-{args.steps}")
    print(f"{'ranks':>5} {'mode':>5} {'s/step':>8} {'generation':>11} {'reward wait':>12} {'update':>8} {'weight copy':>12}")
    for (ranks, mode), r in results.items():
        print(
            f"{ranks:>5} {mode if ranks > 1 else '-':>5} {r['time/step']:>8.2f} {r['time/generation']:>11.2f} "
            f"{r['time/reward_wait']:>12.2f} {r['time/update']:>8.2f} {r['time/weight_sync']:>12.2f}"
        )
    one = results[(1, "ddp")]["time/step"]
    print(f"2 ranks / 1 rank, s/step: DDP {results[(2, 'ddp')]['time/step'] / one:.2f}, FSDP {results[(2, 'fsdp')]['time/step'] / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
