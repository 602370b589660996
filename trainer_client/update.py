"""The update of one GRPO step: μ optimizer passes over the sampled rows that carry a signal.

The rows are cut into micro-batches under a token budget (`policy.micro_batches`); each
micro-batch's loss is scaled by its share of the batch-level normaliser
(`micro_batch_weight`), so the accumulated gradient is that of the whole batch in one pass,
for every loss aggregation (tests/test_update.py checks it). The importance sampling
correction of a separate sampler (vLLM) is on when the batch carries the sampler's
log-probabilities (`Batch.sampler_logprobs`); `grpo.py` has the math and its sources.

The reported kl and clip ratios are token means within each micro-batch, accumulated with the
same shares as the loss.

With several ranks (`distributed.World`), each holds its share of the rows and `model` is the
DDP-wrapped or FSDP-sharded policy: the normaliser is the sum over the ranks, and the gradients
are reduced over the ranks (DDP: in each pass's last backward; FSDP: in every backward, into
the shards) before clipping and the step, so every rank takes the step one process would take
on the whole batch.

Departure from TRL's GRPOTrainer, on purpose: no old-policy forward pass when μ = 1: the ratio
is exactly 1 in value and its gradient is that of log π, so `old_logp = logp.detach()` is the
same computation, one forward cheaper.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .config import LossAggregation, TrainConfig
from .distributed import SINGLE, World
from .grpo import grpo_loss, sequence_importance_weights
from .policy import Batch, logprobs_no_grad, micro_batches, token_logprobs


@dataclass(frozen=True)
class ImportanceSampling:
    """The sequence-level ratios π_old(y|x) / π_sampler(y|x) of the update's rows."""

    ratio_min: float
    ratio_mean: float
    ratio_max: float
    masked_ratio: float
    """The share of rows whose ratio is above the cap (weight 0)."""

    @classmethod
    def of(cls, ratio: Tensor, cap: float) -> ImportanceSampling:
        return cls(float(ratio.min()), float(ratio.mean()), float(ratio.max()), float((ratio > cap).float().mean()))


@dataclass(frozen=True)
class UpdateResult:
    loss: float
    grad_norm: float
    """Before clipping, of the last of the μ optimizer steps."""
    kl: float
    clip_ratio_low: float
    clip_ratio_high: float
    entropy: float | None
    """Mean over the completion tokens, under the policy before the first optimizer step."""
    importance_sampling: ImportanceSampling | None = None
    """None without the correction."""
    skipped: bool = False

    def metrics(self) -> dict[str, Any]:
        """The names TRL logs (`kl`, `clip_ratio/*`, `sampling/importance_sampling_*`)."""
        sampling = self.importance_sampling
        return {
            **(
                {
                    "sampling/importance_sampling_ratio/min": sampling.ratio_min,
                    "sampling/importance_sampling_ratio/mean": sampling.ratio_mean,
                    "sampling/importance_sampling_ratio/max": sampling.ratio_max,
                    "sampling/importance_sampling_masked_ratio": sampling.masked_ratio,
                }
                if sampling is not None
                else {}
            ),
            "loss": self.loss,
            "grad_norm": self.grad_norm,
            "kl": self.kl,
            "clip_ratio/low_mean": self.clip_ratio_low,
            "clip_ratio/high_mean": self.clip_ratio_high,
            "entropy": self.entropy,
            "update_skipped": int(self.skipped),
        }


NO_UPDATE = UpdateResult(loss=0.0, grad_norm=0.0, kl=0.0, clip_ratio_low=0.0, clip_ratio_high=0.0, entropy=None, skipped=True)
"""A step without a row with a signal: no forward pass, no optimizer step."""


def micro_batch_weight(aggregation: LossAggregation, batch: Batch) -> float:
    """A micro-batch's share of the batch-level normaliser, so that accumulating micro-batch
    losses gives exactly the loss of the whole batch."""
    if aggregation == "token-mean":
        return float(batch.completion_mask.sum())
    return float(batch.input_ids.shape[0])  # sequence-mean: valid sequences; constant: rows


