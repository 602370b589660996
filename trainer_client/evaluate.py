"""Held-out evaluation: greedy pass@1 through the reward server.

One greedy completion per problem; its program passes when every test passes
(ALL_OR_NOTHING). Programs the sandbox could not run (`SANDBOX_ERROR`) are left out of the
denominator and reported as `masked`, never counted as failures.
"""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reward_api.extract import extract_code
from reward_api.integrations.problems import auto_fail_fast
from reward_api.types import GroupScore, make_request

from .data import TrainProblem
from .rewards import RewardWorker
from .sampling import Sampler


@dataclass
class EvalResult:
    passed: int = 0
    scored: int = 0
    masked: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Per problem: id, verdict, reward, the completion and the extracted program."""

    @property
    def pass_at_1(self) -> float:
        return self.passed / self.scored if self.scored else 0.0

    def metrics(self, prefix: str = "eval/") -> dict[str, float]:
        return {
            f"{prefix}pass@1": self.pass_at_1,
            f"{prefix}passed": self.passed,
            f"{prefix}scored": self.scored,
            f"{prefix}masked": self.masked,
        }


def score_request(problem: TrainProblem, texts: Sequence[str], *, mode: str, request_id: str) -> tuple[Any, list[str]]:
    """The ScoreRequest for a group of completions of `problem`, and the extracted programs.
    ALL_OR_NOTHING sets fail_fast (`auto_fail_fast`)."""
    codes = [extract_code(t, problem.entry_point, problem.prompt_prefix, problem.response_prefix) for t in texts]
    return make_request(problem.problem, codes, mode=mode, request_id=request_id, fail_fast=auto_fail_fast(mode, None)), codes


def evaluate(
    sampler: Sampler, worker: RewardWorker, problems: Sequence[TrainProblem], *, batch_size: int = 16, progress: Any = None
) -> EvalResult:
    """Greedy pass@1 of the sampler's model on `problems`; each answer is sent to the reward
    server as soon as it is generated."""
    order = sorted(range(len(problems)), key=lambda i: len(problems[i].instruction))  # less padding per batch
    pending: list[tuple[int, list[str], list[str], concurrent.futures.Future[GroupScore]]] = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]

        def submit(group: int, texts: list[str], chunk: list[int] = chunk) -> None:
            index = chunk[group]
            request, codes = score_request(problems[index], texts, mode="ALL_OR_NOTHING", request_id=f"eval-{index}")
            pending.append((index, texts, codes, worker.submit(request)))

        sampler.sample(
            [problems[i].instruction for i in chunk],
            1,
            greedy=True,
            on_group_done=submit,
            response_prefixes=[problems[i].response_prefix for i in chunk],
        )
        if progress is not None:
            progress.update(len(chunk))
    result = EvalResult()
    for index, texts, codes, future in sorted(pending, key=lambda p: p[0]):
        score = future.result().results[0]
        result.verdicts[score.verdict.value] += 1
        if score.reward is None:
            result.masked += 1
        else:
            result.scored += 1
            result.passed += score.reward == 1.0
        result.rows.append(
            {"id": problems[index].id, "verdict": score.verdict.value, "reward": score.reward, "completion": texts[0], "program": codes[0]}
        )
    return result
