"""Our reward server as a reward function of TRL's `GRPOTrainer`.

    from reward_api.integrations.trl import CodeReward

    reward = CodeReward("10.0.0.5:50051", tests_column="test_list", mode="FRACTION")
    trainer = GRPOTrainer(model=..., reward_funcs=[reward], train_dataset=dataset, args=GRPOConfig(...))

TRL's calling convention (read from trl 1.16.0, `GRPOTrainer._calculate_rewards`): the function
is called with `prompts`, `completions` and `completion_ids` (one entry per completion, the
G completions of a prompt side by side), every other dataset column as a keyword argument
holding one value per completion, plus `trainer_state`, `log_extra`, `log_metric` (and
`environments` when used). Completions are strings for plain datasets, lists of messages for
conversational ones. It returns one float per completion, or None where no reward applies;
a callable object whose `__call__` is `async` runs on TRL's event loop thread, concurrently
with the other async reward functions.

What this function does:
- builds each completion's `Problem` from its row (columns named by `tests_column`,
  `entry_point_column`, `setup_code_column`, `prompt_prefix_column`, or your `problem_fn`);
- extracts the program as our trainer does (`reward_api.extract.extract_code`);
- sends one `Score` call per distinct problem in the batch (a GRPO group; if TRL split a group
  across processes, each process sends its part), all calls concurrently;
- returns the server's reward, or None for `SANDBOX_ERROR`: an infrastructure fault, never the
  program's. TRL 1.16 then keeps that completion out of its group's baseline and gives it zero
  advantage (and leaves it out of the logged `reward`).
- logs `codereward/pass_rate` and `codereward/masked_frac` with TRL's `log_metric`, and a
  `verdict` column in TRL's completions table with `log_extra`.

A server that stays unreachable past the client's `retry_timeout_s`, or that refuses a request
(bad input), raises `RewardServiceError`: the step fails loudly rather than train on made-up
rewards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from codereward.v1 import reward_pb2 as pb
from reward_api.client import AsyncRewardClient, ClientOptions
from reward_api.integrations.problems import Extractor, check_mode, completion_text, default_extract, problem_from_spec, program_of
from reward_api.types import CompletionScore, GroupScore, Verdict, auto_fail_fast, make_request

ProblemFn = Callable[[Mapping[str, Any]], pb.Problem]
"""Row (the dataset's columns for one completion) -> Problem; replaces the column mapping."""

# Keyword arguments TRL passes that are not dataset columns.
_TRL_EXTRAS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})


