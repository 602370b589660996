"""The verdict of one test, from what the runner observed and what the judge reported.
Pure logic, stdlib only: it runs inside the container (in the runner) and in host tests.

The judge reports how a test ended (`judge.py`); the runner adds what only it can see: the
CPU time of the program's process, its exit status, whether the kernel's OOM killer acted,
and whether its output passed the cap. Nothing the program writes is read as a verdict.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from dataclasses import dataclass
from typing import Any

from .protocol import TestReport, Verdict

MAX_DETAIL = 4096


@dataclass(frozen=True)
class Observed:
    """What the runner saw of a test, outside the program's process."""

    wall_time_s: float
    cpu_time_s: float
    cpu_limit_s: float
    wall_limit_s: float
    output_exceeded: bool = False
    timed_out: bool = False  # the wall clock ran out while the test was running


def _cut(detail: str) -> str:
    return detail.encode("utf-8", errors="replace")[:MAX_DETAIL].decode("utf-8", errors="ignore")


def report(
    obs: Observed, verdict: Verdict | None, detail: str = "", output: str | None = None, detail_ref: tuple[int, int] | None = None
) -> TestReport:
    """A report, with the runner's own observations taking precedence over how the test ended:
    past the output cap is OUTPUT_LIMIT and past the CPU limit TIMEOUT, whatever it returned."""
    if obs.output_exceeded:
        verdict, detail, output, detail_ref = Verdict.OUTPUT_LIMIT, "the program wrote more output than its limit allows", None, None
    elif obs.cpu_time_s > obs.cpu_limit_s:
        verdict, detail, output, detail_ref = Verdict.TIMEOUT, f"CPU time limit exceeded ({obs.cpu_limit_s:g} s)", None, None
    elif obs.timed_out:
        verdict, detail, output, detail_ref = Verdict.TIMEOUT, f"wall-clock limit exceeded ({obs.wall_limit_s:g} s)", None, None
    if verdict is None:
        return TestReport(None, output, obs.wall_time_s, obs.cpu_time_s)
    return TestReport(verdict, None, obs.wall_time_s, obs.cpu_time_s, _cut(detail), detail_ref)


def _tail(data: bytes, limit: int = 1000) -> str:
    return data.decode("utf-8", errors="replace").strip()[-limit:]


def exit_detail(status: int, stderr: bytes) -> str:
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


def process_ended(obs: Observed, status: int, oom_killed: bool, stderr: bytes) -> TestReport:
    """The program's process ended during a test (a crash, an exit, a kill)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return report(obs, Verdict.TIMEOUT, "CPU time limit exceeded")
        if sig == signal.SIGKILL and oom_killed:
            return report(obs, Verdict.MEMORY_LIMIT, "killed by the out-of-memory killer")
    return report(obs, Verdict.RUNTIME_ERROR, "the program's process ended during the test: " + exit_detail(status, stderr))


def io_ended(obs: Observed, status: int, oom_killed: bool, stdout: bytes, stderr: bytes, hint: bytes) -> TestReport:
    """An `io` test's process ended: its output is compared if it exited 0."""
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return report(obs, None, output=stdout.decode("utf-8", errors="replace"))
    if os.WIFSIGNALED(status):
        return process_ended(obs, status, oom_killed, stderr)
    error = _hint(hint)
    if error.get("type") == "MemoryError":
        return report(obs, Verdict.MEMORY_LIMIT, _error_text(error))
    if error:
        return report(obs, Verdict.RUNTIME_ERROR, _error_text(error))
    return _exited(report(obs, Verdict.RUNTIME_ERROR, exit_detail(status, stderr)), status)


def _exited(test: TestReport, status: int) -> TestReport:
    """A RUNTIME_ERROR from an exit status the process chose, with that status attached."""
    if test.verdict is Verdict.RUNTIME_ERROR and os.WIFEXITED(status):
        return dataclasses.replace(test, exit_code=os.WEXITSTATUS(status))
    return test


