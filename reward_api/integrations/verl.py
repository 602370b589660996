"""Our reward server as verl's custom reward function.

verl calls `compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`
once per response (its `naive` reward manager; an `async def` is awaited on the reward loop, a
plain function runs in its executor), or, with `reward_manager.name=batch`,
`compute_score(data_sources=[...], solution_strs=[...], ground_truths=[...], extra_infos=[...])`
once per chunk. `custom_reward_function.reward_kwargs` are merged into every call, which is
how the server's address reaches us:

    reward:
      custom_reward_function:
        path: pkg://reward_api.integrations.verl
        name: compute_score                 # or compute_score_async / compute_score_batch
        reward_kwargs: {target: "10.0.0.5:50051", mode: FRACTION}

(`path: pkg://reward_api.integrations.verl` where verl supports `pkg://`; older verl wants a
file path, which works too: this module imports its siblings absolutely. `target` may also come
from the environment: CODEREWARD_TARGETS, CODEREWARD_TOKEN.)

`ground_truth` (the parquet's `reward_model.ground_truth`) describes the problem: the JSON text
of {"tests": [...], "entry_point": ..., "setup_code": ..., "prompt_prefix": ...} or a list of
tests (see `reward_api.types.parse_tests`); `verl_row` writes such rows. The program is
extracted from `solution_str` as our trainer does.

`SANDBOX_ERROR` (an infrastructure fault, never the program's) cannot be masked through verl's
reward function: it takes one float per response. So `on_sandbox_error` decides:
- "raise" (default): `SandboxErrorResult`, and the step fails rather than train on a 0 the
  program did not earn;
- "group_mean" (batched variant only): the mean reward of the other completions of the same
  problem in the chunk; under GRPO's group baseline that gives it zero advantage and leaves the
  group's mean unchanged (its std shrinks by the factor sqrt((n-1)/n));
- a number: that reward.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from codereward.v1 import reward_pb2 as pb
from reward_api.client import AsyncRewardClient, ClientOptions, RewardClient
from reward_api.integrations.problems import check_mode, completion_text, default_extract, problem_from_spec
from reward_api.types import GroupScore, auto_fail_fast, make_request

ENV_TARGETS = "CODEREWARD_TARGETS"
ENV_TOKEN = "CODEREWARD_TOKEN"


class SandboxErrorResult(RuntimeError):
    """The server could not run a program (SANDBOX_ERROR) and `on_sandbox_error="raise"`."""


def verl_row(
    prompt: str,
    tests: Sequence[Any],
    *,
    entry_point: str = "",
    setup_code: str = "",
    prompt_prefix: str = "",
    data_source: str = "codereward",
    extra_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of a verl parquet file (verl's documented fields) whose ground truth is our spec."""
    spec = {"tests": list(tests), "entry_point": entry_point, "setup_code": setup_code, "prompt_prefix": prompt_prefix}
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": prompt}],
        "ability": "code",
        "reward_model": {"style": "rule", "ground_truth": json.dumps(spec)},
        "extra_info": dict(extra_info or {}),
    }


def _options(target: str | Sequence[str] | None, token: str | None, tls: bool, timeout_s: float | None) -> tuple[str, ClientOptions]:
    target = target or os.environ.get(ENV_TARGETS, "")
    if not target:
        raise ValueError(
            f"target: no reward server given; set custom_reward_function.reward_kwargs.target or {ENV_TARGETS}=HOST:PORT[,HOST:PORT]"
        )
    joined = target if isinstance(target, str) else ",".join(target)
    kwargs: dict[str, Any] = {"token": token or os.environ.get(ENV_TOKEN) or None, "tls": tls}
    if timeout_s is not None:
        kwargs["timeout_s"] = timeout_s
    return joined, ClientOptions(**kwargs)


_sync_clients: dict[tuple[str, ClientOptions], RewardClient] = {}
_async_clients: dict[tuple[int, str, ClientOptions], tuple[asyncio.AbstractEventLoop, AsyncRewardClient]] = {}
_lock = threading.Lock()


def _sync_client(target: str, options: ClientOptions) -> RewardClient:
    # One channel per process for every call (verl runs the sync function on executor threads;
    # a grpc channel is thread-safe).
    with _lock:
        client = _sync_clients.get((target, options))
        if client is None:
            client = _sync_clients[(target, options)] = RewardClient(target, options)
        return client


def _async_client(target: str, options: ClientOptions) -> AsyncRewardClient:
    loop = asyncio.get_running_loop()
    with _lock:
        for key in [k for k, (old, _) in _async_clients.items() if old.is_closed()]:
            del _async_clients[key]
        entry = _async_clients.get((id(loop), target, options))
        if entry is None or entry[0] is not loop:
            entry = _async_clients[(id(loop), target, options)] = (loop, AsyncRewardClient(target, options))
        return entry[1]


async def close_async_clients() -> None:
    """Close the channels the async variants opened on the running event loop."""
    loop = asyncio.get_running_loop()
    with _lock:
        mine = [k for k, (owner, _) in _async_clients.items() if owner is loop]
        clients = [_async_clients.pop(k)[1] for k in mine]
    for client in clients:
        await client.close()


