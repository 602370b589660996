"""The committed stubs are what the pinned grpcio-tools generates from the .proto."""

from __future__ import annotations

from pathlib import Path

from reward_api import codegen


def test_generated_stubs_are_up_to_date(tmp_path: Path) -> None:
    fresh = codegen.generate(tmp_path)
    assert fresh, "nothing generated"
    for path in fresh:
        committed = codegen.ROOT / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run `python -m reward_api.codegen`"
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: run `python -m reward_api.codegen`"


def test_field_names_of_the_contract() -> None:
    from codereward.v1 import reward_pb2 as pb

    def names(message: type) -> set[str]:
        return {f.name for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]

    assert {"request_id", "problem", "completions", "mode", "fail_fast"} <= names(pb.ScoreRequest)
    assert {"id", "language", "setup_code", "tests", "entry_point", "limits"} <= names(pb.Problem)
    assert {"time_limit_s", "memory_limit_mb", "output_limit_bytes"} <= names(pb.Limits)
    assert {"assert_code", "io", "call"} <= names(pb.TestCase)
    assert {"id", "reward", "verdict", "tests", "passed", "total", "wall_time_s"} <= names(pb.CompletionResult)
    assert {"request_id", "results"} <= names(pb.ScoreResponse)
    assert pb.CompletionResult.DESCRIPTOR.fields_by_name["reward"].has_presence
    assert set(pb.Verdict.keys()) >= {
        "PASSED",
        "FAILED",
        "RUNTIME_ERROR",
        "SYNTAX_ERROR",
        "TIMEOUT",
        "MEMORY_LIMIT",
        "OUTPUT_LIMIT",
        "SKIPPED",
        "SANDBOX_ERROR",
    }
