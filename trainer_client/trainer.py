"""The GRPO training loop.

One step: take `prompts_per_step` problems; sample G completions each in one batched
`generate`, sending each group to the reward server the moment its last completion ends
(scoring overlaps the rest of the generation); wait for the groups still being scored;
compute group-relative advantages; then μ optimizer updates over the completions that carry
a signal (masked rewards and zero-variance groups are dropped before any forward pass: they
would only cost time). `update.py` has the update, `grpo.py` the math and its sources.

Departures from TRL's GRPOTrainer, on purpose (and one more in `update.py`):
- Sampling runs with the KV cache even with gradient checkpointing on (the model is put in
  eval mode for generation; checkpointing only acts in training mode).
- The LM head runs on completion positions only (`logits_to_keep`), see `policy.py`.

Under `torchrun --nproc-per-node N` each rank samples and scores its share of every step's
prompts (`distributed.py`); the update is the one-process update on the global batch; rank 0
alone logs, evaluates, plots and checkpoints, and its metrics are the global batch's.

With `async_sampling`, `_sample_step` runs for the next steps in a thread, from a copy of the
policy at most `max_staleness` optimizer steps old (`asynchronous.py`); `step` takes its groups
from there instead of sampling them itself.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import json
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from reward_api.client import ClientOptions
from reward_api.types import GroupScore

from . import checkpoint as ckpt
from . import difficulty
from .asynchronous import AheadSampler
from .config import TrainConfig
from .data import TrainProblem, load_problems
from .distributed import World
from .evaluate import EvalResult, evaluate
from .grpo import group_advantages
from .logs import MetricsLog, plot_run
from .model import load_model, resolve_model
from .policy import Batch, make_batch
from .report import LearningReport, learning_report
from .rewards import LocalRewardServer, RewardWorker, score_request
from .sampling import Completion, HFSampler, Sampler
from .update import NO_UPDATE, UpdateResult, grpo_update
from .vllm_sampler import vllm_available


@dataclass
class RunSummary:
    steps: int
    output_dir: Path
    eval_history: list[tuple[int, float]] = field(default_factory=list)
    """(step, held-out greedy pass@1)."""
    last_metrics: dict[str, Any] = field(default_factory=dict)
    plot: Path | None = None
    report: LearningReport | None = None
    """First vs last quarter's training reward, held-out pass@1 before vs after (with CIs)."""


DEFAULT_BAND = (0.1, 0.9)
"""The band `grpo-train --estimate-difficulty` reports when the config names none."""


