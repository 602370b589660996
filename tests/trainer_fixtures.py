"""What the trainer tests share: a tiny randomly initialised model of SmolLM2's architecture
(with its real tokenizer), problems it can pass, a real reward server process on loopback.

The tiny model is random but not hopeless: its embeddings carry one constant dimension that
the LM head reads for the end-of-sequence token only, so about a third of the time it
answers with nothing at all. The `quiet` problems are passed by an empty program and failed
by almost any random text, so groups have reward variance and the update has a signal.
Import the fixtures by name into a test module (each module gets its own server).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
transformers = pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")

from trainer_client import model as model_module  # noqa: E402
from trainer_client.config import TrainConfig  # noqa: E402
from trainer_client.rewards import LocalRewardServer  # noqa: E402

from .helpers import tiny_llama  # noqa: E402

try:
    GGUF_DIR = model_module._gguf_dir()
except RuntimeError as exc:
    pytest.skip(str(exc), allow_module_level=True)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = transformers.AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=model_module.GGUF_FILE)
    torch.manual_seed(0)
    model = tiny_llama(len(tokenizer), tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 10.0  # a constant feature...
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[tokenizer.eos_token_id, 0] = 1.8  # ...that only the end token's logit reads: P(end) ≈ 0.3 per step
    path = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def problems_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "problems.jsonl"
    rows = [
        {"id": f"quiet-{i}", "prompt": f"Say nothing ({i}).", "tests": [{"io": {"stdin": "", "expected_stdout": ""}}]} for i in range(5)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def reward_server(sandbox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: ARG001 — needs the image
    with LocalRewardServer(tmp_path_factory.mktemp("server") / "server.log", workers=2) as server:
        yield server.target


def tiny_config(model: Path | str, data: Path, out: Path, **overrides: object) -> TrainConfig:
    base = dict(
        model=str(model),
        dataset=str(data),
        eval_dataset=str(data),
        output_dir=out,
        group_size=6,
        prompts_per_step=2,
        max_completion_tokens=12,
        learning_rate=1e-2,
        max_steps=2,
        seed=3,
        tensorboard=True,
        device="cpu",
        sampler="hf",
    )
    base.update(overrides)
    return TrainConfig.from_dict(base)