def _build(
    solution_strs: Sequence[Any],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None],
    mode: str,
    fail_fast: bool | None,
) -> list[tuple[pb.ScoreRequest, list[int]]]:
    """One request per distinct problem; completions keep their index as id."""
    if not len(solution_strs) == len(ground_truths) == len(extra_infos):
        raise ValueError(
            f"solution_strs, ground_truths, extra_infos: lengths {len(solution_strs)}, {len(ground_truths)}, {len(extra_infos)} differ"
        )
    groups: dict[bytes, tuple[pb.Problem, list[int], list[str]]] = {}
    for i, (solution, truth, extra) in enumerate(zip(solution_strs, ground_truths, extra_infos)):
        problem, entry_point, prefix = problem_from_spec(truth, field=f"ground_truth (response {i})")
        entry_point = entry_point or str((extra or {}).get("entry_point") or "")
        code = default_extract(completion_text(solution), entry_point, prefix, language=problem.language)
        key = problem.SerializeToString(deterministic=True)
        groups.setdefault(key, (problem, [], []))
        groups[key][1].append(i)
        groups[key][2].append(code)
    return [
        (
            make_request(
                problem, codes, mode=check_mode(mode), fail_fast=auto_fail_fast(mode, fail_fast), completion_ids=[str(i) for i in idx]
            ),
            idx,
        )
        for problem, idx, codes in groups.values()
    ]


def _rewards(n: int, answers: Sequence[GroupScore], on_sandbox_error: str | float) -> list[float]:
    rewards: list[float | None] = [None] * n
    for answer in answers:
        scored = [r.reward for r in answer.results if r.reward is not None]
        for result in answer.results:
            if result.reward is not None:
                rewards[int(result.id)] = result.reward
            elif on_sandbox_error == "group_mean" and scored:
                rewards[int(result.id)] = sum(scored) / len(scored)
            elif isinstance(on_sandbox_error, (int, float)) and not isinstance(on_sandbox_error, bool):
                rewards[int(result.id)] = float(on_sandbox_error)
            else:
                detail = result.tests[0].detail if result.tests else ""
                raise SandboxErrorResult(
                    f"response {result.id} of request {answer.request_id}: SANDBOX_ERROR ({detail or 'infrastructure fault'}); "
                    "verl cannot mask a response: set on_sandbox_error to 'group_mean' (batched) or a number to go on"
                )
    missing = [i for i, r in enumerate(rewards) if r is None]
    if missing:
        raise RuntimeError(f"the server answered no result for responses {missing}")
    return [float(r) for r in rewards if r is not None]


def _check_policy(on_sandbox_error: str | float, batched: bool) -> None:
    allowed = ("raise", "group_mean") if batched else ("raise",)
    if isinstance(on_sandbox_error, str) and on_sandbox_error not in allowed:
        raise ValueError(f"on_sandbox_error={on_sandbox_error!r}: use {' or '.join(map(repr, allowed))} or a number")


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    target: str | Sequence[str] | None = None,
    mode: str = "ALL_OR_NOTHING",
    fail_fast: bool | None = None,
    token: str | None = None,
    tls: bool = False,
    timeout_s: float | None = None,
    on_sandbox_error: str | float = "raise",
    **_verl_kwargs: Any,
) -> float:
    """verl's per-response reward function (blocking; verl runs it in an executor thread)."""
    _check_policy(on_sandbox_error, batched=False)
    ((request, _),) = _build([solution_str], [ground_truth], [extra_info], mode, fail_fast)
    client = _sync_client(*_options(target, token, tls, timeout_s))
    return _rewards(1, [client.score(request)], on_sandbox_error)[0]


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    target: str | Sequence[str] | None = None,
    mode: str = "ALL_OR_NOTHING",
    fail_fast: bool | None = None,
    token: str | None = None,
    tls: bool = False,
    timeout_s: float | None = None,
    on_sandbox_error: str | float = "raise",
    **_verl_kwargs: Any,
) -> float:
    """The same as `compute_score`, awaited on verl's reward loop (no executor thread per call)."""
    _check_policy(on_sandbox_error, batched=False)
    ((request, _),) = _build([solution_str], [ground_truth], [extra_info], mode, fail_fast)
    client = _async_client(*_options(target, token, tls, timeout_s))
    return _rewards(1, [await client.score(request)], on_sandbox_error)[0]


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    target: str | Sequence[str] | None = None,
    mode: str = "ALL_OR_NOTHING",
    fail_fast: bool | None = None,
    token: str | None = None,
    tls: bool = False,
    timeout_s: float | None = None,
    on_sandbox_error: str | float = "raise",
    **_verl_kwargs: Any,
) -> list[float]:
    """verl's batched reward function (`reward_manager.name=batch`): one Score call per distinct
    problem in the chunk, sent concurrently."""
    _check_policy(on_sandbox_error, batched=True)
    extras = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    built = _build(solution_strs, ground_truths, extras, mode, fail_fast)
    client = _sync_client(*_options(target, token, tls, timeout_s))
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(built)))) as threads:
        answers = list(threads.map(client.score, [request for request, _ in built]))
    return _rewards(len(solution_strs), answers, on_sandbox_error)


async def compute_score_batch_async(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    target: str | Sequence[str] | None = None,
    mode: str = "ALL_OR_NOTHING",
    fail_fast: bool | None = None,
    token: str | None = None,
    tls: bool = False,
    timeout_s: float | None = None,
    on_sandbox_error: str | float = "raise",
    **_verl_kwargs: Any,
) -> list[float]:
    """The batched variant as a coroutine, for verl's async reward loop."""
    _check_policy(on_sandbox_error, batched=True)
    extras = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    built = _build(solution_strs, ground_truths, extras, mode, fail_fast)
    client = _async_client(*_options(target, token, tls, timeout_s))
    answers = await asyncio.gather(*(client.score(request) for request, _ in built))
    return _rewards(len(solution_strs), list(answers), on_sandbox_error)
