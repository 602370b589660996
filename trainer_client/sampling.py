"""Sampling groups of completions: the interface, and transformers' `generate` behind it.

A sampler returns, per completion, the token ids, the text, and the log-probability of each
sampled token under the sampling distribution (logits / temperature, before top-p
truncation: the same quantity the trainer's forward pass computes, so the two can be
compared for off-policy corrections).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

GroupDone = Callable[[int, list[str]], None]
"""Called with (group index, completion texts) as soon as every completion of a group has
ended, while the rest of the batch is still being generated: the trainer sends the group to
the reward server from here."""


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
    def sample(
        self,
        instructions: Sequence[str],
        group_size: int,
        *,
        greedy: bool = False,
        on_group_done: GroupDone | None = None,
        response_prefixes: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        """`group_size` completions for each instruction, grouped by instruction (greedy:
        the most likely completion, `group_size` should then be 1). `response_prefixes`: per
        instruction, text the assistant's answer starts with (part of the prompt; the
        completion continues it)."""
        ...


class _GroupWatch:
    """A stopping criterion that never stops anything: it only notices, after each decoding
    step, which groups have all their rows ended and reports them once."""

    def __init__(self, prompt_len: int, group_size: int, eos: int, decode: Callable[[list[int]], str], callback: GroupDone) -> None:
        self.prompt_len = prompt_len
        self.group_size = group_size
        self.eos = eos
        self.decode = decode
        self.callback = callback
        self.reported: set[int] = set()

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        generated = input_ids[:, self.prompt_len :]
        ended = (generated == self.eos).any(dim=1).tolist()
        for group in range(len(ended) // self.group_size):
            rows = range(group * self.group_size, (group + 1) * self.group_size)
            if group not in self.reported and all(ended[r] for r in rows):
                self.reported.add(group)
                self.callback(group, [self.decode(_until_eos(generated[r].tolist(), self.eos)) for r in rows])
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def _until_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


def chat_prompt(tokenizer: Any, instruction: str, response_prefix: str = "") -> str:
    """The instruction as a user turn in the model's chat template, the assistant's turn opened
    and started with `response_prefix`."""
    if getattr(tokenizer, "chat_template", None):
        opened = str(tokenizer.apply_chat_template([{"role": "user", "content": instruction}], add_generation_prompt=True, tokenize=False))
        return opened + response_prefix
    return instruction + "\n" + response_prefix


class HFSampler:
    """transformers' `generate`, in the trainer's process, on the policy being trained."""

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p

    def chat_prompt(self, instruction: str, response_prefix: str = "") -> str:
        return chat_prompt(self.tokenizer, instruction, response_prefix)

    def sample(
        self,
        instructions: Sequence[str],
        group_size: int,
        *,
        greedy: bool = False,
        on_group_done: GroupDone | None = None,
        response_prefixes: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        import torch
        from transformers import StoppingCriteriaList

        prefixes = response_prefixes or [""] * len(instructions)
        texts = [self.chat_prompt(i, p) for i, p in zip(instructions, prefixes)]
        encoded = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        input_ids = encoded["input_ids"].repeat_interleave(group_size, dim=0)
        attention = encoded["attention_mask"].repeat_interleave(group_size, dim=0)
        eos = self.tokenizer.eos_token_id
        prompt_len = input_ids.shape[1]
        decode = self._decode
        watch = _GroupWatch(prompt_len, group_size, eos, decode, on_group_done) if on_group_done else None
        sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0}
        was_training = self.model.training
        self.model.eval()  # generation keeps its KV cache even when gradient checkpointing is on
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                **sampling,
                max_new_tokens=self.max_new_tokens,
                stopping_criteria=StoppingCriteriaList([watch]) if watch else None,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=eos,
                output_logits=True,
                return_dict_in_generate=True,
            )
        self.model.train(was_training)
        generated = out.sequences[:, prompt_len:]
        temperature = 1.0 if greedy else self.temperature
        logits = torch.stack(out.logits, dim=1).float() / temperature  # [N, steps, V]
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, generated[:, : logits.shape[1]].unsqueeze(-1)).squeeze(-1)
        groups: list[list[Completion]] = []
        for row in range(generated.shape[0]):
            tokens = generated[row].tolist()
            end = tokens.index(eos) + 1 if eos in tokens else len(tokens)
            prompt = input_ids[row][attention[row].bool()].tolist()
            completion = Completion(
                prompt_ids=tuple(prompt),
                completion_ids=tuple(tokens[:end]),
                text=decode(tokens[:end]),
                logprobs=tuple(logprobs[row, :end].tolist()),
                truncated=eos not in tokens[:end],
            )
            if row % group_size == 0:
                groups.append([])
            groups[-1].append(completion)
        if watch is not None:  # the groups that ran to max_new_tokens
            for index, group in enumerate(groups):
                if index not in watch.reported:
                    on_group_done(index, [c.text for c in group])  # type: ignore[misc]  # watch implies a callback
        return groups

    def _decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))
