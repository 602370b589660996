"""Asynchronous GRPO: the next steps are sampled while the current one trains.

A thread samples step t from a copy of the policy (the behaviour policy) as soon as the
trainer has published the weights of step t - max_staleness, so a sample is at most
`max_staleness` optimizer steps older than the policy it trains. The trainer publishes after
each optimizer step by copying its weights into a staging copy (the sampling thread may be
mid-generation on the behaviour copy, which must not change under it); the thread loads the
newest staged weights before each step it samples. The update corrects for the gap with the
sequence-level importance weight π_old / π_behaviour, from the log-probabilities the sampler
recorded (decoupled PPO: Hilton et al. 2022; AReaL, Fu et al. 2025).

With max_staleness = 0 the thread samples step t only once step t - 1 has trained, from the
same weights and in the same order of random draws as the synchronous loop: the same run, bit
for bit (tests/test_async.py), with the thread as its only difference.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Ahead(Generic[T]):
    step: int
    value: T
    version: int
    """The optimizer steps applied to the weights it was sampled with."""

    @property
    def staleness(self) -> int:
        """How many optimizer steps behind the trained policy the behaviour policy was."""
        return self.step - self.version


class AheadSampler(Generic[T]):
    """`sample(step)` for steps first_step..last_step - 1, in a thread, each as soon as its
    staleness bound allows; `take(step)` waits for one. Close it (or use it as a context
    manager) to stop the thread."""

    def __init__(
        self,
        policy: torch.nn.Module,
        behaviour: torch.nn.Module,
        sample: Callable[[int], T],
        *,
        first_step: int,
        last_step: int,
        max_staleness: int,
    ) -> None:
        if max_staleness < 0:
            raise ValueError(f"max_staleness={max_staleness} must be >= 0")
        live, copied = list(policy.state_dict().values()), list(behaviour.state_dict().values())
        if [t.shape for t in live] != [t.shape for t in copied]:
            raise ValueError("the behaviour model must be a copy of the policy (its state_dict differs)")
        pairs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # a tied tensor (embedding and LM head) once: the copy keeps the tie
        for tensor, copy in zip(live, copied, strict=True):
            pairs.setdefault(tensor.data_ptr(), (tensor, copy))
        self._live = [tensor for tensor, _ in pairs.values()]
        self._behaviour = [copy for _, copy in pairs.values()]
        with torch.no_grad():
            self._staged = [t.detach().clone() for t in self._live]
        self._sample = sample
        self._first, self._last = first_step, last_step
        self.max_staleness = max_staleness
        self._version = first_step
        self._ready: dict[int, Ahead[T]] = {}
        self._error: BaseException | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="codereward-ahead-sampler", daemon=True)
        self._thread.start()

    def __enter__(self) -> AheadSampler[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def publish(self, version: int) -> float:
        """The policy's weights now have `version` optimizer steps: stage them for the
        steps still to be sampled. Returns the seconds the copy took."""
        started = time.perf_counter()
        with torch.no_grad(), self._cond:
            for staged, live in zip(self._staged, self._live, strict=True):
                staged.copy_(live)
            self._version = version
            self._cond.notify_all()
        return time.perf_counter() - started

    def take(self, step: int) -> Ahead[T]:
        """Step `step`'s samples, waiting for them; the thread's error if it failed."""
        with self._cond:
            self._cond.wait_for(lambda: step in self._ready or self._error is not None or self._closed)
            if step in self._ready:
                return self._ready.pop(step)
            if self._error is not None:
                raise RuntimeError(f"the sampling thread failed before step {step}: {self._error}") from self._error
            raise RuntimeError("the ahead sampler is closed")

    def close(self) -> None:
        """Stops the thread after the step it is sampling (if any) and waits for it."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _may_sample(self, step: int) -> bool:
        return self._closed or self._version >= step - self.max_staleness

    def _run(self) -> None:
        try:
            for step in range(self._first, self._last):
                with self._cond:
                    self._cond.wait_for(functools.partial(self._may_sample, step))
                    if self._closed:
                        return
                    version = self._version
                    with torch.no_grad():
                        for behaviour, staged in zip(self._behaviour, self._staged, strict=True):
                            behaviour.copy_(staged)
                value = self._sample(step)
                with self._cond:
                    self._ready[step] = Ahead(step, value, version)
                    self._cond.notify_all()
        except BaseException as error:  # handed to the trainer's thread by take()
            with self._cond:
                self._error = error
                self._cond.notify_all()
