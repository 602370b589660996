"""The TRL adapter: TRL's calling convention against a real reward server, and one real
`GRPOTrainer` step (trl 1.16.0) whose only reward function is ours."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reward_api.integrations.problems import completion_text
from reward_api.integrations.trl import CodeReward
from reward_api.types import Verdict

from .helpers import tiny_llama
from .server_proc import ServerProcess

GOOD = "def add(a, b):\n    return a + b\n"
BAD = "def add(a, b):\n    return a - b\n"
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]


@pytest.fixture(scope="module")
def server(sandbox_image: str) -> Iterator[ServerProcess]:
    process = ServerProcess(sandbox_image)
    try:
        yield process
    finally:
        process.stop()


def test_completion_text_plain_and_conversational() -> None:
    assert completion_text("x = 1") == "x = 1"
    assert completion_text([{"role": "assistant", "content": "```python\nx = 1\n```"}]) == "```python\nx = 1\n```"
    blocks = [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]}]
    assert completion_text(blocks) == "ab"
    tool_turns = [{"role": "assistant", "content": "calling"}, {"role": "tool", "content": "42"}, {"role": "assistant", "content": "final"}]
    assert completion_text(tool_turns) == "final"


def test_fail_fast_defaults_to_on_where_the_reward_is_the_same() -> None:
    """ALL_OR_NOTHING: the first failing test decides the reward, so the rest are not run (a
    hang costs one time limit); FRACTION needs every test; an explicit choice wins."""
    assert CodeReward("127.0.0.1:1").fail_fast is True
    assert CodeReward("127.0.0.1:1", mode="FRACTION").fail_fast is False
    assert CodeReward("127.0.0.1:1", fail_fast=False).fail_fast is False


def test_bad_configuration_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="mode='PARTIAL'"):
        CodeReward("127.0.0.1:1", mode="PARTIAL")
    reward = CodeReward("127.0.0.1:1", tests_column="test_list")
    with pytest.raises(ValueError, match="tests_column='test_list' is not a column"):
        reward.row_problem({"tests": ADD_TESTS})
    with pytest.raises(ValueError, match=r"column 'test_list'.tests\[1\]: a test needs one of assert, call, io"):
        reward.row_problem({"test_list": ["assert True", {"asert": "x"}]})


@pytest.mark.docker
async def test_plain_completions_one_call_per_problem(server: ServerProcess) -> None:
    reward = CodeReward(server.target, retry_timeout_s=5.0)
    completions = [f"Here you go:\n```python\n{GOOD}```", BAD, "def add(a, b) return", f"```python\n{GOOD}```\nDone."]
    mul_tests = [{"call": {"args": [2, 3], "expected": 6}}]
    try:
        rewards = await reward(
            prompts=["Write add."] * 4 + ["Write mul."],
            completions=[*completions, "def mul(a, b):\n    return a * b\n"],
            completion_ids=[[1]] * 5,
            tests=[ADD_TESTS] * 4 + [mul_tests],
            entry_point=["add"] * 4 + ["mul"],
            trainer_state=None,
        )
    finally:
        await reward.aclose()
    assert rewards == [1.0, 0.0, 0.0, 1.0, 1.0]
    verdicts = [r.verdict for r in reward.last_results]
    assert verdicts == [Verdict.PASSED, Verdict.FAILED, Verdict.SYNTAX_ERROR, Verdict.PASSED, Verdict.PASSED]
    # The 4th program is the 1st one again: the server only deduplicates within one request,
    # so this shows the group went in one call.
    assert [r.deduplicated for r in reward.last_results] == [False, False, False, True, False]


@pytest.mark.docker
async def test_conversational_fraction_and_trl_logging_hooks(server: ServerProcess) -> None:
    logged: dict[str, Any] = {}
    reward = CodeReward(server.target, mode="FRACTION", tests_column="test_list")
    half = "def add(a, b):\n    return 3\n"  # passes add(1, 2) == 3 only
    try:
        rewards = await reward(
            prompts=[[{"role": "user", "content": "Write add."}]] * 2,
            completions=[
                [{"role": "assistant", "content": f"```python\n{half}```"}],
                [{"role": "assistant", "content": f"```python\n{GOOD}```"}],
            ],
            completion_ids=[[1], [2]],
            test_list=[ADD_TESTS, ADD_TESTS],
            log_metric=lambda name, value: logged.__setitem__(name, value),
            log_extra=lambda column, values: logged.__setitem__(column, values),
        )
    finally:
        await reward.aclose()
    assert rewards == [0.5, 1.0]
    assert logged == {"codereward/masked_frac": 0.0, "codereward/pass_rate": 0.5, "verdict": ["FAILED", "PASSED"]}


def test_pickles_without_its_channel() -> None:
    import pickle

    reward = CodeReward("127.0.0.1:1", mode="FRACTION", name="code")
    copy = pickle.loads(pickle.dumps(reward))
    assert (copy.__name__, copy.mode, copy._client) == ("code", "FRACTION", None)


# --- one real GRPOTrainer step ----------------------------------------------------------------


class _Alternating:
    """A randomly initialised model writes no Python, so its rewards would all be 0 and prove
    little: map its i-th completion to a right or a wrong program, so that each group's rewards
    vary and the server decides every one of them."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str, entry_point: str, prompt_prefix: str) -> str:
        self.calls += 1
        return GOOD if self.calls % 2 else BAD


@pytest.mark.docker
@pytest.mark.slow
def test_one_grpo_trainer_step_logs_the_servers_rewards(server: ServerProcess, tmp_path: Path) -> None:
    pytest.importorskip("trl", reason="needs trl (the trl extra)")
    torch = pytest.importorskip("torch", reason="needs torch (the trainer extra)")
    transformers = pytest.importorskip("transformers", reason="needs transformers (the trainer extra)")
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    from trainer_client import model as model_module

    try:
        gguf_dir = model_module._gguf_dir()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf_dir, gguf_file=model_module.GGUF_FILE)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    torch.manual_seed(0)
    model = tiny_llama(len(tokenizer), hidden_size=64, intermediate_size=128)
    before = model.model.embed_tokens.weight.detach().clone()

    dataset = datasets.Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": "Write add(a, b)."}], "test_list": ADD_TESTS, "entry_point": "add"},
            {"prompt": [{"role": "user", "content": "Write a function add."}], "test_list": ADD_TESTS[:1], "entry_point": "add"},
        ]
    )
    reward = CodeReward(server.target, tests_column="test_list", extract=_Alternating(), retry_timeout_s=10.0)
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        max_steps=1,
        logging_steps=1,
        learning_rate=1e-2,
        beta=0.0,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=0,
    )
    # TRL's type hint leaves out async callables, which its code supports (is_async_callable).
    funcs = [reward]
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset, processing_class=tokenizer)  # type: ignore[arg-type]
    trainer.train()

    served = [r.reward for r in reward.last_results if r.reward is not None]
    assert len(served) == 8  # none masked
    assert sorted(served) == [0.0] * 4 + [1.0] * 4  # the server judged GOOD and BAD, 4 of each
    logs = trainer.state.log_history[0]
    assert math.isclose(logs["reward"], sum(served) / len(served), abs_tol=1e-6)
    assert math.isclose(logs["rewards/codereward/mean"], 0.5, abs_tol=1e-6)
    assert math.isclose(logs["codereward/pass_rate"], 0.5, abs_tol=1e-6)
    assert logs["frac_reward_zero_std"] == 0.0
    assert not torch.equal(before, model.model.embed_tokens.weight.detach())  # the step trained on them
