"""Data-parallel training on torch.distributed: N ranks (`torchrun --nproc-per-node N`), each
sampling and scoring its share of a step's prompts, one update that is the update one process
would make on the whole global batch.

How the update stays exactly the one-process update (tests/test_distributed.py checks it):

- A group never spans ranks, so group advantages are local; `std_scaling = "batch"` takes the
  std over the global batch (`World.sum` of the sums, then of the squared deviations).
- The loss normaliser is global: each micro-batch's loss is scaled by its share of the sum
  over all ranks (`update.micro_batch_weight`), so the rank-local gradients add up to the
  gradient of the whole batch.
- The policy is wrapped in torch's DistributedDataParallel (`World.wrap`): the micro-batches
  of an optimizer pass run under `no_sync` but the last, whose backward all-reduces the
  gradients (DDP's buckets, overlapped with the backward). DDP averages over the ranks, so
  each rank's loss is scaled by the world size: the gradients add up to the whole batch's.
  Every rank clips the same norm and takes the same step. A rank without a row with a signal
  runs one backward of a zero loss, so that its all-reduce meets the others'.

Rank 0 alone logs, evaluates, plots and checkpoints; the weights, the optimizer state and the
data position are the same on every rank, so a checkpoint resumes with any world size.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training ranks; `size == 1`: one process, no collective."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """The rank that logs, evaluates and saves."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "cpu", timeout_s: float = 1800.0) -> World:
        """The world torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), its
        process group started (gloo on CPU, nccl on CUDA); one process without torchrun."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return cls()
        if not dist.is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        return cls(dist.get_rank(), dist.get_world_size())

    def close(self) -> None:
        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's share of a global list: items rank, rank + size, ..."""
        return list(items[self.rank :: self.size])

    def sum(self, tensor: Tensor) -> Tensor:
        """The sum over the ranks (a new tensor; float64 on the wire for exact small counts)."""
        if self.size == 1:
            return tensor.clone()
        out = tensor.detach().to(torch.float64).clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.to(tensor.dtype)

    def sum_floats(self, *values: float) -> list[float]:
        if self.size == 1:
            return list(values)
        return [float(v) for v in self.sum(torch.tensor(values, dtype=torch.float64))]

    def extreme(self, value: float, op: str) -> float:
        """The min or max over the ranks."""
        if self.size == 1:
            return value
        out = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(out, op=dist.ReduceOp.MIN if op == "min" else dist.ReduceOp.MAX)
        return float(out)

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value` (picklable), in rank order, on every rank."""
        if self.size == 1:
            return [value]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, value)
        return out

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def wrap(self, model: torch.nn.Module) -> Any:
        """The model the update runs forward and backward through: DDP over the ranks (which
        also gives every rank rank 0's weights), the model itself for one process."""
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        # No buffer broadcast: it is a collective in every forward, and ranks run different
        # numbers of forwards (their micro-batches, the old policy's log-probs). The buffers
        # (rotary frequencies) are the same everywhere.
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)

    @staticmethod
    def accumulating(model: Any, last: bool) -> contextlib.AbstractContextManager[Any]:
        """For a backward pass of an optimizer pass: without DDP's all-reduce unless it is the
        pass's last."""
        no_sync = getattr(model, "no_sync", None)
        return contextlib.nullcontext() if last or no_sync is None else no_sync()


SINGLE = World()
