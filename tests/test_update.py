"""The GRPO update on a tiny random Llama (fp32, CPU, real forward and backward passes): for
each loss aggregation, a batch cut into micro-batches (by the token budget, by
grad_accumulation, or both) gives the gradient of the whole batch in one pass, and so does the
importance sampling correction; the sampler's log-probabilities travel inside the batch."""

from __future__ import annotations

import typing
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
transformers = pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")

from trainer_client import update as update_module  # noqa: E402
from trainer_client.config import LossAggregation, TrainConfig  # noqa: E402
from trainer_client.policy import Batch, make_batch, micro_batches, token_logprobs  # noqa: E402
from trainer_client.sampling import Completion  # noqa: E402
from trainer_client.update import NO_UPDATE, UpdateResult, grpo_update  # noqa: E402

from .helpers import tiny_llama  # noqa: E402

AGGREGATIONS = typing.get_args(LossAggregation)
PROMPTS, COMPLETIONS = [5, 2, 7, 3, 4, 6], [6, 1, 3, 8, 2, 5]  # tokens of each row
KEEP = [0, 1, 2, 3, 5]  # row 4 carries no signal
SPLITS = {  # (micro_batch_tokens, grad_accumulation): the micro-batches they give
    "token budget": (30, 1),  # [0, 1] [2, 3] [5]
    "grad_accumulation": (0, 3),  # [0, 1] [2] [3, 5]
    "both": (24, 5),  # the budget's [0, 1] [2] [3] [5], then [0, 1] halved
}


def completions(logprobs: list[list[float]] | None = None) -> list[Completion]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for row, (p, c) in enumerate(zip(PROMPTS, COMPLETIONS)):
        ids = torch.randint(3, 60, (p + c,), generator=generator).tolist()
        sampled = tuple(logprobs[row]) if logprobs else tuple(-0.5 for _ in range(c))
        out.append(Completion(tuple(ids[:p]), tuple(ids[p:]), "", sampled, truncated=False))
    return out


class GradientRecorder(torch.optim.SGD):
    """An optimizer that only records the gradient it is asked to step with."""

    def __init__(self, params: Any) -> None:
        super().__init__(params, lr=0.0)
        self.gradients: list[torch.Tensor] = []

    def step(self, closure: Any = None) -> None:
        params = [p for group in self.param_groups for p in group["params"]]
        self.gradients.append(torch.cat([p.grad.flatten() for p in params]))


