"""Dynamic sampling (DAPO) on a tiny random model against a real reward server: groups without
reward variance are resampled, the cap on rounds holds, and the reported reward counts every
group sampled, not only the ones kept for the update."""

from __future__ import annotations

import concurrent.futures
import json
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")

from reward_api.types import GroupScore  # noqa: E402
from trainer_client.rewards import RewardWorker  # noqa: E402
from trainer_client.trainer import GRPOTrainer  # noqa: E402
from trainer_client.update import UpdateResult  # noqa: E402

from . import trainer_fixtures  # noqa: E402
from .trainer_fixtures import tiny_config  # noqa: E402

# the shared fixtures (each module gets its own instances)
reward_server = trainer_fixtures.reward_server
tiny_model_dir = trainer_fixtures.tiny_model_dir

pytestmark = [pytest.mark.docker]

QUIET = {"tests": [{"io": {"stdin": "", "expected_stdout": ""}}]}  # an empty answer passes: ~1/3 of the tiny model's
NEVER = {"tests": [{"io": {"stdin": "", "expected_stdout": "no random program prints this\n"}}]}  # every group fails


def problems(path: Path, **kinds: int) -> Path:
    rows = [
        {"id": f"{kind}-{i}", "prompt": f"Problem {kind} {i}.", **(QUIET if kind == "quiet" else NEVER)}
        for kind, count in kinds.items()
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def scored(monkeypatch: pytest.MonkeyPatch) -> dict[str, concurrent.futures.Future[GroupScore]]:
    """Every group the trainer sends to the reward server, by request id."""
    sent: dict[str, concurrent.futures.Future[GroupScore]] = {}
    submit = RewardWorker.submit

    def spy(self: RewardWorker, request: Any) -> concurrent.futures.Future[GroupScore]:
        sent[request.request_id] = future = submit(self, request)
        return future

    monkeypatch.setattr(RewardWorker, "submit", spy)
    return sent


def rewards_of_step(sent: dict[str, concurrent.futures.Future[GroupScore]], step: int) -> list[list[float]]:
    """The rewards of every group sampled in step `step` (0-based, as in the request ids)."""
    groups = [f.result() for rid, f in sorted(sent.items()) if rid.startswith(f"step{step}-")]
    return [[r.reward for r in g.results if r.reward is not None] for g in groups]


def metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_groups_without_variance_are_resampled_and_the_reward_counts_them(
    tiny_model_dir: Path, reward_server: str, tmp_path: Path, scored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    updates: list[tuple[int, torch.Tensor]] = []
    update = GRPOTrainer._update

    def spy_update(self: GRPOTrainer, batch: Any, advantages: torch.Tensor, keep: torch.Tensor, *rest: Any) -> UpdateResult:
        updates.append((self.state.step, advantages[keep]))
        return update(self, batch, advantages, keep, *rest)

    monkeypatch.setattr(GRPOTrainer, "_update", spy_update)
    config = tiny_config(
        tiny_model_dir,
        problems(tmp_path / "mixed.jsonl", quiet=3, never=3),
        tmp_path / "run",
        eval_dataset="",
        tensorboard=False,
        reward_servers=(reward_server,),
        group_size=3,
        prompts_per_step=2,
        max_steps=3,
        dynamic_sampling=True,
        dynamic_sampling_oversample=1.0,  # each round samples exactly the groups still missing
        dynamic_sampling_max_tries=10,
    )
    GRPOTrainer(config, progress=False).train()
    records = metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2, 3]
    resampled = differs = 0
    for step, record in enumerate(records):
        groups = rewards_of_step(scored, step)
        assert record["dynamic_sampling/groups_sampled"] == len(groups)
        assert record["dynamic_sampling/groups_kept"] == 2 and record["dynamic_sampling/capped"] == 0
        with_signal = [g for g in groups if len(set(g)) > 1]
        assert len(with_signal) == 2  # sampling stopped as soon as two groups had a signal
        without = len(groups) - len(with_signal)
        assert record["frac_reward_zero_std"] == pytest.approx(without / len(groups))
        assert record["dynamic_sampling/sampled_per_kept"] == pytest.approx(len(groups) / 2)
        # The reported reward: every sampled group, not only the kept ones.
        every = [r for g in groups for r in g]
        assert record["reward"] == pytest.approx(sum(every) / len(every))
        kept_mean = sum(r for g in with_signal for r in g) / sum(len(g) for g in with_signal)
        differs += not math.isclose(record["reward"], kept_mean)
        resampled += len(groups) > 2
        # Each sampled group is logged with its mean reward and whether the update used it.
        logged = record["groups"]
        assert [g["reward"] for g in logged] == [pytest.approx(sum(g) / len(g)) for g in groups]
        assert [g["kept"] for g in logged] == [len(set(g)) > 1 for g in groups]
        assert all(g["problem"].startswith(("quiet", "never")) for g in logged), logged
    assert resampled >= 1 and differs >= 1  # (for this seed) some steps needed more rounds
    # Only the groups with a signal reached the update: 2 groups x 3 rows, each with an advantage.
    assert [step for step, _ in updates] == [0, 1, 2]
    assert all(len(adv) == 6 and bool((adv != 0).all()) for _, adv in updates)


def test_the_cap_on_rounds_holds(tiny_model_dir: Path, reward_server: str, tmp_path: Path, scored: dict[str, Any]) -> None:
    """No group ever has a signal: each step samples exactly max_tries rounds, trains on nothing,
    and still reports the reward of everything it sampled."""
    config = tiny_config(
        tiny_model_dir,
        problems(tmp_path / "never.jsonl", never=5),
        tmp_path / "run",
        train_limit=3,  # a seeded sample of 3 of the 5 problems is all the run sees
        eval_dataset="",
        tensorboard=False,
        reward_servers=(reward_server,),
        group_size=2,
        prompts_per_step=2,
        max_steps=2,
        dynamic_sampling=True,
        dynamic_sampling_oversample=1.5,  # ceil(2 x 1.5) = 3 prompts a round
        dynamic_sampling_max_tries=3,
    )
    GRPOTrainer(config, progress=False).train()
    seen: set[str] = set()
    for step, record in enumerate(metrics(tmp_path / "run")):
        assert sorted(rid for rid in scored if rid.startswith(f"step{step}-")) == [
            f"step{step}-try{t}-group{g}" for t in range(3) for g in range(3)
        ]
        assert record["dynamic_sampling/tries"] == 3 and record["dynamic_sampling/groups_sampled"] == 9
        assert record["dynamic_sampling/groups_kept"] == 0 and record["dynamic_sampling/capped"] == 1
        assert record["dynamic_sampling/sampled_per_kept"] is None
        assert record["update_skipped"] == 1 and record["reward"] == 0.0 and record["frac_reward_zero_std"] == 1.0
        seen.update(g["problem"] for g in record["groups"])
    assert len(seen) == 3 and seen <= {f"never-{i}" for i in range(5)}
