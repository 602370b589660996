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

With `parallelism = "fsdp"` the trained weights, their gradients and the optimizer state are
sharded over the ranks instead (FSDP2, `World.shard`): every forward and backward is then a
collective, so the ranks run as many of them (zero-loss ones where a rank has fewer rows).

Rank 0 alone logs, evaluates, plots and checkpoints; the weights, the optimizer state (whole,
or gathered from the shards: `full_optimizer_state`) and the data position are the same on
every rank, so a checkpoint resumes with any world size and either parallelism.
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
            # On GPUs NCCL for the tensors on them, gloo for the few CPU ones (`sum`, `extreme`).
            backend = "cpu:gloo,cuda:nccl" if device.startswith("cuda") else "gloo"
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

    def wrap(self, model: torch.nn.Module, parallelism: str = "ddp") -> Any:
        """The model the update runs forward and backward through: the model itself for one
        process; over several ranks DDP (which also gives every rank rank 0's weights), or with
        `fsdp` FSDP2's `fully_shard`, in place (`shard`)."""
        if self.size == 1:
            return model
        if parallelism == "fsdp":
            return self.shard(model)
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        # No buffer broadcast: it is a collective in every forward, and ranks run different
        # numbers of forwards (their micro-batches, the old policy's log-probs). The buffers
        # (rotary frequencies) are the same everywhere.
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)

    def shard(self, model: torch.nn.Module) -> Any:
        """FSDP2 over the ranks: each block the model names unsplittable (transformers'
        `_no_split_modules`, its decoder layers) is its own unit, gathered for its forward and
        backward and freed after; the rest (embeddings, final norm, head: a tied head stays with
        its embedding) is the root's unit. Gradients are reduce-scattered, averaged over the
        ranks as DDP's are; the optimizer must be made after this, on the sharded parameters.
        Rank 0's weights go to every rank first (the ranks may have drawn different ones)."""
        from torch.distributed.fsdp import fully_shard

        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor, src=0)
        blocks = set(getattr(model, "_no_split_modules", None) or ())
        for module in model.modules():
            if type(module).__name__ in blocks:
                fully_shard(module)
        return fully_shard(model)

    @staticmethod
    def sharded(model: Any) -> bool:
        """Is `model` FSDP2-sharded? Then every forward and backward is a collective, which
        every rank must run the same number of times."""
        from torch.distributed.fsdp import FSDPModule

        return isinstance(model, FSDPModule)

    def full_weights(self, model: Any) -> dict[str, Tensor]:
        """The whole state dict on every rank (a collective when sharded: all ranks call it)."""
        if not self.sharded(model):
            return dict(getattr(model, "module", model).state_dict())  # (DDP's own names start with `module.`)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return dict(get_model_state_dict(model, options=StateDictOptions(full_state_dict=True)))  # type: ignore[arg-type]  # tensors here

    def full_optimizer_state(self, model: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's state, whole, keyed by parameter index as `optimizer.state_dict()`
        is, whatever the sharding (a collective when sharded; rank 0 gets it, on the CPU):
        one checkpoint format for one process, DDP and FSDP, so a run resumes in any of them."""
        if not self.sharded(model) or not optimizer.state:  # (before the first step torch's gather would take a step of lr 0)
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        by_name = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return _by_index(by_name, [name for name, _ in model.named_parameters()]) if self.main else {}  # (the others get none)

    def load_optimizer_state(self, model: Any, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """`full_optimizer_state`'s output into this rank's optimizer (its shard, when sharded)."""
        if not self.sharded(model) or not state["state"]:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        by_name = _by_name(state, [name for name, _ in model.named_parameters()])
        set_optimizer_state_dict(model, optimizer, by_name, options=StateDictOptions(full_state_dict=True))

    @staticmethod
    def accumulating(model: Any, last: bool) -> contextlib.AbstractContextManager[Any]:
        """For a backward pass of an optimizer pass: without DDP's all-reduce unless it is the
        pass's last."""
        no_sync = getattr(model, "no_sync", None)
        return contextlib.nullcontext() if last or no_sync is None else no_sync()


SINGLE = World()


def _by_index(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """An optimizer state keyed by parameter name (torch.distributed.checkpoint's) keyed by the
    parameter's index instead, as `Optimizer.state_dict()` is: names are in the order of
    `named_parameters()`, the order the optimizer was given its parameters in."""
    index = {name: i for i, name in enumerate(names)}
    return {
        "state": {index[name]: value for name, value in state["state"].items()},
        "param_groups": [{**group, "params": [index[name] for name in group["params"]]} for group in state["param_groups"]],
    }


def _by_name(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {
        "state": {names[int(i)]: value for i, value in state["state"].items()},
        "param_groups": [{**group, "params": [names[int(i)] for i in group["params"]]} for group in state["param_groups"]],
    }
