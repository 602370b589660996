"""GRPO math against values computed by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="the trainer's math needs torch (pip install torch==2.13.0)")

from trainer_client.grpo import (  # noqa: E402
    aggregate,
    cispo_objective,
    clipped_surrogate,
    group_advantages,
    grpo_loss,
    k3_kl,
    sequence_importance_weights,
)

NAN = float("nan")


def test_the_worked_example() -> None:
    adv = group_advantages(torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    std = math.sqrt(0.75 * 0.25)  # population std: 0.433
    expected = [0.25 / std] * 3 + [-0.75 / std]  # (+0.577, +0.577, +0.577, -1.732)
    assert adv.values[0].tolist() == pytest.approx(expected, abs=1e-4)
    assert adv.values[0].tolist() == pytest.approx([0.577, 0.577, 0.577, -1.732], abs=1e-3)
    assert adv.valid.all() and not adv.zero_std.any()


def test_all_equal_groups_carry_no_signal() -> None:
    adv = group_advantages(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))
    assert adv.zero_std.tolist() == [True, True, False]
    assert adv.frac_reward_zero_std == pytest.approx(2 / 3)
    assert adv.values[:2].abs().sum() == 0 and not adv.valid[:2].any()


def test_masked_rewards_are_left_out_of_the_statistics() -> None:
    adv = group_advantages(torch.tensor([[1.0, NAN, 0.0, NAN], [1.0, NAN, NAN, NAN]]))
    assert adv.values[0].tolist() == pytest.approx([1.0, 0.0, -1.0, 0.0])  # mean 0.5, std 0.5
    assert adv.valid[0].tolist() == [True, False, True, False]
    assert adv.zero_std.tolist() == [False, True]  # one valid reward: no signal


def test_std_scaling_variants() -> None:
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert group_advantages(rewards, "none").values[0].tolist() == [0.5, -0.5]
    batch_std = rewards.std(unbiased=False).item()  # over all 4: mean .75 -> .433
    assert group_advantages(rewards, "batch").values[0].tolist() == pytest.approx([0.5 / batch_std, -0.5 / batch_std])


def test_k3_is_non_negative_and_zero_when_policies_agree() -> None:
    logp = torch.log(torch.tensor([0.5, 0.2, 0.9]))
    assert k3_kl(logp, logp).tolist() == [0.0, 0.0, 0.0]
    ref = torch.log(torch.tensor([0.25, 0.4, 0.9]))
    kl = k3_kl(logp, ref)
    # r = ref/p: 0.5 -> 0.5 - ln 0.5 - 1 = 0.19315; 2.0 -> 2 - ln 2 - 1 = 0.30685
    assert kl.tolist() == pytest.approx([0.5 - math.log(0.5) - 1, 2 - math.log(2) - 1, 0.0], abs=1e-6)
    assert (k3_kl(torch.randn(1000), torch.randn(1000)) >= 0).all()


def test_clipped_surrogate_by_hand() -> None:
    old = torch.zeros(4, 1)
    logp = torch.log(torch.tensor([[1.5], [1.5], [0.5], [0.5]]))
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    s = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.28)
    # r=1.5,A=+1: min(1.5, 1.28) = 1.28   r=1.5,A=-1: min(-1.5, -1.28) = -1.5
    # r=0.5,A=+1: min(0.5, 0.8) = 0.5     r=0.5,A=-1: min(-0.5, -0.8) = -0.8
    assert s.objective.squeeze(1).tolist() == pytest.approx([1.28, -1.5, 0.5, -0.8])
    assert s.clipped_high.squeeze(1).tolist() == [True, False, False, False]
    assert s.clipped_low.squeeze(1).tolist() == [False, False, False, True]


def test_aggregations_and_masking() -> None:
    per_token = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 99.0, 99.0, 99.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])  # 99s are prompt/padding: never counted
    assert aggregate(per_token, mask, "sequence-mean").item() == pytest.approx((2.0 + 4.0) / 2)
    assert aggregate(per_token, mask, "token-mean").item() == pytest.approx(10.0 / 4)
    assert aggregate(per_token, mask, "constant", constant=4).item() == pytest.approx(10.0 / (4 * 2))
    with pytest.raises(ValueError, match="positive normaliser"):
        aggregate(per_token, mask, "constant")


def test_loss_at_the_old_policy_is_minus_the_mean_advantage() -> None:
    logp = torch.log(torch.full((2, 3), 0.5))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    parts = grpo_loss(logp, logp.detach(), torch.tensor([1.0, -0.5]), mask, beta=0.1, ref_logp=logp.detach())
    assert parts.loss.item() == pytest.approx(-(1.0 - 0.5) / 2)
    assert parts.kl == 0.0 and parts.clip_ratio_low == 0.0 and parts.clip_ratio_high == 0.0


def test_gradient_pushes_up_good_completions() -> None:
    logits = torch.zeros(2, 3, requires_grad=True)
    logp = torch.nn.functional.logsigmoid(logits)
    mask = torch.ones(2, 3)
    grpo_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), mask).loss.backward()
    assert logits.grad is not None
    assert (logits.grad[0] < 0).all() and (logits.grad[1] > 0).all()  # descent raises row 0, lowers row 1


def test_beta_needs_a_reference() -> None:
    logp = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(logp, logp, torch.tensor([1.0]), torch.ones(1, 2), beta=0.04)


def test_sequence_importance_weights_by_hand() -> None:
    # Row 0: log ratio (-1.0 - -1.5) + (-2.0 - -2.0) = 0.5 -> ratio e^0.5 = 1.6487, under the cap.
    # Row 1: log ratio 1.0 + 0.5 = 1.5 (the padding position's 9.0 is not counted) -> e^1.5 = 4.4817 > 3: masked.
    # Row 2: log ratio -0.7 -> 0.4966, kept as it is.
    old = torch.tensor([[-1.0, -2.0], [-0.5, 9.0], [-1.2, -0.3]])
    sampler = torch.tensor([[-1.5, -2.0], [-1.5, 0.0], [-0.5, -0.3]])
    sampler[1, 1] = 8.5  # would change the ratio if padding were counted
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]])
    out = sequence_importance_weights(old, sampler, mask, cap=3.0)
    assert out.ratio.tolist() == pytest.approx([math.exp(0.5), math.exp(1.0), math.exp(-0.7)], rel=1e-5)
    out = sequence_importance_weights(old, sampler, mask, cap=2.0)
    assert out.masked.tolist() == [False, True, False]
    assert out.weights.tolist() == pytest.approx([1.6487, 0.0, 0.4966], abs=1e-4)
    with pytest.raises(ValueError, match="cap"):
        sequence_importance_weights(old, sampler, mask, cap=0.0)


def test_importance_weights_scale_the_surrogate_not_the_kl() -> None:
    logp = torch.log(torch.full((2, 2), 0.5))
    mask = torch.ones(2, 2)
    weights = torch.tensor([0.5, 0.0])  # row 1 masked above the cap
    parts = grpo_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), mask, is_weights=weights)
    assert parts.loss.item() == pytest.approx(-(0.5 * 1.0 + 0.0 * -1.0) / 2)
    ref = logp.detach() - 0.1
    with_kl = grpo_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), mask, beta=1.0, ref_logp=ref, is_weights=weights)
    kl = math.exp(-0.1) + 0.1 - 1  # k3 per token, unweighted
    assert with_kl.loss.item() == pytest.approx(-(0.5 * 1.0) / 2 + kl, rel=1e-5)


def test_gspo_clips_the_sequence_ratio_not_the_tokens() -> None:
    old = torch.zeros(2, 2)
    logp = torch.log(torch.tensor([[2.0, 0.5], [1.5, 1.5]])).requires_grad_(True)
    mask = torch.tensor([[1, 1], [1, 0]])  # row 1's second token is padding
    adv = torch.tensor([1.0, -1.0])
    token = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.28)
    assert token.objective[0].tolist() == pytest.approx([1.28, 0.5])  # per token: r=2 clipped, r=0.5 not
    s = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.28, sequence_mask=mask)
    # row 0: s = exp((ln 2 + ln 0.5) / 2) = 1, so A = 1 on both tokens; row 1: s = 1.5 (padding left out),
    # A = -1: min(-1.5, -1.28) = -1.5
    assert s.objective.tolist() == [pytest.approx([1.0, 1.0]), pytest.approx([-1.5, -1.5])]
    assert not s.clipped_high.any() and not s.clipped_low.any()
    s.objective[0].sum().backward()
    # d/d logp_t of 2·s·A with s = exp(mean_t logp_t): 2·s·A/2 = 1 for each token of row 0, nothing for row 1
    assert logp.grad is not None and logp.grad.tolist() == [pytest.approx([1.0, 1.0]), pytest.approx([0.0, 0.0])]


def test_two_sided_clip_caps_the_ratio_of_negative_advantages() -> None:
    old = torch.zeros(3, 1)
    logp = torch.log(torch.tensor([[5.0], [5.0], [2.0]]))
    adv = torch.tensor([-1.0, 1.0, -1.0])
    plain = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.28)
    two_sided = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.28, delta=3.0)
    # r=5, A=-1: min(-5, -1.28) = -5, capped: min(-3, -1.28) = -3; r=5, A=+1: 1.28 either way; r=2 < δ: -2 either way
    assert plain.objective.squeeze(1).tolist() == pytest.approx([-5.0, 1.28, -2.0])
    assert two_sided.objective.squeeze(1).tolist() == pytest.approx([-3.0, 1.28, -2.0])


def test_cispo_keeps_the_gradient_of_clipped_tokens() -> None:
    old = torch.zeros(3, 1)
    adv = torch.tensor([1.0, -1.0, 1.0])

    def gradient(objective: str) -> list[float]:
        logp = torch.log(torch.tensor([[1.5], [0.5], [1.0]])).requires_grad_(True)
        if objective == "cispo":
            s = cispo_objective(logp, old, adv, eps_low=0.2, eps_high=0.28)
        else:
            s = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.28)
        s.objective.sum().backward()
        assert logp.grad is not None
        return logp.grad.squeeze(1).tolist()

    # CISPO: the weight clip(r, 0.8, 1.28) = (1.28, 0.8, 1.0) times A, for every token
    assert gradient("cispo") == pytest.approx([1.28, -0.8, 1.0])
    # PPO: r=1.5, A=+1 and r=0.5, A=-1 sit on the clip: no gradient; r=1: A
    assert gradient("ppo-clip") == pytest.approx([0.0, 0.0, 1.0])
    s = cispo_objective(torch.log(torch.tensor([[1.5], [0.5], [1.0]])), old, adv, eps_low=0.2, eps_high=0.28)
    assert s.clipped_high.squeeze(1).tolist() == [True, False, False] and s.clipped_low.squeeze(1).tolist() == [False, True, False]


@pytest.mark.parametrize("policy_loss", ["gspo", "cispo"])
def test_on_policy_every_loss_has_the_gradient_of_ppo(policy_loss: str) -> None:
    """At π_θ = π_old (μ = 1) the ratio is 1: GSPO and CISPO step like PPO (token-mean)."""

    def gradient(name: str) -> torch.Tensor:
        logits = torch.tensor([[0.3, -0.2, 0.1], [0.5, 0.0, -1.0]], requires_grad=True)
        logp = torch.nn.functional.logsigmoid(logits)
        mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
        grpo_loss(logp, logp.detach(), torch.tensor([0.7, -0.7]), mask, aggregation="token-mean", policy_loss=name).loss.backward()  # type: ignore[arg-type]
        assert logits.grad is not None
        return logits.grad

    # GSPO: each of row i's |y_i| tokens carries s·A with ds/dlogp_t = s/|y_i|: A per token, as PPO's
    assert torch.allclose(gradient(policy_loss), gradient("ppo-clip"), atol=1e-6)
