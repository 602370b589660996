"""The runner's verdict rules, from observations of a test process (no Docker needed)."""

from __future__ import annotations

import json
import signal

import pytest

from sandboxes.runner.judge import FRAME_MARK, Observation, judge, parse_frame

NONCE = "a" * 32


def frame(payload: dict[str, object], nonce: str = NONCE) -> bytes:
    return FRAME_MARK + json.dumps({**payload, "nonce": nonce}).encode()


def exited(code: int) -> int:
    return code << 8  # os.wait status of a normal exit


def killed(sig: int) -> int:
    return sig


def obs(kind: str = "assert", status: int | None = 0, result: bytes = b"", **kw: object) -> Observation:
    fields: dict[str, object] = dict(
        kind=kind,
        timed_out=False,
        output_exceeded=False,
        status=status,
        cpu_time_s=0.01,
        cpu_limit_s=1.0,
        stdout=b"",
        stderr=b"",
        result=result,
    )
    fields.update(kw)
    return Observation(**fields)  # type: ignore[arg-type]


def test_a_completed_assert_test_passes() -> None:
    assert judge(obs(result=frame({"ok": True})), NONCE) == ("PASSED", "")


def test_a_frame_with_the_wrong_nonce_is_ignored() -> None:
    verdict, _ = judge(obs(result=frame({"ok": True}, nonce="b" * 32)), NONCE)
    assert verdict == "RUNTIME_ERROR"


def test_exit_zero_without_a_frame_is_not_a_pass() -> None:
    verdict, detail = judge(obs(result=b""), NONCE)
    assert verdict == "RUNTIME_ERROR" and "exited before the test finished" in detail


def test_scribbles_around_a_real_frame_do_not_hide_it() -> None:
    data = b"junk" + FRAME_MARK + b"{not json" + frame({"ok": True}) + FRAME_MARK + b"trailing"
    assert parse_frame(data, NONCE) == {"ok": True, "nonce": NONCE}


def test_limits_take_precedence_in_order() -> None:
    assert judge(obs(output_exceeded=True, timed_out=True), NONCE)[0] == "OUTPUT_LIMIT"
    assert judge(obs(timed_out=True), NONCE)[0] == "TIMEOUT"
    assert judge(obs(status=killed(signal.SIGXCPU)), NONCE)[0] == "TIMEOUT"
    assert judge(obs(status=killed(signal.SIGKILL), cpu_time_s=1.5), NONCE)[0] == "TIMEOUT"
    assert judge(obs(status=killed(signal.SIGKILL), oom_killed=True), NONCE)[0] == "MEMORY_LIMIT"
    assert judge(obs(status=killed(signal.SIGSEGV)), NONCE) == ("RUNTIME_ERROR", "killed by signal SIGSEGV")
    assert judge(obs(status=None), NONCE)[0] == "SANDBOX_ERROR"


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        ({"type": "AssertionError", "message": "AssertionError", "where": "<test> line 1: assert f() == 2", "stage": "test"}, "FAILED"),
        ({"type": "AssertionError", "message": "AssertionError", "where": "", "stage": "program"}, "RUNTIME_ERROR"),
        ({"type": "MemoryError", "message": "MemoryError", "where": "", "stage": "program"}, "MEMORY_LIMIT"),
        ({"type": "ZeroDivisionError", "message": "ZeroDivisionError: division by zero", "where": "", "stage": "test"}, "RUNTIME_ERROR"),
    ],
)
def test_reported_exceptions(error: dict[str, str], verdict: str) -> None:
    assert judge(obs(result=frame({"error": error})), NONCE)[0] == verdict


def test_io_and_call_outputs_go_to_the_host_for_comparison() -> None:
    assert judge(obs(kind="io", stdout=b"42\n"), NONCE) == ("COMPARE", "42\n")
    assert judge(obs(kind="call", result=frame({"value": [1, 2]})), NONCE) == ("COMPARE", "[1, 2]")
    assert judge(obs(kind="call", result=frame({"not_json": "return value of type 'X' is not JSON data"})), NONCE)[0] == "FAILED"


def test_io_program_that_exits_nonzero_is_a_runtime_error() -> None:
    verdict, detail = judge(obs(kind="io", status=exited(3), stderr=b"Traceback...\nValueError: bad"), NONCE)
    assert verdict == "RUNTIME_ERROR" and detail.startswith("exited with status 3") and "ValueError: bad" in detail


def test_detail_is_capped_at_4_kib() -> None:
    error = {"type": "ValueError", "message": "ValueError: " + "x" * 10000, "where": "", "stage": "test"}
    _, detail = judge(obs(result=frame({"error": error})), NONCE)
    assert len(detail.encode()) <= 4096
