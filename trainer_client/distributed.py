"""Data-parallel training on torch.distributed: N ranks (`torchrun --nproc-per-node N`), each
sampling and scoring its share of a step's prompts, one update that is the update one process
would make on the whole global batch.

How the update stays exactly the one-process update (tests/test_distributed.py checks it):

- A group never spans ranks, so group advantages are local; `std_scaling = "batch"` takes the
  std over the global batch (`World.sum` of the sums, then of the squared deviations).
- The loss normaliser is global: each micro-batch's loss is scaled by its share of the sum
  over all ranks (`update.micro_batch_weight`), so the rank-local gradients add up to the
  gradient of the whole batch.
- After the micro-batches of an optimizer pass, the gradients are summed over the ranks
  (`all_reduce_grads`: one all-reduce of one flat buffer, the collective DDP runs) before
  clipping and the optimizer step, so every rank clips the same norm and takes the same step.
  A rank without a row with a signal contributes zeros and still steps: DDP's module wrapper
  would wait for a backward pass that rank never makes.

Rank 0 alone logs, evaluates, plots and checkpoints; the weights, the optimizer state and the
data position are the same on every rank, so a checkpoint resumes with any world size.
"""

from __future__ import annotations

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

    def all_reduce_grads(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient over the ranks, in one flat buffer; a parameter this
        rank gave no gradient contributes zeros."""
        if self.size == 1:
            return
        params = [p for p in parameters if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])  # type: ignore[union-attr]
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p))  # type: ignore[union-attr]
            offset += n

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's weights on every rank (they are loaded alike; this makes sure)."""
        if self.size == 1:
            return
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


SINGLE = World()
