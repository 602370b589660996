"""Checkpoints that resume a run exactly: weights, optimizer and schedule, step, data
position and every random generator the run draws from.

Layout: `OUTPUT_DIR/checkpoints/step-000010/` holds the model and tokenizer
(`save_pretrained`: loadable by any transformers user or `grpo-eval`) and `trainer_state.pt`.
A checkpoint is written to a temporary folder and renamed, so a run stopped mid-save never
leaves half of one that a resume would pick up.
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^step-(\d+)$")
STATE_FILE = "trainer_state.pt"


@dataclass
class TrainState:
    step: int = 0
    """Optimizer steps done (sampled batches)."""
    data_position: int = 0
    """Problems consumed from the (seeded, per-epoch shuffled) training order."""


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return output_dir / "checkpoints" / f"step-{step:06d}"


def latest_checkpoint(output_dir: Path) -> Path | None:
    root = output_dir / "checkpoints"
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and (p / STATE_FILE).exists()]
    return max(found)[1] if found else None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: Path, *, model: Any, tokenizer: Any, optimizer_state: dict[str, Any], scheduler: Any, state: TrainState, config: dict[str, Any]
) -> Path:
    """`optimizer_state`: the whole optimizer's, keyed by parameter index (`Optimizer.state_dict()`;
    with FSDP, gathered from the shards: `World.full_optimizer_state`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        torch.save(
            {
                "state": vars(state),
                "optimizer": optimizer_state,
                "scheduler": scheduler.state_dict(),
                "rng": rng_state(),
                "config": config,
            },
            staging / STATE_FILE,
        )
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def load_trainer_state(path: Path, *, scheduler: Any) -> tuple[TrainState, dict[str, Any], dict[str, Any]]:
    """Restore the schedule and random generators from `path`; returns the train state, the
    config the checkpoint was written with and the optimizer's state, for the caller to load
    into its optimizer, sharded or not (`World.load_optimizer_state`). (The weights are loaded
    by the caller, with from_pretrained on the same folder.)"""
    saved = torch.load(path / STATE_FILE, weights_only=False, map_location="cpu")  # the optimizer takes it to its parameters' device
    scheduler.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"])
    return TrainState(**saved["state"]), saved["config"], saved["optimizer"]
