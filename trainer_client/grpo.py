"""The GRPO objective as small, pure tensor functions.

Source: Shao et al., "DeepSeekMath" (2024), §4.1 (GRPO): G completions per prompt, advantage
A_i = (R_i - mean R) / std R shared by every token of completion i, PPO's clipped surrogate
(Schulman et al., 2017), and a KL penalty to the frozen reference model with the k3
estimator (Schulman, "Approximating KL Divergence", 2020).

Departures from the paper, each a knob users of TRL and verl know:
- ε_low / ε_high may differ ("clip-higher", DAPO, Yu et al. 2025).
- Loss aggregation: per-sequence mean then mean over sequences (the paper's), token-level
  mean over the batch (DAPO), or a constant normaliser (Dr. GRPO, Liu et al. 2025).
- Advantage scaling by the group's std (the paper's), the batch's std, or none (Dr. GRPO).
- The policy loss (`policy_loss`): PPO's clipped surrogate on the token ratio (the paper's);
  GSPO (Zheng et al., "Group Sequence Policy Optimization", 2025): the same clip on the
  sequence-level ratio s_i = exp(mean_t log(π_θ/π_old)), shared by the tokens of completion i;
  CISPO (MiniMax, "MiniMax-M1", 2025, §3.1): sg(clip(r_t, 1-ε_low, 1+ε_high))·A·log π_θ(y_t),
  a weighted REINFORCE term whose gradient no token loses to the clip.
- Two-sided clip (`delta`, INTELLECT-2, Prime Intellect 2025; TRL's `delta`): with A < 0,
  PPO's min() leaves r·A unbounded below as r grows; the unclipped ratio is capped at δ.
- Off-policy correction for a separate sampler (vLLM): the surrogate of each sequence is
  weighted by the sequence-level importance ratio π_old(y|x) / π_sampler(y|x), and sequences
  whose ratio exceeds a cap are masked out (TRL's `vllm_importance_sampling_correction`,
  mode `sequence_mask`; Yao et al., "Your Efficient RL Framework Secretly Brings You
  Off-Policy RL Training", 2025). The KL term is not weighted, as in TRL.
- Masked rewards (NaN: the sandbox failed, not the program) are left out of the group's
  statistics and out of the loss; a group whose valid rewards are all equal carries no signal
  and is left out too (reported as `frac_reward_zero_std`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .config import LossAggregation, PolicyLoss, StdScaling  # the config's choices; config.py stays free of torch
from .distributed import SINGLE, World


@dataclass(frozen=True)
class Advantages:
    values: Tensor  # [B, G]: 0 where masked or where the group has no signal
    valid: Tensor  # [B, G] bool: completions that enter the loss
    zero_std: Tensor  # [B] bool: groups whose valid rewards are all equal (or fewer than 2)

    @property
    def frac_reward_zero_std(self) -> float:
        return float(self.zero_std.float().mean()) if self.zero_std.numel() else 0.0


def group_advantages(rewards: Tensor, std_scaling: StdScaling = "group", eps: float = 1e-4, world: World = SINGLE) -> Advantages:
    """A = (R - mean_group R) / std, population std, per group of G completions.

    `rewards` is [B, G] with NaN for masked rewards. Worked example: R = (1, 1, 1, 0) gives
    mean 0.75, std 0.433, A = (+0.577, +0.577, +0.577, -1.732). With several ranks (`world`),
    each holds whole groups; the "batch" std is the global batch's.
    """
    present = ~torch.isnan(rewards)
    filled = torch.where(present, rewards, torch.zeros_like(rewards))
    count = present.sum(dim=1, keepdim=True)
    mean = filled.sum(dim=1, keepdim=True) / count.clamp(min=1)
    centred = torch.where(present, rewards - mean, torch.zeros_like(rewards))
    group_std = (centred.pow(2).sum(dim=1, keepdim=True) / count.clamp(min=1)).sqrt()
    zero_std = (count.squeeze(1) < 2) | (group_std.squeeze(1) < eps)
    valid = present & ~zero_std.unsqueeze(1)
    if std_scaling == "group":
        scale = group_std
    elif std_scaling == "batch":
        scale = _global_std(rewards[present], world).reshape(1, 1)
    else:
        scale = torch.ones_like(group_std)
    values = torch.where(valid, centred / scale.clamp(min=eps), torch.zeros_like(rewards))
    return Advantages(values=values, valid=valid, zero_std=zero_std)


def _global_std(values: Tensor, world: World) -> Tensor:
    """Population std of the values of every rank (two passes in float64: the mean, then the
    deviations), computed the same way for one rank as for several."""
    total, count = world.sum_floats(float(values.double().sum()), float(values.numel()))
    if count == 0:
        return torch.ones(())
    mean = total / count
    (squares,) = world.sum_floats(float((values.double() - mean).pow(2).sum()))
    return torch.tensor((squares / count) ** 0.5, dtype=values.dtype)


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(π_θ ‖ π_ref): r - log r - 1 with r = π_ref/π_θ; ≥ 0, and 0
    exactly when the two agree (Schulman 2020)."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


@dataclass(frozen=True)
class Surrogate:
    objective: Tensor  # [N, T]: min(r·A, clip(r)·A) per token
    clipped_low: Tensor  # [N, T] bool: r < 1-ε_low with A < 0 (the clip bound is what counts)
    clipped_high: Tensor  # [N, T] bool: r > 1+ε_high with A > 0


def sequence_log_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """GSPO's log s_i = mean over the completion tokens of log π_θ - log π_old, [N, 1]: one
    ratio per sequence, broadcast to its tokens (its gradient reaches every token)."""
    mask = mask.to(logp.dtype)
    return (((logp - old_logp) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)).unsqueeze(1)


def clipped_surrogate(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    eps_low: float,
    eps_high: float,
    *,
    delta: float = 0.0,
    sequence_mask: Tensor | None = None,
) -> Surrogate:
    """PPO's clipped objective per token; `advantages` is [N] (one per sequence) or [N, T].
    With `sequence_mask` ([N, T], the completion tokens), the ratio is GSPO's sequence ratio;
    with `delta` > 0, the unclipped ratio is capped at δ (two-sided clip)."""
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    log_ratio = logp - old_logp if sequence_mask is None else sequence_log_ratio(logp, old_logp, sequence_mask).expand_as(logp)
    ratio = torch.exp(log_ratio)
    clipped_ratio = ratio.clamp(1 - eps_low, 1 + eps_high)
    unclipped = ratio.clamp(max=delta) if delta > 0 else ratio
    objective = torch.minimum(unclipped * advantages, clipped_ratio * advantages)
    return Surrogate(
        objective=objective,
        clipped_low=(ratio < 1 - eps_low) & (advantages < 0),
        clipped_high=(ratio > 1 + eps_high) & (advantages > 0),
    )


def cispo_objective(logp: Tensor, old_logp: Tensor, advantages: Tensor, eps_low: float, eps_high: float) -> Surrogate:
    """CISPO per token: sg(clip(r, 1-ε_low, 1+ε_high))·A·log π_θ. Its value is not PPO's, its
    gradient is the clipped weight times A·∇log π_θ for every token (PPO's is 0 where the clip
    binds). `clipped_*` flag the tokens whose weight the clip changed."""
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    ratio = torch.exp(logp - old_logp).detach()
    weight = ratio.clamp(1 - eps_low, 1 + eps_high)
    return Surrogate(
        objective=weight * advantages * logp,
        clipped_low=ratio < 1 - eps_low,
        clipped_high=ratio > 1 + eps_high,
    )


def aggregate(per_token: Tensor, mask: Tensor, mode: LossAggregation, constant: float | None = None) -> Tensor:
    """Reduce a per-token loss [N, T] over the tokens in `mask` (completion tokens of the
    sequences that enter the loss; prompt and padding are 0)."""
    mask = mask.to(per_token.dtype)
    if mode == "sequence-mean":
        lengths = mask.sum(dim=1)
        keep = lengths > 0
        if not keep.any():
            return per_token.sum() * 0
        return ((per_token * mask).sum(dim=1)[keep] / lengths[keep]).mean()
    if mode == "token-mean":
        return (per_token * mask).sum() / mask.sum().clamp(min=1)
    if constant is None or constant <= 0:
        raise ValueError("aggregation 'constant' needs a positive normaliser (e.g. the maximum completion length)")
    return (per_token * mask).sum() / (constant * mask.shape[0])


@dataclass(frozen=True)
class ImportanceWeights:
    weights: Tensor  # [N]: the ratio where it is at most the cap, 0 where it is masked
    ratio: Tensor  # [N]: π_old(y|x) / π_sampler(y|x), uncapped
    masked: Tensor  # [N] bool: ratio above the cap


def sequence_importance_weights(old_logp: Tensor, sampler_logp: Tensor, mask: Tensor, cap: float) -> ImportanceWeights:
    """Sequence-level importance weights of completions drawn from a sampler whose
    log-probabilities (`sampler_logp`, [N, T]) differ from the trainer's old policy
    (`old_logp`, [N, T]): ratio = exp(Σ_t mask·(old − sampler)); ratios above `cap` are masked
    (weight 0) rather than clipped, so a sequence the trainer finds far likelier than the
    sampler did cannot dominate the batch."""
    if cap <= 0:
        raise ValueError(f"cap={cap} must be positive")
    log_ratio = ((old_logp - sampler_logp) * mask.to(old_logp.dtype)).sum(dim=1)
    ratio = torch.exp(log_ratio)
    masked = ratio > cap
    return ImportanceWeights(weights=torch.where(masked, torch.zeros_like(ratio), ratio), ratio=ratio, masked=masked)


@dataclass(frozen=True)
class LossParts:
    loss: Tensor
    kl: float
    clip_ratio_low: float
    clip_ratio_high: float


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    beta: float = 0.0,
    ref_logp: Tensor | None = None,
    aggregation: LossAggregation = "sequence-mean",
    constant: float | None = None,
    is_weights: Tensor | None = None,
    policy_loss: PolicyLoss = "ppo-clip",
    delta: float = 0.0,
) -> LossParts:
    """-(clipped surrogate - β·KL_k3), aggregated over the completion tokens in `mask`.

    logp, old_logp, ref_logp, mask: [N, T] (N completions, token-aligned); advantages: [N].
    Completions left out of the loss (masked rewards, zero-variance groups) have an all-zero
    mask row. `is_weights` ([N], from `sequence_importance_weights`) scales each sequence's
    surrogate (not its KL term). `policy_loss` and `delta`: see the module's docstring.
    """
    if policy_loss == "cispo":
        surrogate = cispo_objective(logp, old_logp, advantages, eps_low, eps_high)
    else:
        sequence_mask = mask if policy_loss == "gspo" else None
        surrogate = clipped_surrogate(logp, old_logp, advantages, eps_low, eps_high, delta=delta, sequence_mask=sequence_mask)
    per_token = -surrogate.objective
    if is_weights is not None:
        per_token = per_token * is_weights.unsqueeze(1)
    kl_value = 0.0
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp (the reference model's log-probabilities)")
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + beta * kl
        kl_value = float((kl.detach() * mask).sum() / mask.sum().clamp(min=1))
    tokens = mask.sum().clamp(min=1)
    return LossParts(
        loss=aggregate(per_token, mask, aggregation, constant),
        kl=kl_value,
        clip_ratio_low=float((surrogate.clipped_low & mask.bool()).sum() / tokens),
        clip_ratio_high=float((surrogate.clipped_high & mask.bool()).sum() / tokens),
    )
