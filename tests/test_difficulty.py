"""Difficulty filtering: the band selection and the cache by hand, then the estimate on a tiny
random model against a real reward server (`grpo-train --estimate-difficulty`, and a training
run that uses the cached filter)."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")

from safetensors.torch import load_file  # noqa: E402

from trainer_client import difficulty  # noqa: E402
from trainer_client.cli import train_main  # noqa: E402
from trainer_client.config import TrainConfig  # noqa: E402
from trainer_client.data import TrainProblem  # noqa: E402
from trainer_client.evaluate import ProblemOutcome  # noqa: E402
from trainer_client.rewards import RewardWorker  # noqa: E402
from trainer_client.trainer import GRPOTrainer  # noqa: E402

from . import trainer_fixtures  # noqa: E402
from .trainer_fixtures import tiny_config  # noqa: E402

# the shared fixtures (each module gets its own instances)
reward_server = trainer_fixtures.reward_server
tiny_model_dir = trainer_fixtures.tiny_model_dir


def fake_problems(*ids: str) -> list[TrainProblem]:
    from reward_api.types import assert_test, make_problem

    return [TrainProblem(i, f"Solve {i}.", make_problem(i, [assert_test("assert True")]), "") for i in ids]


def test_select_keeps_the_band_inclusive_and_the_unknown() -> None:
    problems = fake_problems("none", "one", "half", "most", "all", "masked", "missing")
    outcomes = {
        "none": ProblemOutcome("none", 8, 0),
        "one": ProblemOutcome("one", 8, 1),  # 0.125
        "half": ProblemOutcome("half", 8, 4),
        "most": ProblemOutcome("most", 8, 7),  # 0.875
        "all": ProblemOutcome("all", 8, 8),
        "masked": ProblemOutcome("masked", 0, 0, masked=8),
    }
    kept, report = difficulty.select(problems, outcomes, (0.125, 0.875), 8)
    assert [p.id for p in kept] == ["one", "half", "most", "masked", "missing"]  # the band's edges are in it
    assert (report.below, report.inside, report.above, report.unknown, report.kept) == (1, 3, 1, 2, 5)
    assert report.histogram == {0: 1, 1: 1, 4: 1, 7: 1, 8: 1}
    _, narrow = difficulty.select(problems, outcomes, (0.2, 0.8), 8)
    assert (narrow.below, narrow.inside, narrow.above) == (2, 1, 2)
    text = "\n".join(narrow.lines())
    assert "pass rate < 0.2 (too hard, left out): 2" in text and "0.2 <= pass rate <= 0.8 (kept): 1" in text
    assert "0/8: 1, 1/8: 1, 4/8: 1, 7/8: 1, 8/8: 1" in text


def test_the_cache_is_keyed_by_model_data_and_sampling(tmp_path: Path) -> None:
    problems = fake_problems("a", "b")
    config = TrainConfig(model=str(tmp_path), dataset="x.jsonl", difficulty_cache_dir=str(tmp_path / "cache"), group_size=4)
    key = difficulty.cache_key(config, str(tmp_path), problems)
    path = difficulty.cache_path(config, key)
    assert path.parent == tmp_path / "cache" and difficulty.load_estimate(path, key) is None
    difficulty.save_estimate(path, key, [ProblemOutcome("a", 4, 1), ProblemOutcome("b", 3, 0, masked=1)])
    assert difficulty.load_estimate(path, key) == {"a": ProblemOutcome("a", 4, 1), "b": ProblemOutcome("b", 3, 0, 1)}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    for change in ({"temperature": 0.7}, {"difficulty_samples": 8}, {"max_completion_tokens": 64}, {"seed": 1}, {"model": "other"}):
        other = TrainConfig(**{**config.to_dict(), "output_dir": config.output_dir, "difficulty_band": (), **change})  # type: ignore[arg-type]
        assert difficulty.cache_path(other, difficulty.cache_key(other, str(tmp_path), problems)) != path, change
    assert difficulty.cache_path(config, difficulty.cache_key(config, str(tmp_path), fake_problems("a", "c"))) != path
    (tmp_path / "model.safetensors").write_bytes(b"new weights")  # the model at the same path changed
    assert difficulty.cache_key(config, str(tmp_path), problems) != key


QUIET = {"tests": [{"io": {"stdin": "", "expected_stdout": ""}}]}  # an empty answer passes: ~1/3 of the tiny model's
NEVER = {"tests": [{"io": {"stdin": "", "expected_stdout": "no random program prints this\n"}}]}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rows = [{"id": f"quiet-{i}", "prompt": f"Quiet {i}.", **QUIET} for i in range(4)]
    rows += [{"id": f"never-{i}", "prompt": f"Never {i}.", **NEVER} for i in range(2)]
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ScoreRequest the trainer sends."""
    requests: list[Any] = []
    submit = RewardWorker.submit

    def spy(self: RewardWorker, request: Any) -> concurrent.futures.Future[Any]:
        requests.append(request)
        return submit(self, request)

    monkeypatch.setattr(RewardWorker, "submit", spy)
    return requests