class CodeReward:
    """An async reward function for `GRPOTrainer(reward_funcs=[...])`; see the module docstring."""

    def __init__(
        self,
        targets: str | Sequence[str],
        *,
        tests_column: str = "tests",
        entry_point_column: str = "entry_point",
        setup_code_column: str = "setup_code",
        prompt_prefix_column: str = "prompt_prefix",
        problem_fn: ProblemFn | None = None,
        mode: str = "ALL_OR_NOTHING",
        fail_fast: bool | None = None,
        extract: Extractor = default_extract,
        name: str = "codereward",
        options: ClientOptions | None = None,
        **client_options: Any,
    ) -> None:
        """`targets`: one or several `host:port` (or a gRPC URI); `mode`: ALL_OR_NOTHING or
        FRACTION (partial credit); `fail_fast`: stop a program's tests at its first failure
        (default: with ALL_OR_NOTHING, where the reward is the same); `name`: how TRL logs it (`rewards/<name>/mean`);
        `options` / `client_options`: `ClientOptions` (token, tls, timeouts)."""
        self.targets = targets
        self.tests_column = tests_column
        self.entry_point_column = entry_point_column
        self.setup_code_column = setup_code_column
        self.prompt_prefix_column = prompt_prefix_column
        self.problem_fn = problem_fn
        self.mode = check_mode(mode)
        self.fail_fast = auto_fail_fast(self.mode, fail_fast)
        self.extract = extract
        self.__name__ = name  # TRL names the reward function after `__name__`
        self.options = options or ClientOptions(**client_options)
        self._client: AsyncRewardClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_results: list[CompletionScore] = []
        """The server's results for the last batch, one per completion (for inspection)."""

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (TRL and accelerate may copy reward functions): the channel is per process.
        state = dict(self.__dict__)
        state.update(_client=None, _loop=None)
        return state

    def _get_client(self) -> AsyncRewardClient:
        """One channel per event loop: grpc.aio channels belong to the loop that made them, and
        TRL calls us on its own long-lived loop thread."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            if self._client is not None and self._loop is not None and self._loop.is_running():
                asyncio.run_coroutine_threadsafe(self._client.close(), self._loop)
            self._client = AsyncRewardClient(self.targets, self.options)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def row_problem(self, row: Mapping[str, Any]) -> tuple[pb.Problem, str, str]:
        """(problem, entry point, prompt prefix) for one completion's row."""
        if self.problem_fn is not None:
            problem = self.problem_fn(row)
            return problem, problem.entry_point, str(row.get(self.prompt_prefix_column) or "")
        if self.tests_column not in row:
            raise ValueError(
                f"tests_column={self.tests_column!r} is not a column of the dataset (columns: {sorted(row)}); "
                "name the column that holds the tests, or pass problem_fn="
            )
        spec = {
            "tests": row[self.tests_column],
            "entry_point": row.get(self.entry_point_column),
            "setup_code": row.get(self.setup_code_column),
            "prompt_prefix": row.get(self.prompt_prefix_column),
            "id": row.get("id") or row.get("task_id"),
        }
        return problem_from_spec(spec, field=f"column {self.tests_column!r}")

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        n = len(completions)
        columns = {
            k: v for k, v in kwargs.items() if k not in _TRL_EXTRAS and isinstance(v, Sequence) and not isinstance(v, str) and len(v) == n
        }
        groups: dict[bytes, tuple[pb.Problem, list[int], list[str]]] = {}
        for i, completion in enumerate(completions):
            row = {k: v[i] for k, v in columns.items()}
            problem, entry_point, prefix = self.row_problem(row)
            code = program_of(self.extract, completion_text(completion), problem, entry_point, prefix)
            key = problem.SerializeToString(deterministic=True)
            groups.setdefault(key, (problem, [], []))
            groups[key][1].append(i)
            groups[key][2].append(code)

        client = self._get_client()
        requests = [
            make_request(p, codes, mode=self.mode, fail_fast=self.fail_fast, completion_ids=[str(i) for i in idx])
            for p, idx, codes in groups.values()
        ]
        answers: list[GroupScore] = await asyncio.gather(*(client.score(r) for r in requests))

        results: list[CompletionScore | None] = [None] * n
        for request, answer in zip(requests, answers):
            if [r.id for r in answer.results] != [c.id for c in request.completions]:
                raise RuntimeError(f"request {request.request_id}: the server answered other completions than were sent")
            for result in answer.results:
                results[int(result.id)] = result
        scored = [r for r in results if r is not None]
        if len(scored) != n:
            raise RuntimeError(f"the server answered {len(scored)} of {n} completions")
        self.last_results = scored
        self._log(kwargs, scored)
        return [r.reward for r in scored]

    @staticmethod
    def _log(kwargs: Mapping[str, Any], results: Sequence[CompletionScore]) -> None:
        if not results:
            return
        log_metric, log_extra = kwargs.get("log_metric"), kwargs.get("log_extra")
        masked = sum(r.masked for r in results)
        if callable(log_metric):
            counted = len(results) - masked
            log_metric("codereward/masked_frac", masked / len(results))
            if counted:
                log_metric("codereward/pass_rate", sum(r.verdict is Verdict.PASSED for r in results) / counted)
        if callable(log_extra):
            log_extra("verdict", [r.verdict.value for r in results])