def grpo_update(
    batch: Batch,
    advantages: Tensor,
    keep: Tensor,
    *,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ref_model: Any | None,
    config: TrainConfig,
    device: str,
    world: World = SINGLE,
) -> UpdateResult:
    """μ = updates_per_batch optimizer steps on the rows of `batch` in `keep`; `advantages` is
    [N], one per row of `batch`. The reference model's log-probabilities enter the loss when
    `ref_model` is given (β > 0). `keep` may be empty on a rank only when another rank has rows
    (a step without a signal anywhere is NO_UPDATE)."""
    if world.size == 1 and keep.numel() == 0:
        raise ValueError("grpo_update needs at least one row in keep; a step without a signal is NO_UPDATE")
    parts_rows = micro_batches(batch, keep, config.micro_batch_tokens, config.grad_accumulation) if keep.numel() else []
    micro = [(batch.rows(rows).to(device), advantages[rows].to(device)) for rows in parts_rows]
    is_weights: list[Tensor | None] = [None] * len(micro)
    ratios: list[Tensor] = []
    weights = [micro_batch_weight(config.loss_aggregation, mb) for mb, _ in micro]
    (total,) = world.sum_floats(sum(weights))
    # Ranks must meet in their collectives: DDP's one all-reduce per pass (a rank without a row
    # runs one backward of a zero loss), or with FSDP every forward and backward (the ranks
    # with fewer micro-batches run zero-loss ones until all have run as many).
    lockstep = world.size > 1 and world.sharded(model)
    fillers = int(world.extreme(float(len(micro)), "max")) - len(micro) if lockstep else int(not micro)
    old = None
    if config.updates_per_batch > 1:
        old = [logprobs_no_grad(model, mb, config.temperature) for mb, _ in micro]
        for _ in range(fillers if lockstep else 0):
            logprobs_no_grad(model, _empty_row(device), config.temperature)
    ref = [logprobs_no_grad(ref_model, mb, config.temperature) for mb, _ in micro] if ref_model is not None else None
    sums: dict[str, float] = defaultdict(float)
    grad_norm = 0.0
    for iteration in range(config.updates_per_batch):
        optimizer.zero_grad(set_to_none=True)
        for _ in range(fillers):  # this rank's share of the gradient reduction is zeros
            with world.accumulating(model, last=not micro):
                (token_logprobs(model, _empty_row(device), config.temperature).logp.sum() * 0.0).backward()
        for index, ((mb, adv), weight) in enumerate(zip(micro, weights)):
            with world.accumulating(model, last=index == len(micro) - 1):
                stats, parts = _micro_loss(model, mb, adv, index, iteration, old, ref, is_weights, ratios, config)
                share = weight / total
                (parts.loss * share * world.size).backward()  # DDP averages over the ranks: this sums
            sums["loss"] += float(parts.loss.detach()) * share / config.updates_per_batch
            sums["kl"] += parts.kl * share / config.updates_per_batch
            sums["clip_ratio/low_mean"] += parts.clip_ratio_low * share / config.updates_per_batch
            sums["clip_ratio/high_mean"] += parts.clip_ratio_high * share / config.updates_per_batch
            if iteration == 0:
                mask = mb.completion_mask
                sums["entropy_sum"] += float((stats.entropy * mask).sum())
                sums["entropy_tokens"] += float(mask.sum())
        limit = config.max_grad_norm if config.max_grad_norm > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), limit))
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    names = ("loss", "kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "entropy_sum", "entropy_tokens")
    sums = dict(zip(names, world.sum_floats(*(sums[name] for name in names))))
    return UpdateResult(
        loss=sums["loss"],
        grad_norm=grad_norm,
        kl=sums["kl"],
        clip_ratio_low=sums["clip_ratio/low_mean"],
        clip_ratio_high=sums["clip_ratio/high_mean"],
        entropy=sums["entropy_sum"] / max(1.0, sums["entropy_tokens"]),
        importance_sampling=_importance_sampling(ratios, config.vllm_importance_sampling_cap, world),
    )


def _micro_loss(
    model: Any,
    mb: Batch,
    adv: Tensor,
    index: int,
    iteration: int,
    old: list[Tensor] | None,
    ref: list[Tensor] | None,
    is_weights: list[Tensor | None],
    ratios: list[Tensor],
    config: TrainConfig,
) -> tuple[Any, Any]:
    """One micro-batch's forward and GRPO loss (its importance weights fixed on the first pass)."""
    stats = token_logprobs(model, mb, config.temperature, entropy=iteration == 0)
    old_logp = old[index] if old else stats.logp.detach()
    if mb.sampler_logprobs is not None and iteration == 0:  # importance weights: fixed for the μ updates of this batch
        weights_is = sequence_importance_weights(old_logp, mb.sampler_logprobs, mb.completion_mask, config.vllm_importance_sampling_cap)
        is_weights[index] = weights_is.weights
        ratios.append(weights_is.ratio)
    parts = grpo_loss(
        stats.logp,
        old_logp,
        adv,
        mb.completion_mask,
        eps_low=config.epsilon_low,
        eps_high=config.epsilon_high,
        beta=config.beta,
        ref_logp=ref[index] if ref else None,
        aggregation=config.loss_aggregation,
        constant=float(config.max_completion_tokens),
        is_weights=is_weights[index],
        policy_loss=config.policy_loss,
        delta=config.delta,
    )
    return stats, parts


def _empty_row(device: str) -> Batch:
    """One row of two tokens, for a backward of a zero loss."""
    ids = torch.zeros((1, 2), dtype=torch.long, device=device)
    return Batch(
        ids, torch.ones_like(ids), torch.arange(2, device=device).unsqueeze(0), ids[:, 1:].clone(), torch.zeros((1, 1), device=device)
    )


def _importance_sampling(ratios: list[Tensor], cap: float, world: World) -> ImportanceSampling | None:
    """Over the rows of every rank (None without the correction)."""
    local = torch.cat(ratios) if ratios else torch.zeros(0)
    if world.size == 1:
        return ImportanceSampling.of(local, cap) if ratios else None
    total, count, masked = world.sum_floats(float(local.sum()), float(local.numel()), float((local > cap).sum()))
    if count == 0:
        return None
    low = world.extreme(float(local.min()) if local.numel() else math.inf, "min")
    high = world.extreme(float(local.max()) if local.numel() else -math.inf, "max")
    return ImportanceSampling(low, total / count, high, masked / count)
