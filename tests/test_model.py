"""Model loading on local files (a model hub cannot be reached here)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
transformers = pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")
from trainer_client import model as model_module  # noqa: E402

from .helpers import tiny_llama  # noqa: E402

try:
    model_module._gguf_dir()
except RuntimeError as exc:
    pytest.skip(str(exc), allow_module_level=True)


@pytest.fixture(scope="module")
def gguf_tokenizer() -> object:
    return transformers.AutoTokenizer.from_pretrained(model_module._gguf_dir(), gguf_file=model_module.GGUF_FILE)


def test_a_local_directory_loads_as_is(tmp_path: Path, gguf_tokenizer: object) -> None:
    """A tiny randomly initialised model of SmolLM2's architecture, saved and loaded by path."""
    tiny_llama(len(gguf_tokenizer)).save_pretrained(tmp_path)  # type: ignore[arg-type]
    gguf_tokenizer.save_pretrained(tmp_path)  # type: ignore[attr-defined]
    assert model_module.resolve_model(str(tmp_path)) == str(tmp_path)
    model, tokenizer = model_module.load_model(str(tmp_path))
    assert model.config.num_hidden_layers == 2 and model.dtype == torch.float32
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "left"


@pytest.mark.slow
def test_the_default_model_is_converted_once_and_matches_the_gguf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gguf_tokenizer: object
) -> None:
    monkeypatch.setenv("CODEREWARD_CACHE", str(tmp_path))
    path = Path(model_module.resolve_model(model_module.DEFAULT_MODEL))
    weights = path / "model.safetensors"
    assert path == tmp_path / "models" / model_module.DEFAULT_MODEL and weights.exists()
    stamp = weights.stat().st_mtime_ns
    assert Path(model_module.resolve_model(model_module.DEFAULT_MODEL)) == path and weights.stat().st_mtime_ns == stamp
    model, tokenizer = model_module.load_model(model_module.DEFAULT_MODEL)
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        model_module._gguf_dir(), gguf_file=model_module.GGUF_FILE, dtype=torch.float32
    )
    ids = tokenizer("def add(a, b):", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, reference(**ids).logits)
    assert sum(p.numel() for p in model.parameters()) > 100e6  # the real 135M model
