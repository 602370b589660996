"""Token log-probabilities of sampled completions under a model: the forward pass of the
GRPO update (with gradients), of the old policy (μ > 1) and of the reference model (β > 0).

Sequences are laid out as [left-padded prompt | right-padded completion], with position ids
counted over real tokens only, as `generate` counts them: the forward pass then sees each
token exactly as sampling did. Only the completion positions' logits are computed
(`logits_to_keep`): the LM head over a 49k vocabulary is a large share of a small model's
compute, and prompt positions need none of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .sampling import Completion


@dataclass(frozen=True)
class Batch:
    input_ids: Tensor  # [N, P + T]
    attention_mask: Tensor  # [N, P + T]
    position_ids: Tensor  # [N, P + T]
    completion_ids: Tensor  # [N, T]
    completion_mask: Tensor  # [N, T] float: 1 on completion tokens, 0 on padding
    sampler_logprobs: Tensor | None = None
    """[N, T]: the sampler's own log π(token), 0 on padding; for the importance sampling
    correction of a separate sampler (vLLM), None when the update does not ask for it."""

    @property
    def completion_len(self) -> int:
        return int(self.completion_ids.shape[1])

    def rows(self, index: Tensor | Sequence[int]) -> Batch:
        """A sub-batch, with the padding columns that none of its rows needs cut off."""
        index = torch.as_tensor(index, dtype=torch.long)
        prompt_len = self.input_ids.shape[1] - self.completion_len
        attention = self.attention_mask[index]
        start = int(attention[:, :prompt_len].any(dim=0).long().argmax()) if prompt_len else 0
        length = max(1, int(self.completion_mask[index].sum(dim=1).max()))
        cols = slice(start, prompt_len + length)
        return Batch(
            self.input_ids[index, cols],
            attention[:, cols],
            self.position_ids[index, cols],
            self.completion_ids[index, :length],
            self.completion_mask[index, :length],
            None if self.sampler_logprobs is None else self.sampler_logprobs[index, :length],
        )

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.position_ids.to(device),
            self.completion_ids.to(device),
            self.completion_mask.to(device),
            None if self.sampler_logprobs is None else self.sampler_logprobs.to(device),
        )


def make_batch(completions: Sequence[Completion], pad_id: int, *, sampler_logprobs: bool = False) -> Batch:
    """Pad prompts on the left and completions on the right into one batch; with
    `sampler_logprobs`, carry each completion's `logprobs` in the completion columns."""
    prompt_len = max((len(c.prompt_ids) for c in completions), default=0)  # none: a rank without a kept group
    completion_len = max(1, max((len(c.completion_ids) for c in completions), default=0))
    n = len(completions)
    input_ids = torch.full((n, prompt_len + completion_len), pad_id, dtype=torch.long)
    attention = torch.zeros((n, prompt_len + completion_len), dtype=torch.long)
    completion_mask = torch.zeros((n, completion_len))
    sampled = torch.zeros((n, completion_len)) if sampler_logprobs else None
    for row, c in enumerate(completions):
        p, t = len(c.prompt_ids), len(c.completion_ids)
        input_ids[row, prompt_len - p : prompt_len] = torch.tensor(c.prompt_ids)
        input_ids[row, prompt_len : prompt_len + t] = torch.tensor(c.completion_ids, dtype=torch.long)
        attention[row, prompt_len - p : prompt_len + t] = 1
        completion_mask[row, :t] = 1
        if sampled is not None:
            sampled[row, : len(c.logprobs)] = torch.tensor(c.logprobs, dtype=torch.float32)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    return Batch(input_ids, attention, positions, input_ids[:, prompt_len:].clone(), completion_mask, sampled)


@dataclass(frozen=True)
class TokenStats:
    logp: Tensor  # [N, T]: log π(token), with gradients when the caller allows them
    entropy: Tensor  # [N, T]: entropy of π at each position (no gradient)


def micro_batches(batch: Batch, keep: Tensor, max_tokens: int, at_least: int = 1) -> list[Tensor]:
    """The rows in `keep`, in order, cut into consecutive micro-batches of at most `max_tokens`
    (rows x the padded length they need; 0 = no limit; a longer row goes alone) and at least
    `at_least` of them (fewer only when there are fewer rows)."""
    if keep.numel() == 0:
        return []
    prompt_len = batch.input_ids.shape[1] - batch.completion_len
    prompts = batch.attention_mask[:, :prompt_len].sum(dim=1).tolist()
    completions = batch.completion_mask.sum(dim=1).long().tolist()
    parts: list[list[int]] = [[]]
    longest_prompt = longest_completion = 0
    for row in keep.tolist():
        p, c = max(longest_prompt, prompts[row]), max(longest_completion, completions[row])
        if parts[-1] and max_tokens and (len(parts[-1]) + 1) * (p + c) > max_tokens:
            parts.append([])
            p, c = prompts[row], completions[row]
        parts[-1].append(row)
        longest_prompt, longest_completion = p, c
    while len(parts) < min(at_least, keep.numel()):  # halve the part with the most rows (stays under the budget)
        largest = max(range(len(parts)), key=lambda i: len(parts[i]))
        part = parts[largest]
        parts[largest : largest + 1] = [part[: (len(part) + 1) // 2], part[(len(part) + 1) // 2 :]]
    return [torch.tensor(part, dtype=torch.long) for part in parts]


def token_logprobs(model: Any, batch: Batch, temperature: float = 1.0, *, entropy: bool = False) -> TokenStats:
    """log π(completion token | prefix) at the sampling temperature, for every completion
    position; padding positions hold meaningless values (mask them)."""
    t = batch.completion_len
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        logits_to_keep=t + 1,
        use_cache=False,
    )
    logits = out.logits[:, :-1, :].float() / temperature  # position j predicts token j + 1
    log_norm = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1) - log_norm
    if entropy:
        with torch.no_grad():
            probs = torch.softmax(logits, dim=-1)
            ent = log_norm - (probs * logits).sum(dim=-1)
    else:
        ent = torch.zeros_like(logp)
    return TokenStats(logp=logp, entropy=ent.detach())


def logprobs_no_grad(model: Any, batch: Batch, temperature: float) -> Tensor:
    """token_logprobs without gradients (old policy, reference model), for one micro-batch."""
    with torch.no_grad():
        return token_logprobs(model, batch, temperature).logp
