"""Where a run's numbers go: `metrics.jsonl` (one JSON object per step, TRL's metric names),
TensorBoard event files, and `training.png` (reward and held-out pass@1 over steps)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reward_api.datasets import read_jsonl

if TYPE_CHECKING:
    from .report import LearningReport


class MetricsLog:
    def __init__(self, output_dir: Path, *, tensorboard: bool = True, resume_step: int | None = None) -> None:
        """A fresh run starts a new log; a resumed one keeps the records up to `resume_step` (the
        steps after it are done again)."""
        self.path = output_dir / "metrics.jsonl"
        output_dir.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step] if resume_step is not None and self.path.exists() else []
        self._file = open(self.path, "w", encoding="utf-8")
        for record in kept:
            self._file.write(json.dumps(record) + "\n")
        self._writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(output_dir / "tensorboard"))
            except ImportError:  # tensorboard is in the trainer extra; a bare install still trains
                pass

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record, sort_keys=False) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a missing value reads as null
    return value


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(path))


def plot_run(metrics_path: Path, out_path: Path, report: LearningReport | None = None) -> Path | None:
    """Training reward (and its moving average) and held-out pass@1 against the step; with a
    `report`, the first and last quarters' mean reward and both comparisons with their CIs."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_metrics(metrics_path)
    train = [(r["step"], r["reward"]) for r in records if r.get("reward") is not None]
    evals = [(r["step"], r["eval/pass@1"]) for r in records if r.get("eval/pass@1") is not None]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    if train:
        steps, rewards = zip(*train)
        ax.plot(steps, rewards, ".", alpha=0.35, color="tab:blue", label="training reward (per step)")
        window = min(len(rewards), max(3, len(rewards) // 10))
        smooth = [sum(rewards[max(0, i - window + 1) : i + 1]) / len(rewards[max(0, i - window + 1) : i + 1]) for i in range(len(rewards))]
        ax.plot(steps, smooth, "-", color="tab:blue", label=f"training reward (mean of last {window})")
    if evals:
        steps, values = zip(*evals)
        ax.plot(steps, values, "o-", color="tab:red", label="held-out greedy pass@1")
    if report is not None and report.reward is not None:
        q = report.reward
        for (start, end), mean, label in ((q.first_steps, q.first, "first"), (q.last_steps, q.last, "last")):
            ax.axvspan(start - 0.5, end + 0.5, color="tab:blue", alpha=0.08)
            ax.hlines(mean, start - 0.5, end + 0.5, colors="tab:blue", linestyles="--", label=f"{label} quarter mean {mean:.3f}")
    notes = "\n".join(_wrap(line) for line in report.lines()) if report is not None else ""
    ax.set_xlabel("step")
    ax.set_ylabel("reward / pass@1")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(metrics_path.parent.name)
    if notes:
        fig.text(0.01, 0.01, notes, va="bottom", ha="left", fontsize=7.5, family="monospace")
        fig.tight_layout(rect=(0, 0.04 + 0.025 * notes.count("\n"), 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)
    return out_path


def _wrap(line: str, width: int = 125) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(line, width, subsequent_indent="    "))
