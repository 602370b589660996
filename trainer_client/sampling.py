"""Sampling groups of completions: the interface, and transformers' `generate` behind it.

A sampler returns, per completion, the token ids, the text, and the log-probability of each
sampled token under the sampling distribution (logits / temperature, before top-p
truncation: the same quantity the trainer's forward pass computes, so the two can be
compared for off-policy corrections).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Completion:
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    """Sampled tokens, up to and including the end-of-sequence token when there is one."""
    text: str
    logprobs: tuple[float, ...]
    """log π(token) at the sampling temperature, one per completion token."""
    truncated: bool
    """Stopped by max_new_tokens, not by an end-of-sequence token."""


class Sampler(Protocol):
    def sample(self, instructions: Sequence[str], group_size: int) -> list[list[Completion]]:
        """`group_size` completions for each instruction, grouped by instruction."""
        ...


class HFSampler:
    """transformers' `generate`, in the trainer's process, on the policy being trained."""

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p

    def chat_prompt(self, instruction: str) -> str:
        """The instruction as a user turn in the model's chat template."""
        if getattr(self.tokenizer, "chat_template", None):
            return str(self.tokenizer.apply_chat_template([{"role": "user", "content": instruction}], add_generation_prompt=True, tokenize=False))
        return instruction + "\n"

    def sample(self, instructions: Sequence[str], group_size: int) -> list[list[Completion]]:
        import torch

        texts = [self.chat_prompt(i) for i in instructions]
        encoded = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        input_ids = encoded["input_ids"].repeat_interleave(group_size, dim=0)
        attention = encoded["attention_mask"].repeat_interleave(group_size, dim=0)
        eos = self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                do_sample=True,
                temperature=self.temperature,
                top_p=self.top_p,
                top_k=0,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=eos,
                output_logits=True,
                return_dict_in_generate=True,
            )
        prompt_len = input_ids.shape[1]
        generated = out.sequences[:, prompt_len:]
        logits = torch.stack(out.logits, dim=1).float() / self.temperature  # [N, steps, V]
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, generated[:, : logits.shape[1]].unsqueeze(-1)).squeeze(-1)
        groups: list[list[Completion]] = []
        for row in range(generated.shape[0]):
            tokens = generated[row].tolist()
            end = tokens.index(eos) + 1 if eos in tokens else len(tokens)
            prompt = input_ids[row][attention[row].bool()].tolist()
            completion = Completion(
                prompt_ids=tuple(prompt),
                completion_ids=tuple(tokens[:end]),
                text=self.tokenizer.decode(tokens[:end], skip_special_tokens=True),
                logprobs=tuple(logprobs[row, :end].tolist()),
                truncated=eos not in tokens[:end],
            )
            if row % group_size == 0:
                groups.append([])
            groups[-1].append(completion)
        return groups