@pytest.mark.docker
def test_estimate_difficulty_reports_caches_and_trains_on_the_band(
    tiny_model_dir: Path, reward_server: str, data: Path, tmp_path: Path, sent: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "run"
    settings = [
        f"model='{tiny_model_dir}'",
        f"dataset='{data}'",
        "eval_dataset=''",
        f"output_dir='{out}'",
        f"reward_servers=['{reward_server}']",
        f"difficulty_cache_dir='{cache}'",
        "difficulty_band=[0.1, 0.9]",
        "group_size=4",
        "max_completion_tokens=12",
        "device='cpu'",
        "sampler='hf'",
        "seed=3",
        "tensorboard=false",
    ]
    argv = ["--no-progress", "--estimate-difficulty"] + [a for s in settings for a in ("--set", s)]
    assert train_main(argv) == 0
    err = capsys.readouterr().err
    assert "difficulty of 6 problems, 4 samples each (estimated now" in err
    assert not (out / "metrics.jsonl").exists()  # an estimate does not touch the run's files
    [path] = cache.iterdir()
    saved = json.loads(path.read_text())
    assert saved["key"]["samples"] == 4 and saved["key"]["temperature"] == 1.0
    outcomes = saved["problems"]
    assert sorted(outcomes) == sorted(f"{k}-{i}" for k, n in (("quiet", 4), ("never", 2)) for i in range(n))
    assert all(o["n"] + o["masked"] == 4 and 0 <= o["c"] <= o["n"] for o in outcomes.values())
    assert outcomes["never-0"]["c"] == outcomes["never-1"]["c"] == 0
    # the same sampler and reward path as training: G completions per request, the training's mode
    assert len(sent) == 6 and all(len(r.completions) == 4 for r in sent)
    in_band = {i for i, o in outcomes.items() if o["n"] and 0.1 <= o["c"] / o["n"] <= 0.9}
    assert in_band and in_band <= {f"quiet-{i}" for i in range(4)}  # (for this seed) some quiet problems are in the band
    below = sum(o["c"] / o["n"] < 0.1 for o in outcomes.values())
    assert f"pass rate < 0.1 (too hard, left out): {below}" in err
    assert f"0.1 <= pass rate <= 0.9 (kept): {len(in_band)}" in err

    # Again: read from the cache, nothing sampled.
    sent.clear()
    assert train_main(argv) == 0
    assert "(cached in" in capsys.readouterr().err and sent == []

    # Training with the band uses the cached filter and only ever samples problems in it.
    config = TrainConfig.load(None, settings + ["max_steps=1", "prompts_per_step=2"])
    GRPOTrainer(config, progress=False).train()
    assert sent and all(r.request_id.startswith("step") for r in sent)
    assert {r.problem.id for r in sent} <= in_band

    # A resumed run cannot estimate for the starting model: it says how to fix that.
    path.unlink()
    resumed = TrainConfig.load(None, settings + ["max_steps=2", "prompts_per_step=2", "resume_from='latest'"])
    with pytest.raises(difficulty.DifficultyFilterError, match="--estimate-difficulty"):
        GRPOTrainer(resumed, progress=False).train()


@pytest.mark.docker
def test_the_estimate_leaves_the_training_random_stream_alone(tiny_model_dir: Path, reward_server: str, data: Path, tmp_path: Path) -> None:
    """A band that keeps every problem trains exactly as no band at all, although the estimate
    sampled from the same generator first."""
    runs = {}
    for name, band in (("plain", ()), ("band", (0.0, 1.0))):
        config = tiny_config(
            tiny_model_dir,
            data,
            tmp_path / name,
            eval_dataset="",
            tensorboard=False,
            reward_servers=(reward_server,),
            max_steps=1,
            group_size=4,
            difficulty_band=band,
            difficulty_cache_dir=str(tmp_path / "cache"),
        )
        GRPOTrainer(config, progress=False).train()
        runs[name] = load_file(str(tmp_path / name / "checkpoints/step-000001/model.safetensors"))
    assert list((tmp_path / "cache").iterdir())  # the estimate did run
    assert all(torch.equal(runs["plain"][k], runs["band"][k]) for k in runs["plain"])
