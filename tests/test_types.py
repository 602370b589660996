"""Rewards and program verdicts from test results."""

from __future__ import annotations

import pytest

from sandboxes.config import SandboxConfig
from sandboxes.runner.protocol import OVERLOAD_FACTOR, job_deadline_s, overload_cap_s, wall_cap_s
from sandboxes.types import Limits, ProgramResult, ScoringMode, TestResult, Verdict

P, F, T, S = Verdict.PASSED, Verdict.FAILED, Verdict.TIMEOUT, Verdict.SKIPPED


def result(*verdicts: Verdict) -> ProgramResult:
    return ProgramResult.from_tests(tuple(TestResult(v) for v in verdicts))


def test_all_or_nothing() -> None:
    assert result(P, P, P).reward(ScoringMode.ALL_OR_NOTHING) == 1.0
    assert result(P, F, P).reward(ScoringMode.ALL_OR_NOTHING) == 0.0


def test_fraction() -> None:
    assert result(P, F, P, P).reward(ScoringMode.FRACTION) == 0.75
    assert result(F, S, S).reward(ScoringMode.FRACTION) == 0.0


def test_program_verdict_is_the_first_failure() -> None:
    assert result(P, T, F).verdict is T
    assert result(F, S, S).verdict is F


def test_a_sandbox_error_anywhere_means_no_reward() -> None:
    r = result(P, Verdict.SANDBOX_ERROR, P)
    assert r.verdict is Verdict.SANDBOX_ERROR
    assert r.reward(ScoringMode.FRACTION) is None and r.reward(ScoringMode.ALL_OR_NOTHING) is None
    assert ProgramResult.sandbox_error(3, "x" * 10000).tests[0].detail == "x" * 4096


def test_config_rejects_bad_combinations() -> None:
    with pytest.raises(ValueError, match="workers=0"):
        SandboxConfig(workers=0)
    with pytest.raises(ValueError, match="runtime='kata'"):
        SandboxConfig(runtime="kata")
    with pytest.raises(ValueError, match="raise container_memory_mb"):
        SandboxConfig(container_memory_mb=256)
    for cpus in (0.0, 0.001, float("nan")):
        with pytest.raises(ValueError, match=r"container_cpus=.*at least 0.01"):
            SandboxConfig(container_cpus=cpus)


def test_the_real_time_cap_of_a_test_grows_with_a_cpu_quota_under_one_core() -> None:
    assert overload_cap_s(1.0, 1.0) == overload_cap_s(1.0, 4.0) == OVERLOAD_FACTOR * wall_cap_s(1.0)
    assert overload_cap_s(1.0, 0.05) == pytest.approx(20 * overload_cap_s(1.0, 1.0))
    # The host waits as long at least, its slack for the runner's own work slowed as much.
    assert job_deadline_s(3, 1.0, 5.0, 0.5) == pytest.approx(3 * (2 * overload_cap_s(1.0, 1.0) + 1.0) + 10.0)


def test_limits_resolve_to_defaults_and_respect_caps() -> None:
    config = SandboxConfig()
    assert config.resolve(Limits()) == config.default_limits
    assert config.resolve(Limits(time_limit_s=2)).time_limit_s == 2
    with pytest.raises(ValueError, match=r"limits.memory_limit_mb=4096 is outside \[0, 512\]"):
        config.resolve(Limits(memory_limit_mb=4096))
