"""The trainer's config: defaults valid, bad combinations refused with the fix, TOML + --set."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_client.config import TrainConfig


def test_defaults_are_valid_and_round_trip() -> None:
    config = TrainConfig()
    assert TrainConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "extra"}) == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"group_size": 1}, "group_size=1: GRPO compares completions within a group"),
        ({"epsilon_high": 1.5}, "epsilon_high=1.5 must be in (0, 1)"),
        ({"beta": -0.1}, "beta=-0.1 must be >= 0"),
        ({"temperature": 0.0}, "temperature=0.0 must be positive"),
        ({"sampler": "tgi"}, "sampler='tgi': choose one of auto, hf, vllm"),
        ({"loss_aggregation": "sum"}, "choose one of sequence-mean, token-mean, constant"),
        ({"prompts_per_step": 3, "grad_accumulation": 2}, "must be divisible by grad_accumulation=2"),
        ({"dynamic_sampling_max_tries": 0}, "dynamic_sampling_max_tries=0 must be at least 1"),
        ({"dynamic_sampling_oversample": 0.5}, "dynamic_sampling_oversample=0.5 must be >= 1"),
        ({"difficulty_band": (0.9, 0.1)}, "difficulty_band=[0.9, 0.1] must be [low, high] with 0 <= low <= high <= 1"),
        ({"difficulty_band": (0.1,)}, "difficulty_band=[0.1] must be [low, high]"),
        ({"difficulty_band": (0.0, 1.5)}, "must be [low, high] with 0 <= low <= high <= 1"),
        ({"difficulty_samples": 1}, "difficulty_samples=1 must be 0 (group_size) or at least 2"),
        ({"train_limit": -1}, "train_limit=-1 must be >= 0"),
        ({"policy_loss": "ppo"}, "policy_loss='ppo': choose one of ppo-clip, gspo, cispo"),
        ({"delta": 1.1, "epsilon_high": 0.28}, "delta=1.1 must be 0 (off) or above 1 + epsilon_high = 1.28"),
        ({"delta": 2.0, "policy_loss": "cispo"}, "cispo clips its weights itself"),
        ({"parallelism": "zero3"}, "parallelism='zero3': choose one of ddp, fsdp"),
    ],
)
def test_bad_values_are_refused_with_the_reason(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        TrainConfig(**overrides)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as caught:
        TrainConfig(group_size=0, top_p=2.0)
    assert "group_size=0" in str(caught.value) and "top_p=2.0" in str(caught.value)


def test_toml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[train]\ngroup_size = 8\nlearning_rate = 1e-5\nreward_servers = ["127.0.0.1:1", "127.0.0.1:2"]\noutput_dir = "out"\n\n[extra]\nnote = "x"\n'
    )
    config = TrainConfig.load(path, ["group_size=6", "sampler=vllm", "beta=0.04", "reward_mode='FRACTION'"])
    assert (config.group_size, config.learning_rate, config.sampler, config.beta, config.reward_mode) == (6, 1e-5, "vllm", 0.04, "FRACTION")
    assert config.reward_servers == ("127.0.0.1:1", "127.0.0.1:2") and config.output_dir == Path("out")
    assert config.extra == {"note": "x"}


def test_difficulty_band_from_toml_and_set(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("difficulty_band = [0.1, 0.9]\ndynamic_sampling = true\n")
    config = TrainConfig.load(path)
    assert config.difficulty_band == (0.1, 0.9) and config.dynamic_sampling
    assert TrainConfig.load(path, ["difficulty_band=[0, 1]"]).difficulty_band == (0.0, 1.0)
    assert TrainConfig.load(path, ["difficulty_band=[]"]).difficulty_band == ()
    assert TrainConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "extra"}) == config


def test_unknown_keys_name_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown config keys \\['grop_size'\\]"):
        TrainConfig.load(None, ["grop_size=4"])
    with pytest.raises(ValueError, match="expected key=value"):
        TrainConfig.load(None, ["group_size"])

