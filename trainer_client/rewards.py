"""Rewards for the trainer: groups go to reward servers the moment they are sampled.

`score_request` turns a group of completions into the ScoreRequest (the programs extracted
from the texts).

The trainer's sampling and updates are synchronous torch code; scoring runs on an asyncio
event loop in a background thread (`RewardWorker`), over one `ScoreStream` per reward server
(`reward_api.client.SpreadSession`: each group to the least loaded server; a stream reconnects
and resends its unanswered groups, to another server if need be, when its server dies). `submit` returns a `concurrent.futures.Future` at once, so the server
scores one group while the trainer samples the next.

With no server given, `LocalRewardServer` starts `reward-server` as a separate process on a
free loopback port (the trainer never imports the server: DESIGN.md's layering) and stops
it at exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codereward.v1 import reward_pb2 as pb
from reward_api.client import ClientOptions, RewardServiceError, SpreadSession
from reward_api.extract import extract_code
from reward_api.listening import find_listening
from reward_api.types import GroupScore, auto_fail_fast, make_request

from .data import TrainProblem


def score_request(problem: TrainProblem, texts: Sequence[str], *, mode: str, request_id: str) -> tuple[pb.ScoreRequest, list[str]]:
    """The ScoreRequest for a group of completions of `problem`, and the extracted programs.
    ALL_OR_NOTHING sets fail_fast (`auto_fail_fast`)."""
    language = problem.problem.language or "python"
    codes = [extract_code(t, problem.entry_point, problem.prompt_prefix, problem.response_prefix, language) for t in texts]
    return make_request(problem.problem, codes, mode=mode, request_id=request_id, fail_fast=auto_fail_fast(mode, None)), codes


class RewardUnavailable(RuntimeError):
    """The reward servers could not be reached (after retrying) or refused a group."""


class RewardWorker:
    """A background event loop holding one scoring session over every reward server."""

    def __init__(self, targets: Sequence[str], options: ClientOptions) -> None:
        self.targets = list(targets)
        self.options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="reward-worker", daemon=True)
        self._session: SpreadSession | None = None

    def __enter__(self) -> RewardWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()
        self._call(self._open())

    async def _open(self) -> None:
        self._session = SpreadSession(self.targets, self.options)  # grpc.aio: made inside the loop
        await self._session.__aenter__()

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self._close(), timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()

    def submit(self, request: pb.ScoreRequest) -> concurrent.futures.Future[GroupScore]:
        """Send one group now; the future resolves to its GroupScore or raises RewardUnavailable."""
        result: concurrent.futures.Future[GroupScore] = concurrent.futures.Future()

        async def send() -> None:
            assert self._session is not None
            try:
                result.set_result(await self._session.submit(request))
            except RewardServiceError as exc:
                result.set_exception(RewardUnavailable(f"reward servers {', '.join(self.targets)}: {exc}"))
            except BaseException as exc:  # noqa: BLE001 — handed to the waiting trainer thread
                result.set_exception(exc)

        asyncio.run_coroutine_threadsafe(send(), self._loop)
        return result


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the trainer dies, even by SIGKILL (Linux
    PR_SET_PDEATHSIG), so that no server and no sandbox outlives the run."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux: the trainer's own cleanup still stops it
        pass


class LocalRewardServer:
    """`reward-server` in a child process on 127.0.0.1, a free port; log in `log_path`."""

    def __init__(
        self, log_path: Path, *, workers: int | None = None, extra_args: Sequence[str] = (), start_timeout_s: float = 300.0
    ) -> None:
        self.log_path = log_path
        self.workers = workers
        self.extra_args = list(extra_args)
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.target = ""
        self.metrics_port: int | None = None

    def __enter__(self) -> LocalRewardServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "reward_server.main", "--port", "0", "--metrics-port", "0", "--drain-s", "0", "--grace-s", "5"]
        if self.workers:
            command += ["--workers", str(self.workers)]
        command += self.extra_args
        with open(self.log_path, "wb") as log:
            # Own process group: a Ctrl-C in the terminal reaches the trainer, which then stops
            # the server in order (SIGTERM: containers removed), instead of both at once.
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent
            )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            listening = find_listening(text)
            if listening:
                self.target = f"127.0.0.1:{listening.port}"
                self.metrics_port = listening.metrics_port
                return self.target
            if self.process.poll() is not None:
                tail = "\n".join(text.splitlines()[-15:])
                raise RewardUnavailable(
                    f"the local reward server exited with status {self.process.returncode} (log {self.log_path}):\n{tail}"
                )
            time.sleep(0.2)
        self.stop()
        raise RewardUnavailable(f"the local reward server was not ready after {self.start_timeout_s:.0f} s (log {self.log_path})")

    def stop(self, timeout_s: float = 60.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # drains, removes its containers, exits 0
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its containers die with its attach streams
            self.process.wait()
