"""Data-parallel GRPO on torch.distributed (gloo, CPU): two ranks, each with half of a step's
groups, end the update with exactly the weights one process gets from the whole global batch,
for each loss aggregation and std scaling, with μ = 2, β > 0 and gradient clipping, and when
one rank holds no row with a signal."""

from __future__ import annotations

import itertools
import socket
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
from trainer_client.update import UpdateResult, grpo_update  # noqa: E402

from .helpers import tiny_llama  # noqa: E402

G = 3
REWARDS = {  # [groups, G]: groups 0 and 2 go to rank 0, 1 and 3 to rank 1
    "signal on both ranks": [[1.0, 0.0, 0.0], [0.5, 0.5, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.5]],
    "no signal on rank 1": [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]],
}
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


def one_step(world: World, aggregation: LossAggregation, scaling: StdScaling, rewards_name: str) -> tuple[torch.Tensor, UpdateResult]:
    """This rank's update on its share of the groups, from the same starting weights."""
    torch.manual_seed(0)
    model = tiny_llama(64)
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
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    groups = world.share(range(len(REWARDS[rewards_name])))
    rewards = torch.tensor(REWARDS[rewards_name])[groups]
    advantages = group_advantages(rewards, scaling, world=world)
    rows = completions()
    batch = make_batch([rows[g * G + j] for g in groups for j in range(G)], 0)
    keep = advantages.valid.flatten().nonzero().flatten()
    result = grpo_update(
        batch, advantages.values.flatten(), keep, model=model, optimizer=optimizer, scheduler=scheduler,
        ref_model=ref_model, config=config, device="cpu", world=world,
    )
    return torch.cat([p.detach().flatten() for p in model.parameters()]), result


def rank_main(rank: int, size: int, port: int, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size))
    torch.set_num_threads(1)
    world = World.from_env()
    try:
        results = {case: one_step(world, *case) for case in CASES}
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


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_two_ranks_take_the_step_one_process_takes_on_the_global_batch(two_ranks: dict[int, dict[Any, Any]], case: tuple[Any, ...]) -> None:
    torch.set_num_threads(1)
    weights, result = one_step(SINGLE, *case)
    for rank in (0, 1):
        rank_weights, loss, grad_norm = two_ranks[rank][case]
        assert torch.allclose(rank_weights, weights, rtol=0, atol=2e-6), (rank, float((rank_weights - weights).abs().max()))
        assert loss == pytest.approx(result.loss, rel=1e-5, abs=1e-7) and grad_norm == pytest.approx(result.grad_norm, rel=1e-5)
    assert torch.equal(two_ranks[0][case][0], two_ranks[1][case][0])  # and the ranks agree bit for bit
    torch.manual_seed(0)
    start = torch.cat([p.detach().flatten() for p in tiny_llama(64).parameters()])
    assert not torch.allclose(weights, start)  # the step moved the weights


def test_one_rank_shares_and_sums_as_one_process() -> None:
    assert SINGLE.share(range(5)) == [0, 1, 2, 3, 4] and World(1, 2).share(range(5)) == [1, 3]
    assert SINGLE.sum_floats(1.5, 2.0) == [1.5, 2.0] and SINGLE.gather("x") == ["x"] and SINGLE.main
