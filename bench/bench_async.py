"""Synchronous against asynchronous GRPO (async_sampling, max_staleness = 1): the default model
(SmolLM2-135M-Instruct), HF sampling, one local reward server, one process.

    python bench/bench_async.py [--steps 5] [--prompts 2] [--group 4] [--tokens 64]

Each run is `grpo-train`, one after the other; the first step warms up and is left out. It
prints the median seconds of a step as the trainer's thread sees it and its parts:
`sampling_wait` (waiting for the step's groups: the whole generation when synchronous, what
the thread has not finished when asynchronous), `update`, and `weight_sync` (the copy of the
weights into the sampling thread's staging copy), and the thread's own generation time; then
the run's wall time over its steps. On a machine of a few CPU cores the sampling thread and
the update share the cores, so hiding generation behind the update buys less than it does
on a GPU whose sampler has its own device.
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
PARTS = ("time/step", "time/sampling_wait", "time/generation", "time/update", "time/weight_sync")


def run(asynchronous: bool, args: argparse.Namespace, work: Path) -> dict[str, float]:
    out = work / ("async" if asynchronous else "sync")
    command = [
        str(Path(sys.executable).parent / "grpo-train"), "--no-progress",
        "--set", f'output_dir="{out}"', "--set", 'dataset="basics"', "--set", 'sampler="hf"', "--set", 'eval_dataset=""',
        "--set", f"max_steps={args.steps}", "--set", f"prompts_per_step={args.prompts}", "--set", f"group_size={args.group}",
        "--set", f"max_completion_tokens={args.tokens}", "--set", "save_every=0", "--set", "tensorboard=false",
        "--set", "local_server_workers=1", "--set", "seed=0",
    ]
    if asynchronous:
        command += ["--set", "async_sampling=true", "--set", "max_staleness=1"]
    began = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - began
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:]  # the first step warms up
    parts = {key: statistics.median(r[key] for r in records) for key in PARTS}
    return {**parts, "steps_s": sum(r["time/step"] for r in records), "wall": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64, help="max new tokens")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-async-") as tmp:
        results = {name: run(name == "async", args, Path(tmp)) for name in ("sync", "async")}
    print(f"{args.prompts} prompts x G={args.group}, <= {args.tokens} new tokens, {os.cpu_count()} cores, median of steps 2-{args.steps}")
    print(f"{'mode':>5} {'s/step':>7} {'sampling_wait':>14} {'generation':>11} {'update':>7} {'weight_sync':>12} {'steps 2-N s':>12} {'wall s':>7}")
    for name, r in results.items():
        print(
            f"{name:>5} {r['time/step']:>7.2f} {r['time/sampling_wait']:>14.2f} {r['time/generation']:>11.2f} "
            f"{r['time/update']:>7.2f} {r['time/weight_sync']:>12.2f} {r['steps_s']:>12.1f} {r['wall']:>7.1f}"
        )
    print(f"async / sync, s/step: {results['async']['time/step'] / results['sync']['time/step']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