def command_ended(
    obs: Observed, status: int, oom_killed: bool, stdout: bytes, stderr: bytes, hint: bytes, memory_errors: tuple[str, ...] = ()
) -> TestReport:
    """A test of a compiled (or interpreted) language's command ended (`languages.py`): exit 0
    and its output is compared; a signal or another status is a RUNTIME_ERROR, MEMORY_LIMIT
    (the OOM killer, or the runtime's own out-of-memory message) or TIMEOUT (SIGXCPU).

    `hint` is written only by the runner's code before the exec, on a descriptor closed by the
    exec: the program never holds it, so `exec_failed` there (a program of the image would not
    start) is an infrastructure fault, and `artefact_rejected` (the kernel refused the program's
    own compiled binary) the program's."""
    failed = _exec_hint(hint, "exec_failed")
    if failed:
        return TestReport(
            Verdict.SANDBOX_ERROR, None, obs.wall_time_s, obs.cpu_time_s, _cut(f"the test's command could not start: {failed}")
        )
    rejected = _exec_hint(hint, "artefact_rejected")
    if rejected:
        return report(obs, Verdict.RUNTIME_ERROR, f"the compiled program cannot be executed: {rejected}")
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return report(obs, None, output=stdout.decode("utf-8", errors="replace"))
    if any(marker.encode() in stderr for marker in memory_errors) and not (
        os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU
    ):
        return report(obs, Verdict.MEMORY_LIMIT, "out of memory: " + exit_detail(status, stderr))
    if os.WIFSIGNALED(status):
        return process_ended(obs, status, oom_killed, stderr)
    return _exited(report(obs, Verdict.RUNTIME_ERROR, exit_detail(status, stderr)), status)


def _exec_hint(hint: bytes, key: str) -> str:
    try:
        value = json.loads(hint[:65536]) if hint else None
    except (ValueError, RecursionError):
        return ""
    return str(value.get(key, ""))[:1000] if isinstance(value, dict) else ""


def _hint(data: bytes) -> dict[str, Any]:
    """The program's own account of the exception that ended it: text for a detail, nothing more."""
    try:
        value = json.loads(data[:65536])
    except (ValueError, RecursionError):
        return {}
    return {k: str(v)[:1000] for k, v in value.items() if k in ("type", "message", "where")} if isinstance(value, dict) else {}


def _error_text(error: dict[str, Any]) -> str:
    return "\n".join(str(error[k]) for k in ("message", "where") if error.get(k))


def _ref(value: Any) -> tuple[int, int] | None:
    if isinstance(value, list) and len(value) == 2 and all(type(v) is int and v >= 0 for v in value):
        return value[0], value[1]
    return None


def outcome(obs: Observed, ended: dict[str, Any]) -> TestReport | None:
    """A test the judge reported on; None when the program's process is gone (the runner then
    judges from its exit status). The judge's texts arrive as references into the job's details
    memfd (`detail_ref`), which the runner passes on to the host unread."""
    if "program_gone" in ended:
        return None
    if ended.get("passed") is True:
        return report(obs, Verdict.PASSED)
    if "value" in ended:
        return report(obs, None, output=str(ended["value"]))
    if "failed" in ended:
        return report(obs, Verdict.FAILED, detail_ref=_ref(ended["failed"]))
    if "output_limit" in ended:
        return report(obs, Verdict.OUTPUT_LIMIT, detail_ref=_ref(ended["output_limit"]))
    if isinstance(ended.get("error"), dict):
        error = ended["error"]
        memory = error.get("type") == "MemoryError" and error.get("from_program")
        return report(obs, Verdict.MEMORY_LIMIT if memory else Verdict.RUNTIME_ERROR, detail_ref=_ref(error.get("ref")))
    ref = _ref(ended.get("judge_error"))
    detail = "" if ref else "malformed judge report"
    return TestReport(Verdict.SANDBOX_ERROR, None, obs.wall_time_s, obs.cpu_time_s, detail, ref)
