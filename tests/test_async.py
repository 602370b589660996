"""Asynchronous GRPO (trainer_client/asynchronous.py): the thread that samples the next steps
from a copy of the policy stays within max_staleness; with max_staleness = 0 the run is the
synchronous run bit for bit; with 1 every sample is at most one step stale and corrected."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")

from safetensors.torch import load_file  # noqa: E402

from trainer_client.asynchronous import AheadSampler  # noqa: E402
from trainer_client.config import TrainConfig  # noqa: E402
from trainer_client.trainer import GRPOTrainer  # noqa: E402

from . import trainer_fixtures  # noqa: E402
from .trainer_fixtures import tiny_config  # noqa: E402

problems_file = trainer_fixtures.problems_file
reward_server = trainer_fixtures.reward_server
tiny_model_dir = trainer_fixtures.tiny_model_dir


def _models() -> tuple[torch.nn.Linear, torch.nn.Linear]:
    policy = torch.nn.Linear(1, 1, bias=False)
    behaviour = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        policy.weight.fill_(0.0)
        behaviour.weight.fill_(-1.0)
    return policy, behaviour


def _train(ahead: AheadSampler[float], policy: torch.nn.Linear, steps: int) -> list[tuple[int, float, int]]:
    """The trainer's side: take each step, 'train' (the weight becomes the version), publish."""
    seen = []
    for step in range(steps):
        got = ahead.take(step)
        seen.append((got.step, got.value, got.version))
        with torch.no_grad():
            policy.weight.fill_(float(step + 1))
        ahead.publish(step + 1)
    return seen


@pytest.mark.parametrize("max_staleness", [0, 1, 2])
def test_each_step_is_sampled_from_weights_at_most_max_staleness_behind(max_staleness: int) -> None:
    policy, behaviour = _models()
    started = threading.Event()

    def sample(step: int) -> float:
        started.set()
        return float(behaviour.weight.item())  # the weights it generates from

    with AheadSampler(policy, behaviour, sample, first_step=0, last_step=6, max_staleness=max_staleness) as ahead:
        assert started.wait(10)  # step 0 needs no update: it starts at once
        seen = _train(ahead, policy, 6)
    assert [s for s, _, _ in seen] == list(range(6))
    for step, weight, version in seen:
        assert weight == version  # sampled from the staged copy of exactly that version
        assert 0 <= step - version <= max_staleness
    if max_staleness == 0:
        assert [version for _, _, version in seen] == list(range(6))


def test_with_staleness_one_the_next_step_is_sampled_while_this_one_trains() -> None:
    policy, behaviour = _models()
    sampled_one = threading.Event()

    def sample(step: int) -> float:
        if step == 1:
            sampled_one.set()
        return float(behaviour.weight.item())

    with AheadSampler(policy, behaviour, sample, first_step=0, last_step=2, max_staleness=1) as ahead:
        first = ahead.take(0)
        assert sampled_one.wait(10)  # before step 0 has published anything
        ahead.publish(1)
        second = ahead.take(1)
    assert (first.version, first.staleness) == (0, 0)
    assert (second.version, second.staleness, second.value) == (0, 1, 0.0)


def test_staleness_zero_waits_for_the_update_before_sampling() -> None:
    policy, behaviour = _models()
    sampled: list[int] = []

    def sample(step: int) -> float:
        sampled.append(step)
        return 0.0

    with AheadSampler(policy, behaviour, sample, first_step=0, last_step=3, max_staleness=0) as ahead:
        ahead.take(0)
        threading.Event().wait(0.3)
        assert sampled == [0]  # step 1 waits for step 0's weights
        ahead.publish(1)
        assert ahead.take(1).version == 1


def test_a_failing_sampler_reaches_the_trainer_and_closing_stops_the_thread() -> None:
    policy, behaviour = _models()

    def sample(step: int) -> float:
        raise OSError("the reward server went away")

    ahead = AheadSampler(policy, behaviour, sample, first_step=0, last_step=3, max_staleness=1)
    with pytest.raises(RuntimeError, match="sampling thread failed before step 0: the reward server went away"):
        ahead.take(0)
    ahead.close()
    assert not ahead._thread.is_alive()

    waiting = AheadSampler(policy, behaviour, lambda step: 0.0, first_step=0, last_step=5, max_staleness=0)
    waiting.take(0)
    waiting.close()  # the thread waits for step 0's weights: closing wakes it
    assert not waiting._thread.is_alive()