def pick_device(name: str) -> str:
    """`auto`: CUDA when there is a GPU. Under torchrun, `cuda` is this rank's GPU (LOCAL_RANK)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(name)
    return name


def lr_lambda(config: TrainConfig, total_updates: int) -> Any:
    warmup = config.warmup_steps * config.updates_per_batch

    def factor(update: int) -> float:
        if warmup and update < warmup:
            return (update + 1) / warmup
        if config.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, (update - warmup) / max(1, total_updates - warmup))
        if config.lr_schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def problem_at(position: int, count: int, seed: int) -> int:
    """The training order: each epoch a fresh permutation drawn from (seed, epoch), so the
    problem at any position is known without replaying the run (exact resume)."""
    epoch, offset = divmod(position, count)
    order = list(range(count))
    random.Random(f"{seed}-{epoch}").shuffle(order)
    return order[offset]


class GRPOTrainer:
    def __init__(self, config: TrainConfig, *, sampler: Sampler | None = None, progress: bool = True, world: World | None = None) -> None:
        self.config = config
        self.device = pick_device(config.device)
        self.world = world or World.from_env(self.device)
        self.progress = progress and sys.stderr.isatty() and self.world.main
        self.state = ckpt.TrainState()
        self._custom_sampler = sampler
        self.worker: RewardWorker | None = None
        self.log: MetricsLog | None = None
        self.num_tokens = 0
        self.difficulty: difficulty.DifficultyReport | None = None
        self.ahead: AheadSampler[_Sampled] | None = None
        self._position = 0
        """Where sampling is in the training order (ahead of state.data_position with async_sampling)."""

    # -- setup -------------------------------------------------------------------------------

    def _setup(self, stack: contextlib.ExitStack, *, training: bool = True) -> None:
        """Model, sampler, problems and reward servers; with `training`, also the optimizer,
        the resumed state, the difficulty filter and the metrics log (a bare estimate of
        difficulty must not touch a run's files)."""
        config = self.config
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        resume = self._resume_path() if training else None
        self.model, self.tokenizer = load_model(str(resume) if resume else config.model, device=self.device)
        if self.world.rank:  # each rank its own sampling stream (rank 0's is the one-process stream)
            torch.manual_seed(config.seed + 7919 * self.world.rank)
        if config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model.train()
        # What the update runs through: the model, DDP over the ranks (rank 0's weights), or with
        # FSDP a sharded copy; self.model then stays whole, for sampling, evaluation and saving,
        # and takes the trained weights after every step (in `step`).
        self.fsdp = config.parallelism == "fsdp" and self.world.size > 1
        self.trained = self.world.wrap(copy.deepcopy(self.model) if self.fsdp else self.model, config.parallelism)
        if self.fsdp:  # the whole copy starts from the weights the shards were cut from: rank 0's
            self.model.requires_grad_(False).load_state_dict(self.world.full_weights(self.trained))
        self.ref_model = None
        if training and config.beta > 0:
            self.ref_model, _ = load_model(config.model, device=self.device)
            self.ref_model.eval().requires_grad_(False)
        if training:
            self.optimizer = torch.optim.AdamW(self.trained.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
            total_updates = config.max_steps * config.updates_per_batch
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(config, total_updates))
        if resume:
            self.state, _, optimizer_state = ckpt.load_trainer_state(resume, scheduler=self.scheduler)
            self.world.load_optimizer_state(self.trained, self.optimizer, optimizer_state)
            print(f"grpo-train: resumed from {resume} at step {self.state.step}", file=sys.stderr)
        self.sampler: Sampler = self._custom_sampler or self._make_sampler(resume)
        self.uses_vllm = hasattr(self.sampler, "sync_weights")
        eval_tokens = config.eval_max_completion_tokens or config.max_completion_tokens
        self.eval_sampler = HFSampler(self.model, self.tokenizer, max_new_tokens=eval_tokens)
        self.problems = load_problems(config.dataset, per_assert=config.reward_mode == "FRACTION")
        if config.train_limit and config.train_limit < len(self.problems):
            self.problems = random.Random(f"{config.seed}-train-limit").sample(self.problems, config.train_limit)
        self.eval_problems = load_problems(config.eval_dataset) if config.eval_dataset and training and self.world.main else []
        if config.eval_limit:
            self.eval_problems = self.eval_problems[: config.eval_limit]
        targets = list(config.reward_servers)
        if not targets and self.world.main:
            server = LocalRewardServer(config.output_dir / "reward-server.log", workers=config.local_server_workers or None)
            print("grpo-train: no reward_servers given; starting a local reward server...", file=sys.stderr, flush=True)
            targets = [stack.enter_context(server).target]
        if not config.reward_servers:  # rank 0's local server, for every rank
            targets = self.world.broadcast(targets)
            stack.callback(self.world.barrier)  # it stays up until every rank is done with it
        token = config.reward_token or os.environ.get("CODEREWARD_TOKEN")
        options = ClientOptions(token=token, retry_timeout_s=config.reward_retry_timeout_s)
        self.worker = stack.enter_context(RewardWorker(targets, options))
        if not training:
            return
        if config.difficulty_band:  # estimated on rank 0, which alone may write the cache
            self.problems, self.difficulty = (
                self._difficulty_filter(resumed=resume is not None) if self.world.main else (self.problems, None)
            )
            kept = set(self.world.broadcast([p.id for p in self.problems]))
            self.problems = [p for p in self.problems if p.id in kept]
        self._position = self.state.data_position
        if config.async_sampling:
            self._start_ahead(stack)
        if not self.world.main:
            return
        self.log = stack.enter_context(
            MetricsLog(config.output_dir, tensorboard=config.tensorboard, resume_step=self.state.step if resume else None)
        )
        (config.output_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2, default=str))

    # -- difficulty filtering ------------------------------------------------------------------

    def estimate_difficulty(self) -> difficulty.DifficultyReport:
        """`grpo-train --estimate-difficulty`: each training problem's pass rate under the
        starting model (from the cache when there), and how many problems fall in each band
        (difficulty_band, else [0.1, 0.9]). Writes nothing but the cache."""
        with contextlib.ExitStack() as stack:
            self._setup(stack, training=False)
            _, report = self._difficulty_filter(resumed=False)
        return report

    def _difficulty_filter(self, *, resumed: bool) -> tuple[list[TrainProblem], difficulty.DifficultyReport]:
        config = self.config
        assert self.worker is not None
        samples = difficulty.samples_per_problem(config)
        key = difficulty.cache_key(config, resolve_model(config.model), self.problems)
        path = difficulty.cache_path(config, key)
        outcomes = difficulty.load_estimate(path, key)
        cached = outcomes is not None
        if outcomes is None:
            if resumed:
                raise difficulty.DifficultyFilterError(
                    f"difficulty_band is set but the estimate for the starting model is not in {path}: a resumed run cannot "
                    "estimate it (its weights have moved on). Run `grpo-train --estimate-difficulty` with the same config first."
                )
            print(
                f"grpo-train: estimating the difficulty of {len(self.problems)} problems ({samples} samples each)...",
                file=sys.stderr,
                flush=True,
            )
            bar = _progress(len(self.problems), 0, self.progress, desc="difficulty")
            with torch.random.fork_rng():  # the training's random stream stays as without the estimate
                torch.manual_seed(config.seed)
                result = evaluate(
                    self.sampler,
                    self.worker,
                    self.problems,
                    batch_size=config.prompts_per_step * config.group_size,
                    samples=samples,
                    mode=config.reward_mode,
                    progress=bar,
                )
            bar.close()
            difficulty.save_estimate(path, key, result.outcomes)
            outcomes = {o.id: o for o in result.outcomes}
        band = (config.difficulty_band[0], config.difficulty_band[1]) if config.difficulty_band else DEFAULT_BAND
        kept, report = difficulty.select(self.problems, outcomes, band, samples)
        report = replace(report, cache=path, cached=cached)
        for line in report.lines():
            print(f"grpo-train: {line}", file=sys.stderr)
        if not kept:
            raise difficulty.DifficultyFilterError(
                f"difficulty_band={list(band)} leaves no training problem: widen it (the counts above say where they are)"
            )
        return kept, report

    def _make_sampler(self, resume: Path | None) -> Sampler:
        config = self.config
        if config.sampler == "vllm" or (config.sampler == "auto" and vllm_available() and not config.async_sampling):
            from .vllm_sampler import VLLMSampler

            return VLLMSampler(
                resolve_model(str(resume) if resume else config.model),
                self.tokenizer,
                max_new_tokens=config.max_completion_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                seed=config.seed,
                dtype="float32" if self.device == "cpu" else "bfloat16",  # the trainer's own dtype (model.load_model)
                gpu_memory_utilization=config.vllm_gpu_memory_utilization,
                max_model_len=config.vllm_max_model_len,
                enforce_eager=config.vllm_enforce_eager,
            )
        return HFSampler(
            self.model, self.tokenizer, max_new_tokens=config.max_completion_tokens, temperature=config.temperature, top_p=config.top_p
        )

    def _resume_path(self) -> Path | None:
        spec = self.config.resume_from
        if not spec:
            return None
        path = ckpt.latest_checkpoint(self.config.output_dir) if spec == "latest" else Path(spec)
        if path is None:
            print(f"grpo-train: resume_from=latest but {self.config.output_dir}/checkpoints has none; starting fresh", file=sys.stderr)
            return None
        if not (path / ckpt.STATE_FILE).exists():
            raise FileNotFoundError(f"resume_from={spec!r}: {path} is not a checkpoint (no {ckpt.STATE_FILE})")
        return path

    # -- the run -----------------------------------------------------------------------------

    def train(self) -> RunSummary:
        config = self.config
        summary = RunSummary(steps=0, output_dir=config.output_dir)
        with contextlib.ExitStack() as stack:
            stack.callback(self.world.close)
            self._setup(stack)
            if not self.world.main:
                while self.state.step < config.max_steps:  # the same steps, collectives and all; rank 0 writes
                    self.step()
                    self.state.step += 1
                    if self._saves(self.state.step):
                        self.save()  # its part of gathering a sharded optimizer's state
                summary.steps = self.state.step
                return summary
            assert self.log is not None
            bar = _progress(config.max_steps, self.state.step, self.progress)
            stack.callback(bar.close)
            if self.state.step == 0 and self.eval_problems:
                summary.eval_history.append((0, self._evaluate(0)))
            while self.state.step < config.max_steps:
                metrics = self.step()
                self.state.step += 1
                step = self.state.step
                last = step == config.max_steps
                if self.eval_problems and (last or (config.eval_every and step % config.eval_every == 0)):
                    metrics.update(self._eval_metrics(step, summary))
                if self._saves(step):
                    self.save()
                if self.ahead is not None:  # after the checkpoint: its random state is the one before the next step's sampling
                    metrics["time/weight_sync"] = self.ahead.publish(step)
                self.log.log(step, metrics)
                summary.last_metrics = metrics
                bar.update(1)
                reward = "-" if metrics["reward"] is None else f"{metrics['reward']:.2f}"
                bar.set_postfix(reward=reward, step_s=f"{metrics['time/step']:.1f}")
                if not self.progress:
                    print(
                        f"grpo-train: step {step}/{config.max_steps} reward {reward} zero-std {metrics['frac_reward_zero_std']:.2f} "
                        + (
                            f"kept {metrics['dynamic_sampling/groups_kept']}/{metrics['dynamic_sampling/groups_sampled']} groups "
                            if config.dynamic_sampling
                            else ""
                        )
                        + f"loss {metrics['loss']:.4f} {metrics['time/step']:.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )
            summary.steps = self.state.step
        summary.report = learning_report(config.output_dir, summary.steps, seed=config.seed)
        summary.plot = plot_run(config.output_dir / "metrics.jsonl", config.output_dir / "training.png", summary.report)
        return summary

    def _eval_metrics(self, step: int, summary: RunSummary) -> dict[str, Any]:
        value = self._evaluate(step)
        summary.eval_history.append((step, value))
        return {"eval/pass@1": value, **self._last_eval.metrics()}

    def _evaluate(self, step: int) -> float:
        assert self.worker is not None and self.log is not None
        started = time.perf_counter()
        bar = _progress(len(self.eval_problems), 0, self.progress, desc=f"eval@{step}")
        sampler = self.sampler if self.uses_vllm else self.eval_sampler  # vLLM holds the current weights too
        saved_limit = sampler.max_new_tokens  # type: ignore[attr-defined]  # both samplers have it
        sampler.max_new_tokens = self.eval_sampler.max_new_tokens  # type: ignore[attr-defined]
        try:
            batch = len(self.eval_problems) if self.uses_vllm else self.config.eval_batch_size  # vLLM batches by itself
            result: EvalResult = evaluate(sampler, self.worker, self.eval_problems, batch_size=batch, progress=bar)
        finally:
            sampler.max_new_tokens = saved_limit  # type: ignore[attr-defined]
        bar.close()
        self._last_eval = result
        out = self.config.output_dir / "eval"
        out.mkdir(parents=True, exist_ok=True)
        with open(out / f"step-{step:06d}.jsonl", "w", encoding="utf-8") as f:
            for row in result.rows:
                f.write(json.dumps(row) + "\n")
        if step == 0:
            self.log.log(0, {**result.metrics(), "time/eval": time.perf_counter() - started})
        print(
            f"grpo-train: step {step}: held-out greedy pass@1 {result.passed}/{result.scored} = {result.pass_at_1:.3f}"
            + (f" ({result.masked} masked)" if result.masked else ""),
            file=sys.stderr,
            flush=True,
        )
        return result.pass_at_1

    def _saves(self, step: int) -> bool:
        return step == self.config.max_steps or bool(self.config.save_every and step % self.config.save_every == 0)

    def save(self) -> Path | None:
        """A checkpoint of this step, written by rank 0 (every rank calls this: a sharded
        optimizer's state is gathered from all of them). None on the other ranks."""
        if not self.world.main:
            if self.fsdp:
                self.world.full_optimizer_state(self.trained, self.optimizer)  # its part of rank 0's gather
            return None
        optimizer_state = self.world.full_optimizer_state(self.trained, self.optimizer)
        return ckpt.save_checkpoint(
            ckpt.checkpoint_dir(self.config.output_dir, self.state.step),
            model=self.model,
            tokenizer=self.tokenizer,
            optimizer_state=optimizer_state,
            scheduler=self.scheduler,
            state=self.state,
            config=self.config.to_dict(),
        )

    # -- one step ----------------------------------------------------------------------------

    def _next_problems(self, count: int) -> list[TrainProblem]:
        """The next `count` problems of the seeded, per-epoch shuffled order."""
        chosen = []
        for _ in range(count):
            chosen.append(self.problems[problem_at(self._position, len(self.problems), self.config.seed)])
            self._position += 1
        return chosen

    def _sample_round(self, problems: Sequence[TrainProblem], tag: str) -> _Round:
        """One group per problem, each sent to the reward server the moment it ends; returns
        once every group is scored."""
        config = self.config
        futures: dict[int, concurrent.futures.Future[GroupScore]] = {}

        def send(group: int, texts: list[str]) -> None:
            request, _ = score_request(problems[group], texts, mode=config.reward_mode, request_id=f"{tag}-group{group}")
            futures[group] = self.worker.submit(request)  # type: ignore[union-attr]  # set in _setup

        started = time.perf_counter()
        groups = self.sampler.sample(
            [p.instruction for p in problems],
            config.group_size,
            on_group_done=send,
            response_prefixes=[p.response_prefix for p in problems],
        )
        generated = time.perf_counter()
        scores = [futures[g].result() for g in range(len(groups))]  # RewardUnavailable stops the run, clearly
        rewards = torch.tensor([[math.nan if r.reward is None else r.reward for r in s.results] for s in scores], dtype=torch.float32)
        return _Round(
            [p.id for p in problems],
            groups,
            scores,
            rewards,
            generation_s=generated - started,
            reward_wait_s=time.perf_counter() - generated,
        )

    def _sample_with_signal(self, step: int) -> tuple[list[_Round], list[list[Completion]], torch.Tensor]:
        """DAPO's dynamic sampling (Yu et al. 2025, §3.2): rounds of ceil(missing × oversample)
        prompts until prompts_per_step groups have reward variance, at most max_tries rounds.
        Returns every round (all of them count in the reported reward) and the groups kept, in
        the order sampled; a round's groups with a signal beyond the missing ones are dropped,
        as verl's DAPO recipe does. With several ranks, each samples its share of a round's
        prompts and keeps its share of the missing groups; the count of groups kept is global,
        so every rank runs the same rounds."""
        config, world = self.config, self.world
        rounds: list[_Round] = []
        kept: list[list[Completion]] = []
        rows: list[torch.Tensor] = []
        kept_everywhere = 0
        while kept_everywhere < config.prompts_per_step and len(rounds) < config.dynamic_sampling_max_tries:
            missing = config.prompts_per_step - kept_everywhere
            problems = world.share(self._next_problems(math.ceil(missing * config.dynamic_sampling_oversample)))
            sampled = self._sample_round(
                problems, f"step{step}-try{len(rounds)}-rank{world.rank}" if world.size > 1 else f"step{step}-try{len(rounds)}"
            )
            rounds.append(sampled)
            with_signal = (~group_advantages(sampled.rewards, "none").zero_std).nonzero().flatten().tolist()
            for group in with_signal[: len(world.share(range(missing)))]:
                kept.append(sampled.groups[group])
                rows.append(sampled.rewards[group])
            (total,) = world.sum_floats(float(len(rows)))
            kept_everywhere = int(total)
        rewards = torch.stack(rows) if rows else torch.zeros((0, config.group_size))
        return rounds, kept, rewards

    def _start_ahead(self, stack: contextlib.ExitStack) -> None:
        """async_sampling: the thread that samples the next steps from a copy of the policy."""
        if self.world.size > 1:
            raise ValueError("async_sampling runs in one process for now; with several ranks leave it false")
        if not isinstance(self.sampler, HFSampler):
            raise ValueError(f'async_sampling needs the transformers sampler (sampler = "hf"), not {type(self.sampler).__name__}')
        behaviour = copy.deepcopy(self.model).requires_grad_(False)
        self.sampler = copy.copy(self.sampler)  # the same settings, generating from the behaviour copy
        self.sampler.model = behaviour
        self.sampler.tokenizer = copy.deepcopy(self.tokenizer)  # a fast tokenizer must not be used by two threads at once
        self.ahead = stack.enter_context(
            AheadSampler(
                self.model,
                behaviour,
                self._sample_step,
                first_step=self.state.step,
                last_step=self.config.max_steps,
                max_staleness=self.config.max_staleness,
            )
        )

    def _sample_step(self, step: int) -> _Sampled:
        """The groups of one step: every round sampled, the groups kept and their rewards."""
        config, world = self.config, self.world
        started = time.perf_counter()
        if config.dynamic_sampling:
            rounds, groups, rewards = self._sample_with_signal(step)
        else:
            tag = f"step{step}-rank{world.rank}" if world.size > 1 else f"step{step}"
            rounds = [self._sample_round(world.share(self._next_problems(config.prompts_per_step)), tag)]
            groups, rewards = rounds[0].groups, rounds[0].rewards
        return _Sampled(rounds, groups, rewards, self._position, time.perf_counter() - started)

    def step(self) -> dict[str, Any]:
        config = self.config
        assert self.worker is not None
        started = time.perf_counter()
        step = self.state.step
        world = self.world
        if self.ahead is not None:
            ahead = self.ahead.take(step)
            this, staleness = ahead.value, ahead.staleness
        else:
            this, staleness = self._sample_step(step), 0
        rounds, groups, rewards = this.rounds, this.groups, this.rewards
        self.state.data_position = this.position
        sampled = time.perf_counter()

        # What the user sees is computed over every group sampled (on every rank), not only those kept.
        every_completion = [c for r in rounds for group in r.groups for c in group]
        every_reward = torch.cat([r.rewards for r in rounds])
        shared = world.gather(
            (every_completion, every_reward, [s for r in rounds for s in r.scores], _group_records(rounds, groups), len(groups))
        )
        everywhere = torch.cat([reward for _, reward, _, _, _ in shared])
        no_signal = group_advantages(everywhere, config.std_scaling).frac_reward_zero_std
        metrics = _sample_metrics([c for part in shared for c in part[0]], everywhere, no_signal, [s for part in shared for s in part[2]])
        if config.dynamic_sampling:
            kept_groups = sum(part[4] for part in shared)
            metrics.update(_dynamic_sampling_metrics(len(rounds), len(everywhere), kept_groups, config.prompts_per_step))
        metrics["groups"] = [record for part in shared for record in part[3]]

        completions = [c for group in groups for c in group]
        advantages = group_advantages(rewards, config.std_scaling, world=world)
        keep = advantages.valid.flatten().nonzero().flatten()
        # The sampler's log-probs differ from the policy's: vLLM's kernels, or a stale behaviour policy.
        correct = config.vllm_importance_sampling_correction and (self.uses_vllm or config.max_staleness > 0)
        (rows_everywhere,) = world.sum_floats(float(keep.numel()))
        if rows_everywhere == 0:
            update = NO_UPDATE
        else:
            batch = make_batch(completions, self.tokenizer.pad_token_id, sampler_logprobs=correct)
            update = self._update(batch, advantages.values.flatten(), keep)
        updated = time.perf_counter()
        if self.fsdp and not update.skipped:  # the whole copy the samplers use takes the trained weights
            self.model.load_state_dict(self.world.full_weights(self.trained))
        # vLLM samples from its own copy of the weights: the next step must sample from those just updated.
        sync = getattr(self.sampler, "sync_weights", None)
        if self.ahead is None and sync is not None and not update.skipped:  # async: train() publishes
            sync(self.model)
        finished = time.perf_counter()

        generation_s = sum(r.generation_s for r in rounds)
        new_tokens = sum(len(c.completion_ids) for c in every_completion)
        tokens, all_new = world.sum_floats(new_tokens + sum(len(c.prompt_ids) for c in every_completion), new_tokens)
        self.num_tokens += int(tokens)
        metrics.update(update.metrics())
        metrics.update(
            {
                "learning_rate": self.scheduler.get_last_lr()[0],
                "num_tokens": self.num_tokens,
                "time/generation": generation_s,
                "time/sampling_wait": sampled - started,
                "time/reward_wait": sum(r.reward_wait_s for r in rounds),
                "time/update": updated - sampled,
                "time/weight_sync": finished - updated,
                "time/step": finished - started,
                "tokens_per_s": all_new / max(1e-9, generation_s),
            }
        )
        if config.async_sampling:
            metrics["async/staleness"] = staleness
        return metrics

    def _update(self, batch: Batch, advantages: torch.Tensor, keep: torch.Tensor) -> UpdateResult:
        """The update on this trainer's model, optimizer and scheduler (the seam tests spy on)."""
        return grpo_update(
            batch,
            advantages,
            keep,
            model=self.trained,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            ref_model=self.ref_model,
            config=self.config,
            device=self.device,
            world=self.world,
        )


@dataclass(frozen=True)
class _Sampled:
    """What one step trains on, as sampled (in the trainer's thread, or ahead of it)."""

    rounds: list[_Round]
    groups: list[list[Completion]]
    """The groups kept, in the order sampled."""
    rewards: torch.Tensor
    position: int
    """The training order's position after this step's problems."""
    sampling_s: float


@dataclass(frozen=True)
class _Round:
    """One sampling round of a step: a group per problem, scored."""

    problems: list[str]
    """The id of each group's problem."""
    groups: list[list[Completion]]
    scores: list[GroupScore]
    rewards: torch.Tensor
    """[groups, G], NaN where masked."""
    generation_s: float
    reward_wait_s: float
    """Waiting for the scores after the generation ended (scoring overlaps it)."""


def _group_records(rounds: Sequence[_Round], kept: Sequence[list[Completion]]) -> list[dict[str, Any]]:
    """Each sampled group's problem, mean reward over its scored completions (None when all
    were masked) and whether the update used it: what report.paired_quarter_rewards pairs."""
    used = {id(group) for group in kept}
    records = []
    for r in rounds:
        for problem, group, rewards in zip(r.problems, r.groups, r.rewards):
            scored = rewards[~rewards.isnan()]
            mean = scored.mean().item() if scored.numel() else None
            records.append({"problem": problem, "reward": mean, "kept": id(group) in used})
    return records


def _dynamic_sampling_metrics(tries: int, sampled: int, kept: int, wanted: int) -> dict[str, Any]:
    return {
        "dynamic_sampling/tries": tries,
        "dynamic_sampling/groups_sampled": sampled,
        "dynamic_sampling/groups_kept": kept,
        "dynamic_sampling/sampled_per_kept": sampled / kept if kept else None,
        "dynamic_sampling/capped": int(kept < wanted),
    }


def _sample_metrics(
    completions: Sequence[Completion], rewards: torch.Tensor, frac_zero_std: float, scores: Sequence[GroupScore]
) -> dict[str, Any]:
    present = ~torch.isnan(rewards)
    lengths = [len(c.completion_ids) for c in completions]
    group_stds = [float(row[mask].std(unbiased=False)) for row, mask in zip(rewards, present) if mask.sum() >= 1]
    verdicts = Counter(r.verdict.value for s in scores for r in s.results)
    return {
        "reward": float(rewards[present].mean()) if present.any() else None,
        "reward_std": sum(group_stds) / len(group_stds) if group_stds else None,
        "frac_reward_zero_std": frac_zero_std,
        "reward/masked": int((~present).sum()),
        "completions/mean_length": sum(lengths) / len(lengths),
        "completions/min_length": min(lengths),
        "completions/max_length": max(lengths),
        "completions/clipped_ratio": sum(c.truncated for c in completions) / len(completions),
        **{f"verdicts/{name}": count for name, count in sorted(verdicts.items())},
    }


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, initial: int, enabled: bool, desc: str = "grpo") -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step" if desc == "grpo" else "problem", dynamic_ncols=True)
