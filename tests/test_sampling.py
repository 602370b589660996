"""The transformers sampler on a tiny randomly initialised model of SmolLM2's architecture."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
transformers = pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")

from trainer_client import model as model_module  # noqa: E402
from trainer_client.sampling import HFSampler  # noqa: E402

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


def test_truncation_is_reported(tiny: tuple[object, object]) -> None:
    model, tokenizer = tiny
    sampler = HFSampler(model, tokenizer, max_new_tokens=2)
    completions = [c for g in sampler.sample(["x"], group_size=4) for c in g]
    for c in completions:
        assert c.truncated == (c.completion_ids[-1] != tokenizer.eos_token_id)