def test_max_staleness_without_async_sampling_or_with_vllm_is_refused() -> None:
    with pytest.raises(ValueError, match="max_staleness=1 applies with async_sampling = true"):
        TrainConfig(max_staleness=1)
    with pytest.raises(ValueError, match="max_staleness=-1 must be >= 0"):
        TrainConfig(async_sampling=True, max_staleness=-1)
    with pytest.raises(ValueError, match='set sampler = "hf"'):
        TrainConfig(async_sampling=True, sampler="vllm")


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if json.loads(line)["step"] > 0]


@pytest.mark.docker
def test_async_with_staleness_zero_is_the_synchronous_run_bit_for_bit(
    tiny_model_dir: Path, problems_file: Path, reward_server: str, tmp_path: Path
) -> None:
    common = dict(reward_servers=(reward_server,), eval_dataset="", max_steps=3, tensorboard=False, save_every=1)
    sync = tiny_config(tiny_model_dir, problems_file, tmp_path / "sync", **common)
    asynchronous = tiny_config(tiny_model_dir, problems_file, tmp_path / "async", async_sampling=True, max_staleness=0, **common)
    assert GRPOTrainer(sync, progress=False).train().steps == 3
    assert GRPOTrainer(asynchronous, progress=False).train().steps == 3
    a = load_file(str(tmp_path / "sync/checkpoints/step-000003/model.safetensors"))
    b = load_file(str(tmp_path / "async/checkpoints/step-000003/model.safetensors"))
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    assert any(not torch.equal(start[k], a[k]) for k in a)  # it trained
    assert all(torch.equal(a[k], b[k]) for k in a)
    for x, y in zip(_records(tmp_path / "sync"), _records(tmp_path / "async"), strict=True):
        assert (x["reward"], x["loss"], x["grad_norm"]) == (y["reward"], y["loss"], y["grad_norm"])
        assert y["async/staleness"] == 0

    # Resumed from step 1, the asynchronous run replays steps 2 and 3 bit for bit (the checkpoint's
    # random state is the one before step 2's sampling, not one from inside it).
    resumed = replace(asynchronous, output_dir=tmp_path / "resumed", resume_from=str(tmp_path / "async/checkpoints/step-000001"))
    assert GRPOTrainer(resumed, progress=False).train().steps == 3
    again = load_file(str(tmp_path / "resumed/checkpoints/step-000003/model.safetensors"))
    assert all(torch.equal(a[k], again[k]) for k in a)


@pytest.mark.docker
def test_async_with_staleness_one_trains_on_samples_at_most_one_step_stale(
    tiny_model_dir: Path, problems_file: Path, reward_server: str, tmp_path: Path
) -> None:
    config = tiny_config(
        tiny_model_dir,
        problems_file,
        tmp_path / "async",
        reward_servers=(reward_server,),
        eval_dataset="",
        max_steps=3,
        tensorboard=False,
        async_sampling=True,
        max_staleness=1,
        save_every=1,
    )
    assert GRPOTrainer(config, progress=False).train().steps == 3
    records = _records(tmp_path / "async")
    assert [r["async/staleness"] for r in records][0] == 0  # nothing to be stale against yet
    assert all(0 <= r["async/staleness"] <= 1 for r in records)
    assert all(r["update_skipped"] == 0 for r in records)
    # samples behind the policy are weighted by π_old/π_behaviour (the thread's log-probs)
    assert all("sampling/importance_sampling_ratio/mean" in r for r in records)
    stale = [r for r in records if r["async/staleness"] == 1]
    assert stale and all(r["sampling/importance_sampling_ratio/mean"] != 1.0 for r in stale)
    # a checkpoint records where training is in the data, not where the thread got to
    saved = torch.load(tmp_path / "async/checkpoints/step-000001/trainer_state.pt", weights_only=False)
    assert saved["state"]["data_position"] == config.prompts_per_step


def test_tied_weights_are_staged_once_and_reach_both_ends_of_the_copy() -> None:
    import copy

    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(4, 2)
            self.head = torch.nn.Linear(2, 4, bias=False)
            self.head.weight = self.embed.weight

    policy = Tied()
    behaviour = copy.deepcopy(policy)
    assert behaviour.head.weight is behaviour.embed.weight  # deepcopy keeps the tie
    with AheadSampler(policy, behaviour, lambda step: behaviour.head.weight.clone(), first_step=0, last_step=2, max_staleness=0) as ahead:
        assert len(ahead._staged) == 1
        ahead.take(0)
        with torch.no_grad():
            policy.embed.weight.fill_(7.0)
        ahead.publish(1)
        assert torch.equal(ahead.take(1).value, torch.full((4, 2), 7.0))
