"""Batch layout of the update: micro-batches under a token budget, and that cutting a batch into
them changes neither the log-probabilities nor the gradient (a tiny random Llama, real forward
and backward passes)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
transformers = pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")

from trainer_client.policy import Batch, logprobs_no_grad, micro_batches, token_logprobs  # noqa: E402

from .helpers import tiny_llama  # noqa: E402

PROMPTS, COMPLETIONS = [6, 2, 3, 6, 1], [4, 1, 2, 4, 1]  # tokens of each row (prompt width 6, completion width 4)


def layout() -> Batch:
    """Left-padded prompts, right-padded completions, as make_batch lays them out."""
    n, p, t = len(PROMPTS), max(PROMPTS), max(COMPLETIONS)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 60, (n, p + t), generator=generator)
    attention = torch.zeros(n, p + t, dtype=torch.long)
    completion_mask = torch.zeros(n, t)
    for row, (prompt, completion) in enumerate(zip(PROMPTS, COMPLETIONS)):
        attention[row, p - prompt : p + completion] = 1
        completion_mask[row, :completion] = 1
    position_ids = (attention.cumsum(dim=1) - 1).clamp(min=0)
    return Batch(input_ids, attention, position_ids, input_ids[:, p:], completion_mask)


def rows(parts: list[torch.Tensor]) -> list[list[int]]:
    return [part.tolist() for part in parts]


def test_micro_batches_fill_the_token_budget_in_order() -> None:
    batch, keep = layout(), torch.arange(5)
    # rows 0+1 need 2 x (6 + 4) = 20 tokens; adding row 2 would need 30
    assert rows(micro_batches(batch, keep, 20)) == [[0, 1], [2, 3], [4]]
    assert rows(micro_batches(batch, keep, 0)) == [[0, 1, 2, 3, 4]]  # no limit
    assert rows(micro_batches(batch, keep, 5)) == [[0], [1], [2], [3], [4]]  # a row over the budget goes alone
    assert rows(micro_batches(batch, keep, 0, at_least=4)) == [[0], [1], [2], [3, 4]]  # grad_accumulation: halve the largest
    # both: the budget's parts, the largest halved until there are enough (still under the budget)
    assert rows(micro_batches(batch, keep, 20, at_least=4)) == [[0], [1], [2, 3], [4]]
    assert rows(micro_batches(batch, keep, 20, at_least=9)) == [[0], [1], [2], [3], [4]]
    assert rows(micro_batches(batch, torch.tensor([1, 2, 4]), 10)) == [[1, 2], [4]]  # 2 x (3 + 2) = 10; with row 4, 15
    assert rows(micro_batches(batch, torch.tensor([1, 2, 4]), 9)) == [[1], [2], [4]]
    assert micro_batches(batch, torch.tensor([], dtype=torch.long), 20) == []


def test_micro_batches_change_neither_log_probs_nor_gradient() -> None:
    torch.manual_seed(0)
    model = tiny_llama(64)
    batch, keep = layout(), torch.arange(5)

    def gradient(parts: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        logps = []
        for part in parts:
            sub = batch.rows(part)
            logp = token_logprobs(model, sub, temperature=0.7).logp
            (logp * sub.completion_mask).sum().backward()
            logps.append(logp.detach())
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]), logps

    whole_grad, (whole,) = gradient(micro_batches(batch, keep, 0))
    parts = micro_batches(batch, keep, 20)
    split_grad, split = gradient(parts)
    assert len(parts) == 3
    for part, logp in zip(parts, split):
        for i, row in enumerate(part.tolist()):
            n = COMPLETIONS[row]
            torch.testing.assert_close(logp[i, :n], whole[row, :n], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(split_grad, whole_grad, rtol=1e-4, atol=1e-6)


def test_old_and_reference_log_probs_are_the_updates_own_without_a_graph() -> None:
    """logprobs_no_grad (old policy, reference model) gives the log-probabilities the update
    computes for the same micro-batch, and keeps no autograd graph."""
    torch.manual_seed(0)
    model = tiny_llama(64)
    sub = layout().rows(torch.arange(3))
    old = logprobs_no_grad(model, sub, 0.7)
    assert not old.requires_grad and torch.allclose(old, token_logprobs(model, sub, temperature=0.7).logp)
