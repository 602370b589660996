"""The runner's verdict rules, from what it observed and what the judge reported (no Docker)."""

from __future__ import annotations

import signal

from sandboxes.runner.protocol import TestReport, Verdict
from sandboxes.runner.verdict import Observed, io_ended, outcome, process_ended, report


def exited(code: int) -> int:
    return code << 8  # os.wait status of a normal exit


def killed(sig: int) -> int:
    return sig


def obs(cpu: float = 0.01, **kw: object) -> Observed:
    fields: dict[str, object] = dict(wall_time_s=0.02, cpu_time_s=cpu, cpu_limit_s=1.0, wall_limit_s=4.0)
    fields.update(kw)
    return Observed(**fields)  # type: ignore[arg-type]


def test_a_passed_report_passes_within_the_limits() -> None:
    assert outcome(obs(), {"end": 0, "passed": True}) == TestReport(Verdict.PASSED, None, 0.02, 0.01, "")


def test_cpu_time_over_the_limit_is_a_timeout_whatever_the_test_said() -> None:
    assert outcome(obs(cpu=1.2), {"end": 0, "passed": True}).verdict is Verdict.TIMEOUT  # type: ignore[union-attr]
    assert outcome(obs(cpu=1.2), {"end": 0, "value": "42"}).verdict is Verdict.TIMEOUT  # type: ignore[union-attr]


def test_the_runners_observations_take_precedence_in_order() -> None:
    assert report(obs(cpu=2.0, output_exceeded=True, timed_out=True), Verdict.PASSED).verdict is Verdict.OUTPUT_LIMIT
    assert report(obs(cpu=2.0, timed_out=True), Verdict.PASSED).verdict is Verdict.TIMEOUT
    assert "wall-clock" in report(obs(timed_out=True), Verdict.PASSED).detail
    assert "CPU" in report(obs(cpu=2.0, timed_out=True), Verdict.PASSED).detail


def test_call_values_and_io_output_go_to_the_host_for_comparison() -> None:
    assert outcome(obs(), {"end": 0, "value": "[1, 2]"}) == TestReport(None, "[1, 2]", 0.02, 0.01)
    assert io_ended(obs(), exited(0), False, b"42\n", b"", b"").output == "42\n"


def test_judge_reports_map_to_their_verdicts() -> None:
    def verdict(ended: dict[str, object]) -> Verdict | None:
        result = outcome(obs(), {"end": 0, **ended})
        return None if result is None else result.verdict

    assert verdict({"failed": "AssertionError"}) is Verdict.FAILED
    assert verdict({"output_limit": "too big"}) is Verdict.OUTPUT_LIMIT
    assert verdict({"error": {"type": "ZeroDivisionError", "message": "x", "from_program": True}}) is Verdict.RUNTIME_ERROR
    assert verdict({"error": {"type": "MemoryError", "message": "x", "from_program": True}}) is Verdict.MEMORY_LIMIT
    # the test's own MemoryError is not the program's memory limit
    assert verdict({"error": {"type": "MemoryError", "message": "x", "from_program": False}}) is Verdict.RUNTIME_ERROR
    assert verdict({"judge_error": "test code does not compile"}) is Verdict.SANDBOX_ERROR
    assert verdict({"program_gone": "ended"}) is None  # judged from the exit status instead
    assert verdict({"nonsense": True}) is Verdict.SANDBOX_ERROR


def test_a_process_that_ended_during_a_test() -> None:
    assert process_ended(obs(), killed(signal.SIGXCPU), False, b"").verdict is Verdict.TIMEOUT
    assert process_ended(obs(), killed(signal.SIGKILL), True, b"").verdict is Verdict.MEMORY_LIMIT
    segv = process_ended(obs(), killed(signal.SIGSEGV), False, b"")
    assert segv.verdict is Verdict.RUNTIME_ERROR and "SIGSEGV" in segv.detail
    early = process_ended(obs(), exited(0), False, b"")
    assert early.verdict is Verdict.RUNTIME_ERROR and "exited with status 0" in early.detail  # exit(0) is no pass
    assert process_ended(obs(cpu=1.5), killed(signal.SIGKILL), False, b"").verdict is Verdict.TIMEOUT


def test_an_io_program_that_exits_nonzero_is_a_runtime_error_and_its_hint_is_only_text() -> None:
    result = io_ended(obs(), exited(1), False, b"", b"Traceback...", b'{"type": "ValueError", "message": "ValueError: bad"}')
    assert result.verdict is Verdict.RUNTIME_ERROR and "ValueError: bad" in result.detail
    forged = io_ended(obs(), exited(1), False, b"42\n", b"", b'{"verdict": "PASSED", "ok": true}')
    assert forged.verdict is Verdict.RUNTIME_ERROR
    junk = io_ended(obs(), exited(3), False, b"", b"", b"[" * 100000)
    assert junk.verdict is Verdict.RUNTIME_ERROR and "status 3" in junk.detail


def test_detail_is_capped_at_4_kib() -> None:
    result = outcome(obs(), {"end": 0, "failed": "x" * 10000})
    assert result is not None and len(result.detail.encode()) <= 4096
