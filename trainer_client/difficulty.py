"""Difficulty filtering: keep the training problems the starting model sometimes solves.

A problem the model always fails (or always passes) gives every group the same reward and so
no gradient (DAPO, Yu et al. 2025, §3.2 filters such prompts online; `dynamic_sampling` does
that here). Estimating each problem's pass rate once, before training, from G samples under
the starting model, and training only on problems whose rate lies in a band (e.g.
[0.1, 0.9]), spends the sampling on problems with a signal.

The estimate goes through the training sampler and reward path (`evaluate.evaluate` with the
training's temperature and reward mode); a sample passes when its reward is 1. It is cached
as one JSON file per (model, dataset, sampling settings), named by a hash of them
(`cache_key`): the model's id and the size and time of its weight files, the problems
themselves (not only the dataset's name), the samples per problem, temperature, top-p,
completion length, reward mode and seed. Problems without any scored sample (every reward
masked: the sandbox's fault, not the model's) are `unknown` and kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .data import TrainProblem
from .evaluate import ProblemOutcome
from .model import cache_dir


class DifficultyFilterError(ValueError):
    """The filter cannot be applied as configured (the message says how to fix it)."""


def samples_per_problem(config: TrainConfig) -> int:
    return config.difficulty_samples or config.group_size


def model_fingerprint(path: str) -> list[Any]:
    """(file, size, mtime) of a local model's weights and config; the name alone for a hub id."""
    folder = Path(path)
    if not folder.is_dir():
        return [path]
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json") and p.is_file())
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def problems_digest(problems: Sequence[TrainProblem]) -> str:
    digest = hashlib.sha256()
    for p in problems:
        digest.update(json.dumps([p.id, p.instruction, p.response_prefix]).encode())
        digest.update(p.problem.SerializeToString(deterministic=True))
    return digest.hexdigest()


def cache_key(config: TrainConfig, model_path: str, problems: Sequence[TrainProblem]) -> dict[str, Any]:
    """Everything the estimate depends on (module docstring)."""
    return {
        "model": config.model,
        "model_files": model_fingerprint(model_path),
        "dataset": config.dataset,
        "problems": problems_digest(problems),
        "reward_mode": config.reward_mode,
        "samples": samples_per_problem(config),
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_completion_tokens": config.max_completion_tokens,
        "seed": config.seed,
    }


def cache_path(config: TrainConfig, key: dict[str, Any]) -> Path:
    folder = Path(config.difficulty_cache_dir) if config.difficulty_cache_dir else cache_dir() / "difficulty"
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return folder / f"{name}.json"


def load_estimate(path: Path, key: dict[str, Any]) -> dict[str, ProblemOutcome] | None:
    """The cached outcomes at `path`, or None when there is none for this key."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("key") != json.loads(json.dumps(key)):  # a hash collision, or a file edited by hand
        return None
    return {i: ProblemOutcome(i, o["n"], o["c"], o.get("masked", 0)) for i, o in saved["problems"].items()}


def save_estimate(path: Path, key: dict[str, Any], outcomes: Sequence[ProblemOutcome]) -> None:
    """Written to a temporary file and renamed: never half an estimate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(f".{os.getpid()}.tmp")
    body = {"key": key, "problems": {o.id: {"n": o.n, "c": o.c, "masked": o.masked} for o in outcomes}}
    staging.write_text(json.dumps(body, indent=1))
    staging.replace(path)


@dataclass(frozen=True)
class DifficultyReport:
    band: tuple[float, float]
    samples: int
    below: int
    """Pass rate under the band (too hard): left out."""
    inside: int
    above: int
    """Pass rate over the band (too easy): left out."""
    unknown: int
    """No scored sample: kept."""
    histogram: dict[int, int]
    """Problems by number of passing samples (of `samples`)."""
    cache: Path | None = None
    cached: bool = False
    """Read from the cache rather than estimated now."""

    @property
    def kept(self) -> int:
        return self.inside + self.unknown

    def lines(self) -> list[str]:
        low, high = self.band
        total = self.below + self.inside + self.above + self.unknown
        source = f"cached in {self.cache}" if self.cached else f"estimated now, cached in {self.cache}"
        out = [
            f"difficulty of {total} problems, {self.samples} samples each ({source}):",
            f"  pass rate < {low:g} (too hard, left out): {self.below}",
            f"  {low:g} <= pass rate <= {high:g} (kept): {self.inside}",
            f"  pass rate > {high:g} (too easy, left out): {self.above}",
        ]
        if self.unknown:
            out.append(f"  no scored sample (kept): {self.unknown}")
        out.append("  problems by passing samples: " + ", ".join(f"{c}/{self.samples}: {n}" for c, n in sorted(self.histogram.items())))
        return out


def select(
    problems: Sequence[TrainProblem], outcomes: dict[str, ProblemOutcome], band: tuple[float, float], samples: int
) -> tuple[list[TrainProblem], DifficultyReport]:
    """The problems whose pass rate c/n lies in [low, high] (and those without an estimate),
    and how many fell in each band."""
    low, high = band
    kept: list[TrainProblem] = []
    counts: Counter[str] = Counter()
    histogram: Counter[int] = Counter()
    for problem in problems:
        outcome = outcomes.get(problem.id)
        if outcome is None or outcome.n == 0:
            counts["unknown"] += 1
            kept.append(problem)
            continue
        histogram[outcome.c] += 1
        rate = outcome.c / outcome.n
        where = "below" if rate < low else "above" if rate > high else "inside"
        counts[where] += 1
        if where == "inside":
            kept.append(problem)
    report = DifficultyReport(
        band=band,
        samples=samples,
        below=counts["below"],
        inside=counts["inside"],
        above=counts["above"],
        unknown=counts["unknown"],
        histogram=dict(histogram),
    )
    return kept, report
