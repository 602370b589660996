"""Scoring one request: validate, deduplicate, admit (bounded), run every distinct program
in the sandbox pool concurrently, answer in request order.

Cancellation (a client that goes away, a deadline) cancels this coroutine; the pool then
drops the programs still queued and kills the running ones.
"""

from __future__ import annotations

import asyncio

from codereward.v1 import reward_pb2 as pb
from sandboxes.pool import SandboxPool
from sandboxes.types import Problem, ProgramResult

from .config import ServerConfig
from .convert import to_completion_result, to_mode, to_problem
from .errors import QueueFull
from .metrics import Metrics
from .validation import validate


class Scorer:
    def __init__(self, pool: SandboxPool, config: ServerConfig, metrics: Metrics) -> None:
        self.pool = pool
        self.config = config
        self.metrics = metrics
        self.admitted = 0
        metrics.queue_limit.set(config.max_queue)
        metrics.admitted.set_function(lambda: self.admitted)

    async def _run(self, problem: Problem, code: str, fail_fast: bool) -> ProgramResult:
        result = await self.pool.run(problem, code, fail_fast=fail_fast)
        self.metrics.program_done(result, problem.language)
        return result

    async def score(self, request: pb.ScoreRequest) -> pb.ScoreResponse:
        try:
            validate(request, self.config, self.pool.config)
        except Exception:
            self.metrics.rejected.labels("invalid").inc()
            raise
        problem = to_problem(request.problem)
        codes = [c.code for c in request.completions]
        unique = list(dict.fromkeys(codes))  # GRPO groups repeat themselves: run each program once
        if self.admitted + len(unique) > self.config.max_queue:
            self.metrics.rejected.labels("queue_full").inc()
            raise QueueFull(
                f"queue full: {self.admitted} programs admitted, {len(unique)} more would exceed max_queue={self.config.max_queue}; retry later"
            )
        self.admitted += len(unique)
        try:
            results = await asyncio.gather(*(self._run(problem, code, request.fail_fast) for code in unique))
        finally:
            self.admitted -= len(unique)
        by_code = dict(zip(unique, results))
        self.metrics.dedup_hits.inc(len(codes) - len(unique))
        mode = to_mode(request.mode)
        seen: set[str] = set()
        response = pb.ScoreResponse(request_id=request.request_id)
        for completion in request.completions:
            duplicate = completion.code in seen
            seen.add(completion.code)
            response.results.append(to_completion_result(completion.id, by_code[completion.code], mode, duplicate, problem.subtasks))
        return response
