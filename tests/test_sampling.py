"""The transformers sampler on a tiny randomly initialised model of SmolLM2's architecture."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
transformers = pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")

from trainer_client import model as model_module  # noqa: E402
from trainer_client.sampling import Completion, GroupDone, HFSampler  # noqa: E402
from trainer_client.trainer import _sample_metrics  # noqa: E402

from .helpers import tiny_llama  # noqa: E402

try:
    GGUF_DIR = model_module._gguf_dir()
except RuntimeError as exc:
    pytest.skip(str(exc), allow_module_level=True)


@pytest.fixture(scope="module")
def tiny() -> tuple[object, object]:
    tokenizer = transformers.AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=model_module.GGUF_FILE)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    return tiny_llama(len(tokenizer)).eval(), tokenizer


def test_groups_shapes_and_chat_template(tiny: tuple[object, object]) -> None:
    model, tokenizer = tiny
    sampler = HFSampler(model, tokenizer, max_new_tokens=6, temperature=1.0)
    groups = sampler.sample(["Write add(a, b).", "A much longer instruction about writing a function."], group_size=3)
    assert [len(g) for g in groups] == [3, 3]
    for group in groups:
        assert len({c.prompt_ids for c in group}) == 1  # one prompt per group, padding removed
        for c in group:
            assert 1 <= len(c.completion_ids) <= 6 and len(c.logprobs) == len(c.completion_ids)
            assert all(lp <= 0 for lp in c.logprobs)
    assert "<|im_start|>" in sampler.chat_prompt("x")  # SmolLM2's chat template


def test_sampling_logprobs_match_a_forward_pass(tiny: tuple[object, object]) -> None:
    model, tokenizer = tiny
    temperature = 0.7
    sampler = HFSampler(model, tokenizer, max_new_tokens=8, temperature=temperature)
    torch.manual_seed(1)
    (group,) = sampler.sample(["Write add(a, b)."], group_size=2)
    for c in group:
        ids = torch.tensor([list(c.prompt_ids) + list(c.completion_ids)])
        with torch.no_grad():
            logits = model(ids).logits[0, len(c.prompt_ids) - 1 : -1] / temperature
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c.completion_ids).unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(torch.tensor(c.logprobs), expected, atol=1e-4)


ADD = "Write add(a, b)."
ENDS, RUNS_ON = "Done.", "Sure,"
"""Response prefixes: the group whose prompt ends in ENDS's last token answers end-of-sequence
at once (see `eos_right_after`), the other runs to max_new_tokens."""


@contextlib.contextmanager
def eos_right_after(model: Any, token: int, eos: int) -> Iterator[None]:
    """The model answers end-of-sequence right after `token`: a +100 bias on that pair through
    transformers' `sequence_bias`, which `generate` reads from the model's generation config, so
    where each group ends is set by its prompt, not left to chance."""
    saved = model.generation_config.sequence_bias
    model.generation_config.sequence_bias = {(token, eos): 100.0}
    try:
        yield
    finally:
        model.generation_config.sequence_bias = saved


def sample_one_ending_one_cut(sampler: HFSampler, on_group_done: GroupDone | None = None) -> list[list[Completion]]:
    """Two groups of two: group 0 ends at its first token, group 1 is cut at max_new_tokens."""
    tokenizer = sampler.tokenizer
    ending = tokenizer(sampler.chat_prompt(ADD, ENDS), add_special_tokens=False).input_ids[-1]
    assert ending != tokenizer(sampler.chat_prompt(ADD, RUNS_ON), add_special_tokens=False).input_ids[-1]
    with eos_right_after(sampler.model, ending, tokenizer.eos_token_id):
        torch.manual_seed(0)
        return sampler.sample([ADD, ADD], group_size=2, on_group_done=on_group_done, response_prefixes=[ENDS, RUNS_ON])


def test_a_group_that_ended_is_reported_while_the_others_still_decode(tiny: tuple[Any, Any]) -> None:
    """What lets the trainer score a group while the batch is still generating: the hook fires
    for group 0 after the first decoding step, not when `generate` returns."""
    model, tokenizer = tiny
    forwards = 0

    def count(*_: object) -> None:
        nonlocal forwards
        forwards += 1

    reported: dict[int, tuple[int, list[str]]] = {}

    def on_group_done(group: int, texts: list[str]) -> None:
        reported[group] = (forwards, texts)

    handle = model.register_forward_hook(count)
    try:
        groups = sample_one_ending_one_cut(HFSampler(model, tokenizer, max_new_tokens=12), on_group_done)
    finally:
        handle.remove()
    assert [len(c.completion_ids) for g in groups for c in g] == [1, 1, 12, 12]
    assert forwards == 12  # one forward pass per new token
    assert list(reported) == [0, 1]
    assert reported[0][0] == 1  # after the first step, while group 1 had 11 steps to go
    assert reported[1][0] == forwards  # a group cut at the limit is reported when generation ends
    assert [texts for _, texts in reported.values()] == [[c.text for c in g] for g in groups]  # what is scored is what is trained on


def test_a_completion_cut_at_max_tokens_is_truncated_and_counted_as_clipped(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    ended, cut = sample_one_ending_one_cut(HFSampler(model, tokenizer, max_new_tokens=5))
    for c in ended:
        assert c.completion_ids == (tokenizer.eos_token_id,) and c.text == "" and not c.truncated
    for c in cut:
        assert len(c.completion_ids) == 5 and tokenizer.eos_token_id not in c.completion_ids and c.truncated
    metrics = _sample_metrics([*ended, *cut], torch.ones(2, 2), 0.0, [])
    assert metrics["completions/clipped_ratio"] == 0.5