def run_update(batch: Batch, aggregation: LossAggregation, split: tuple[int, int]) -> tuple[UpdateResult, torch.Tensor]:
    """The update's result and the gradient of its optimizer step, on fresh copies of the same
    tiny models (the policy, and a reference model that differs from it: β > 0)."""
    torch.manual_seed(0)
    model = tiny_llama(64)
    torch.manual_seed(1)
    ref_model = tiny_llama(64).requires_grad_(False)
    tokens, accumulation = split
    config = TrainConfig(
        loss_aggregation=aggregation,
        micro_batch_tokens=tokens,
        grad_accumulation=accumulation,
        prompts_per_step=accumulation,
        max_completion_tokens=8,
        max_grad_norm=0.0,  # the gradient as accumulated, unclipped
        beta=0.1,
        temperature=0.7,
    )
    optimizer = GradientRecorder(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    advantages = torch.tensor([1.2, -0.7, 0.4, -1.5, 0.0, 0.9])
    result = grpo_update(
        batch,
        advantages,
        torch.tensor(KEEP),
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        ref_model=ref_model,
        config=config,
        device="cpu",
    )
    (gradient,) = optimizer.gradients
    return result, gradient


def assert_same_update(split: UpdateResult, whole: UpdateResult) -> None:
    for name in ("loss", "grad_norm", "entropy"):
        assert getattr(split, name) == pytest.approx(getattr(whole, name), rel=1e-5), name


def test_the_splits_are_what_the_tests_need() -> None:
    """At least three micro-batches each, of unequal rows and tokens where the weighting matters."""
    batch, keep = make_batch(completions(), 0), torch.tensor(KEEP)
    parts = {name: [p.tolist() for p in micro_batches(batch, keep, *split)] for name, split in SPLITS.items()}
    assert parts == {
        "token budget": [[0, 1], [2, 3], [5]],
        "grad_accumulation": [[0, 1], [2], [3, 5]],
        "both": [[0], [1], [2], [3], [5]],
    }


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_micro_batches_give_the_gradient_of_the_whole_batch(aggregation: LossAggregation, split: tuple[int, int]) -> None:
    batch = make_batch(completions(), 0)
    whole, whole_gradient = run_update(batch, aggregation, (0, 1))
    split_result, split_gradient = run_update(batch, aggregation, split)
    torch.testing.assert_close(split_gradient, whole_gradient, rtol=1e-5, atol=1e-7)
    assert_same_update(split_result, whole)
    assert whole.kl > 0 and whole.importance_sampling is None and not whole.skipped


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_equal_micro_batch_weights_would_give_another_gradient(aggregation: LossAggregation, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test above fails when each micro-batch counts the same instead of its share of the
    batch's tokens (token-mean) or rows (sequence-mean, constant)."""
    batch = make_batch(completions(), 0)
    _, whole_gradient = run_update(batch, aggregation, (0, 1))
    monkeypatch.setattr(update_module, "micro_batch_weight", lambda aggregation, batch: 1.0)
    _, split_gradient = run_update(batch, aggregation, SPLITS["token budget"])
    relative = float((split_gradient - whole_gradient).norm() / whole_gradient.norm())
    assert relative > 0.01


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_importance_sampling_correction_splits_too(aggregation: LossAggregation) -> None:
    """Sampler log-probabilities that differ from the trainer's (ratios away from 1, one row's
    above the cap): the weighted gradient and the ratio statistics do not depend on the split."""
    torch.manual_seed(0)
    model = tiny_llama(64)
    plain = make_batch(completions(), 0)
    with torch.no_grad():
        logp = token_logprobs(model, plain, 0.7).logp
    noise = torch.randn(logp.shape, generator=torch.Generator().manual_seed(2)) * 0.3
    noise[3] = -0.5  # row 3: sampler 8 x 0.5 nats less likely than the trainer, ratio e^4 > the cap of 3
    sampled = [(logp[row, :n] + noise[row, :n]).tolist() for row, n in enumerate(COMPLETIONS)]
    batch = make_batch(completions(sampled), 0, sampler_logprobs=True)
    whole, whole_gradient = run_update(batch, aggregation, (0, 1))
    split, split_gradient = run_update(batch, aggregation, SPLITS["grad_accumulation"])
    torch.testing.assert_close(split_gradient, whole_gradient, rtol=1e-5, atol=1e-7)
    assert_same_update(split, whole)
    assert whole.importance_sampling is not None and split.importance_sampling is not None
    assert split.importance_sampling.ratio_mean == pytest.approx(whole.importance_sampling.ratio_mean, rel=1e-5)
    assert whole.importance_sampling.masked_ratio == split.importance_sampling.masked_ratio == pytest.approx(1 / len(KEEP))
    _, uncorrected = run_update(plain, aggregation, (0, 1))
    assert not torch.allclose(uncorrected, whole_gradient, rtol=1e-3)  # the correction did act


def test_metrics_keep_their_names() -> None:
    assert NO_UPDATE.metrics() == {
        "loss": 0.0,
        "grad_norm": 0.0,
        "kl": 0.0,
        "clip_ratio/low_mean": 0.0,
        "clip_ratio/high_mean": 0.0,
        "entropy": None,
        "update_skipped": 1,
    }
    corrected = UpdateResult(0.5, 1.0, 0.1, 0.0, 0.0, 2.0, update_module.ImportanceSampling(0.9, 1.0, 4.0, 0.2))
    assert list(corrected.metrics()) == [
        "sampling/importance_sampling_ratio/min",
        "sampling/importance_sampling_ratio/mean",
        "sampling/importance_sampling_ratio/max",
        "sampling/importance_sampling_masked_ratio",
        "loss",
        "grad_norm",
        "kl",
        "clip_ratio/low_mean",
        "clip_ratio/high_mean",
        "entropy",
        "update_skipped",
    ]
    assert corrected.metrics()["update_skipped"] == 0 and corrected.metrics()["sampling/importance_sampling_ratio/max"] == 4.0


def test_an_update_without_rows_is_refused() -> None:
    model = tiny_llama(64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with pytest.raises(ValueError, match="NO_UPDATE"):
        grpo_update(
            make_batch(completions(), 0),
            torch.zeros(len(PROMPTS)),
            torch.tensor([], dtype=torch.long),
            model=model,
            optimizer=optimizer,
            scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0),
            ref_model=None,
            config=TrainConfig(),
            device="cpu",
        )


def test_rows_cut_the_sampler_logprobs_with_the_completions() -> None:
    sampled = [[-(row + 1) - j / 10 for j in range(n)] for row, n in enumerate(COMPLETIONS)]
    source = completions(sampled)
    batch = make_batch(source, 0, sampler_logprobs=True)
    assert batch.sampler_logprobs is not None and batch.sampler_logprobs.shape == batch.completion_ids.shape
    assert make_batch(source, 0).sampler_logprobs is None
    index = [3, 1, 5]
    sub = batch.rows(index).to("cpu")
    assert sub.sampler_logprobs is not None
    assert sub.sampler_logprobs.shape == sub.completion_ids.shape == (3, 8)  # row 3's 8 tokens
    for i, row in enumerate(index):
        n = COMPLETIONS[row]
        assert sub.completion_ids[i, :n].tolist() == list(source[row].completion_ids)
        torch.testing.assert_close(sub.sampler_logprobs[i, :n], torch.tensor(sampled[row]))
        assert bool((sub.sampler_logprobs[i, n:] == 0).all())  # 0 on padding
    short = batch.rows([1, 4])  # completions of 1 and 2 tokens: the columns cut to 2
    assert short.sampler_logprobs is not None and short.sampler_logprobs.shape == short.completion_ids.shape == (2, 2)
    assert batch.rows([1]).to("cpu").sampler_logprobs is not None and make_batch(source, 0).rows([1]).sampler_logprobs is None


def updated_weights(policy_loss: str, split: tuple[int, int]) -> torch.Tensor:
    """The weights after μ = 2 SGD steps on the same batch: the second pass's ratio is away
    from 1, where the policy losses differ."""
    torch.manual_seed(0)
    model = tiny_llama(64)
    tokens, accumulation = split
    config = TrainConfig(
        policy_loss=policy_loss,  # type: ignore[arg-type]
        loss_aggregation="token-mean",
        micro_batch_tokens=tokens,
        grad_accumulation=accumulation,
        prompts_per_step=accumulation,
        max_completion_tokens=8,
        updates_per_batch=2,
        max_grad_norm=0.0,
        epsilon_low=0.05,
        epsilon_high=0.05,  # narrow, so that the second pass clips some tokens
        temperature=0.7,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    grpo_update(
        make_batch(completions(), 0),
        torch.tensor([1.2, -0.7, 0.4, -1.5, 0.0, 0.9]),
        torch.tensor(KEEP),
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0),
        ref_model=None,
        config=config,
        device="cpu",
    )
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_each_policy_loss_reaches_the_update_and_splits_too() -> None:
    weights = {name: updated_weights(name, (0, 1)) for name in ("ppo-clip", "gspo", "cispo")}
    for name, whole in weights.items():
        split = updated_weights(name, SPLITS["grad_accumulation"])
        assert float((split - whole).norm() / whole.norm()) < 1e-5, name  # float32 sums in another order
    moved = float((weights["ppo-clip"] - updated_weights("ppo-clip", (0, 1))).norm())
    assert moved == 0.0  # deterministic: a difference below is the loss's
    for name in ("gspo", "cispo"):
        assert float((weights[name] - weights["ppo-clip"]).norm() / weights["ppo-clip"].norm()) > 1e-4, name
