"""Data-parallel GRPO on torch.distributed (gloo, CPU): two ranks, each with half of a step's
groups, end the update with exactly the weights one process gets from the whole global batch,
for each loss aggregation and std scaling, with μ = 2, β > 0 and gradient clipping, and when
one rank holds no row with a signal; and the trainer under torchrun, rank 0 alone writing, its
checkpoints resumed with another world size."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
transformers = pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")

from trainer_client.config import LossAggregation, StdScaling, TrainConfig  # noqa: E402
from trainer_client.distributed import SINGLE, World  # noqa: E402
from trainer_client.grpo import group_advantages  # noqa: E402
from trainer_client.policy import make_batch  # noqa: E402
from trainer_client.sampling import Completion  # noqa: E402
from trainer_client.trainer import GRPOTrainer  # noqa: E402
from trainer_client.update import UpdateResult, grpo_update  # noqa: E402

from .helpers import tiny_llama  # noqa: E402

G = 3
REWARDS = {  # [groups, G]: groups 0 and 2 go to rank 0, 1 and 3 to rank 1
    "signal on both ranks": [[1.0, 0.0, 0.0], [0.5, 0.5, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.5]],
    "no signal on rank 1": [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]],
    "fewer rows on rank 1": [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.5, 0.5, 0.5]],  # so fewer micro-batches
}
PARALLELISMS = ("ddp", "fsdp")
CASES = [
    (aggregation, scaling, rewards)
    for aggregation, scaling in itertools.product(typing.get_args(LossAggregation), ("group", "batch"))
    for rewards in REWARDS
]


def completions() -> list[Completion]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for row in range(len(REWARDS["signal on both ranks"]) * G):
        prompt, completion = 3 + row % 4, 2 + (row * 5) % 7
        ids = torch.randint(3, 60, (prompt + completion,), generator=generator).tolist()
        out.append(Completion(tuple(ids[:prompt]), tuple(ids[prompt:]), "", None, truncated=False))
    return out


def one_step(
    world: World, aggregation: LossAggregation, scaling: StdScaling, rewards_name: str, parallelism: str = "ddp", tied: bool = False
) -> tuple[torch.Tensor, UpdateResult]:
    """This rank's update on its share of the groups, from the same starting weights (`tied`:
    the head shares the embedding's weights, as SmolLM2's does)."""
    torch.manual_seed(0)
    model = tiny_llama(64, tie_word_embeddings=tied)
    names = [name for name, _ in model.named_parameters()]
    total = sum(p.numel() for p in model.parameters())
    trained = world.wrap(model, parallelism)  # FSDP shards it in place: the optimizer takes the shards
    if parallelism == "fsdp" and world.size > 1:  # each rank holds about its half of the weights
        assert world.sharded(trained) and sum(p.to_local().numel() for p in trained.parameters()) <= 0.55 * total
    torch.manual_seed(1)
    ref_model = tiny_llama(64).requires_grad_(False)
    config = TrainConfig(
        loss_aggregation=aggregation,
        std_scaling=scaling,
        micro_batch_tokens=20,
        max_completion_tokens=8,
        beta=0.1,
        temperature=0.7,
        updates_per_batch=2,
        max_grad_norm=0.05,  # small enough to clip: the norm must be the global one
    )
    # SGD: the step is linear in the gradient (Adam's division by √v would magnify float noise in
    # near-zero coordinates, where the sums run in another order on two ranks).
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    groups = world.share(range(len(REWARDS[rewards_name])))
    rewards = torch.tensor(REWARDS[rewards_name])[groups]
    advantages = group_advantages(rewards, scaling, world=world)
    rows = completions()
    batch = make_batch([rows[g * G + j] for g in groups for j in range(G)], 0)
    keep = advantages.valid.flatten().nonzero().flatten()
    result = grpo_update(
        batch, advantages.values.flatten(), keep, model=trained, optimizer=optimizer, scheduler=scheduler,
        ref_model=ref_model, config=config, device="cpu", world=world,
    )
    weights = world.full_weights(trained)
    return torch.cat([weights[name].detach().flatten() for name in names]), result


def rank_main(rank: int, size: int, port: int, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size))
    torch.set_num_threads(1)
    world = World.from_env()
    try:
        results = {(parallelism, *case): one_step(world, *case, parallelism) for parallelism in PARALLELISMS for case in CASES}
        results[("fsdp-tied", *CASES[0])] = one_step(world, *CASES[0], "fsdp", tied=True)
        torch.save({case: (weights, result.loss, result.grad_norm) for case, (weights, result) in results.items()}, Path(out) / f"rank{rank}.pt")
    finally:
        world.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[Any, Any]]:
    out = tmp_path_factory.mktemp("ranks")
    torch.multiprocessing.spawn(rank_main, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return {rank: torch.load(out / f"rank{rank}.pt") for rank in (0, 1)}


@pytest.mark.parametrize("parallelism", PARALLELISMS)
@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_two_ranks_take_the_step_one_process_takes_on_the_global_batch(
    two_ranks: dict[int, dict[Any, Any]], case: tuple[Any, ...], parallelism: str
) -> None:
    """DDP, and FSDP2 (weights, gradients and optimizer state sharded over the two ranks)."""
    torch.set_num_threads(1)
    weights, result = one_step(SINGLE, *case)
    for rank in (0, 1):
        rank_weights, loss, grad_norm = two_ranks[rank][(parallelism, *case)]
        assert torch.allclose(rank_weights, weights, rtol=0, atol=2e-6), (rank, float((rank_weights - weights).abs().max()))
        assert loss == pytest.approx(result.loss, rel=1e-5, abs=1e-7) and grad_norm == pytest.approx(result.grad_norm, rel=1e-5)
    assert torch.equal(two_ranks[0][(parallelism, *case)][0], two_ranks[1][(parallelism, *case)][0])  # and the ranks agree bit for bit
    torch.manual_seed(0)
    start = torch.cat([p.detach().flatten() for p in tiny_llama(64).parameters()])
    assert not torch.allclose(weights, start)  # the step moved the weights


def test_fsdp_keeps_a_tied_head_tied_and_takes_the_one_process_step(two_ranks: dict[int, dict[Any, Any]]) -> None:
    torch.set_num_threads(1)
    weights, result = one_step(SINGLE, *CASES[0], tied=True)
    for rank in (0, 1):
        rank_weights, loss, _ = two_ranks[rank][("fsdp-tied", *CASES[0])]
        assert torch.allclose(rank_weights, weights, rtol=0, atol=2e-6) and loss == pytest.approx(result.loss, rel=1e-5)


def test_one_rank_shares_and_sums_as_one_process() -> None:
    assert SINGLE.share(range(5)) == [0, 1, 2, 3, 4] and World(1, 2).share(range(5)) == [1, 3]
    assert SINGLE.sum_floats(1.5, 2.0) == [1.5, 2.0] and SINGLE.gather("x") == ["x"] and SINGLE.main


# -- the trainer under torchrun ---------------------------------------------------------------------

from . import trainer_fixtures  # noqa: E402

problems_file = trainer_fixtures.problems_file
reward_server = trainer_fixtures.reward_server
tiny_model_dir = trainer_fixtures.tiny_model_dir


def torchrun(nproc: int, config: dict[str, Any], tmp_path: Path, flag: bool = False) -> subprocess.CompletedProcess[str]:
    """`torchrun ... -m trainer_client.cli`, or with `flag` `grpo-train --nproc N` (which runs it)."""
    import sys

    path = tmp_path / f"run-{len(list(tmp_path.glob('run-*.toml')))}.toml"
    path.write_text("[train]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in config.items()))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port", str(free_port()), "-m", "trainer_client.cli"]
    command = [str(Path(sys.executable).parent / "grpo-train"), "--nproc", str(nproc)] if flag else launcher
    command += ["--config", str(path), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.docker
def test_two_ranks_train_rank_zero_writes_and_checkpoints_resume_in_another_world_size(
    tiny_model_dir: Path, problems_file: Path, reward_server: str, tmp_path: Path
) -> None:
    out = tmp_path / "two"
    base = dict(
        model=str(tiny_model_dir), dataset=str(problems_file), eval_dataset=str(problems_file), eval_limit=2,
        group_size=4, prompts_per_step=2, max_completion_tokens=8, learning_rate=1e-2, max_steps=2, seed=3,
        device="cpu", sampler="hf", reward_servers=[reward_server], save_every=1, tensorboard=False,
    )
    done = torchrun(2, {**base, "output_dir": str(out)}, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]  # once each: rank 0 alone logs
    for record in records[1:]:
        assert len(record["groups"]) == 2 and record["update_skipped"] == 0  # one group from each rank, in the global metrics
        assert record["num_tokens"] > 0 and record["grad_norm"] > 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000001", "step-000002"]
    assert done.stderr.count("step 2/2") == 1 and done.stderr.count("grpo-train: done") == 1  # rank 0 reports

    # A 2-rank checkpoint goes on in 1 rank, and a 1-rank one in 2 ranks: the same state on every rank.
    one = tmp_path / "one"
    single = GRPOTrainer(
        TrainConfig.from_dict({**base, "output_dir": one, "eval_dataset": "", "max_steps": 3, "resume_from": str(out / "checkpoints/step-000002")}),
        progress=False,
    ).train()
    assert single.steps == 3 and (one / "checkpoints/step-000003").is_dir()
    back = torchrun(2, {**base, "output_dir": str(tmp_path / "back"), "eval_dataset": "", "max_steps": 4, "resume_from": str(one / "checkpoints/step-000003")}, tmp_path, flag=True)
    assert back.returncode == 0, back.stderr[-3000:]
    assert [json.loads(line)["step"] for line in (tmp_path / "back" / "metrics.jsonl").read_text().splitlines()] == [4]


@pytest.mark.docker
def test_fsdp_ranks_train_as_ddp_ranks_and_their_checkpoints_resume_in_any_world(
    tiny_model_dir: Path, problems_file: Path, reward_server: str, tmp_path: Path
) -> None:
    """parallelism = "fsdp": the trained weights, gradients and optimizer state sharded over two
    ranks, sampling from a whole copy refreshed after each step. Two steps end with the weights
    and optimizer state two DDP ranks end with (step 2 samples from the weights step 1 made:
    a copy not refreshed would sample other completions); the checkpoint, gathered from the
    shards, goes on in one process, and one process's goes on sharded."""
    from safetensors.torch import load_file

    base = dict(
        model=str(tiny_model_dir), dataset=str(problems_file), eval_dataset="", group_size=4, prompts_per_step=2,
        max_completion_tokens=8, learning_rate=1e-2, max_steps=2, seed=3, device="cpu", sampler="hf",
        reward_servers=[reward_server], save_every=1, tensorboard=False,
    )
    runs = {name: tmp_path / name for name in ("ddp", "fsdp")}
    for name, out in runs.items():
        done = torchrun(2, {**base, "output_dir": str(out), "parallelism": name}, tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    metrics = {name: [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] for name, out in runs.items()}
    assert [m["reward"] for m in metrics["fsdp"]] == [m["reward"] for m in metrics["ddp"]]
    assert [m["loss"] for m in metrics["fsdp"]] == pytest.approx([m["loss"] for m in metrics["ddp"]], rel=1e-4, abs=1e-6)
    weights = {name: load_file(out / "checkpoints/step-000002/model.safetensors") for name, out in runs.items()}
    start = load_file(tiny_model_dir / "model.safetensors")
    assert weights["fsdp"].keys() == weights["ddp"].keys()
    for key, value in weights["ddp"].items():
        assert torch.allclose(weights["fsdp"][key], value, rtol=1e-4, atol=1e-5), key
    assert any(not torch.equal(value, start[key]) for key, value in weights["fsdp"].items())  # it trained
    states = {name: torch.load(out / "checkpoints/step-000002/trainer_state.pt", weights_only=False)["optimizer"] for name, out in runs.items()}
    assert states["fsdp"]["state"].keys() == states["ddp"]["state"].keys()
    for index, moments in states["ddp"]["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.allclose(states["fsdp"]["state"][index][name], moments[name], rtol=1e-3, atol=1e-7), (index, name)

    one = tmp_path / "one"
    single = GRPOTrainer(
        TrainConfig.from_dict({**base, "output_dir": one, "max_steps": 3, "resume_from": str(runs["fsdp"] / "checkpoints/step-000002")}),
        progress=False,
    ).train()
    assert single.steps == 3 and (one / "checkpoints/step-000003").is_dir()
    back = tmp_path / "back"
    config = {**base, "output_dir": str(back), "parallelism": "fsdp", "max_steps": 4, "resume_from": str(one / "checkpoints/step-000003")}
    done = torchrun(2, config, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [json.loads(line)["step"] for line in (back / "metrics.jsonl").read_text().splitlines()] == [4]
