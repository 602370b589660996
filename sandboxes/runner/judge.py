"""The verdict of one test, from facts the runner observed outside the untrusted process.

Pure logic, stdlib only: it runs inside the container (in the runner) and in host tests.
For `io` and `call` tests that ran to completion the verdict is COMPARE: the host compares
the output with the expected one, which is never sent into the sandbox (a program could
otherwise find it in the memory its process inherits from the runner).
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from typing import Any

FRAME_MARK = b"\x00codereward-frame\x00"
MAX_DETAIL = 4096


@dataclass
class Observation:
    """What the runner saw of one test process."""

    kind: str  # "assert" | "io" | "call"
    timed_out: bool
    output_exceeded: bool
    status: int | None  # os.wait status; None if the process could not be waited for
    cpu_time_s: float
    cpu_limit_s: float
    stdout: bytes
    stderr: bytes
    result: bytes
    oom_killed: bool = False


def parse_frame(data: bytes, nonce: str) -> dict[str, Any] | None:
    """The harness's report, if one bearing this test's nonce is in `data`."""
    for segment in reversed(data.split(FRAME_MARK)[1:]):
        try:
            frame = json.loads(segment)
        except ValueError:
            continue
        if isinstance(frame, dict) and frame.get("nonce") == nonce:
            return frame
    return None


def _tail(data: bytes, limit: int = 1000) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text[-limit:]


def _exit_detail(status: int, stderr: bytes) -> str:
    if os.WIFSIGNALED(status):
        try:
            name = signal.Signals(os.WTERMSIG(status)).name
        except ValueError:
            name = str(os.WTERMSIG(status))
        head = f"killed by signal {name}"
    else:
        head = f"exited with status {os.WEXITSTATUS(status)}"
    tail = _tail(stderr)
    return f"{head}\n{tail}" if tail else head


def _error_verdict(error: dict[str, Any]) -> tuple[str, str]:
    detail = "\n".join(str(error.get(k, "")) for k in ("message", "where") if error.get(k))
    etype = error.get("type")
    if etype == "MemoryError":
        return "MEMORY_LIMIT", detail
    if etype == "AssertionError" and error.get("stage") == "test":
        return "FAILED", detail or "assertion failed"
    if error.get("stage") == "setup":
        return "RUNTIME_ERROR", "setup_code failed: " + detail
    return "RUNTIME_ERROR", detail


def judge(obs: Observation, nonce: str) -> tuple[str, str]:
    """(verdict name, detail) for one test; for COMPARE, the detail is the output to compare."""
    verdict, detail = _judge(obs, nonce)
    if verdict == "COMPARE":
        return verdict, detail
    return verdict, detail.encode("utf-8", errors="replace")[:MAX_DETAIL].decode("utf-8", errors="ignore")


def _judge(obs: Observation, nonce: str) -> tuple[str, str]:
    if obs.output_exceeded:
        return "OUTPUT_LIMIT", "the program wrote more output than its limit allows"
    if obs.timed_out:
        return "TIMEOUT", "wall-clock time limit exceeded"
    if obs.status is None:
        return "SANDBOX_ERROR", "the test process could not be waited for"
    if os.WIFSIGNALED(obs.status):
        sig = os.WTERMSIG(obs.status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and obs.cpu_time_s >= obs.cpu_limit_s):
            return "TIMEOUT", "CPU time limit exceeded"
        if sig == signal.SIGKILL and obs.oom_killed:
            return "MEMORY_LIMIT", "killed by the out-of-memory killer"
        return "RUNTIME_ERROR", _exit_detail(obs.status, obs.stderr)
    frame = parse_frame(obs.result, nonce)
    if frame is not None and "error" in frame:
        return _error_verdict(frame["error"])
    if os.WEXITSTATUS(obs.status) != 0:
        return "RUNTIME_ERROR", _exit_detail(obs.status, obs.stderr)
    if obs.kind == "io":
        return "COMPARE", obs.stdout.decode("utf-8", errors="replace")
    if frame is None:
        return "RUNTIME_ERROR", "the process exited before the test finished (exit() or os._exit() during the test?)"
    if obs.kind == "assert":
        return ("PASSED", "") if frame.get("ok") is True else ("RUNTIME_ERROR", "malformed report")
    if "not_json" in frame:
        return "FAILED", str(frame["not_json"])
    if "value" not in frame:
        return "RUNTIME_ERROR", "malformed report"
    return "COMPARE", json.dumps(frame["value"])
