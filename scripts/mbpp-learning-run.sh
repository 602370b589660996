#!/usr/bin/env bash
# The learning run of docs/results/mbpp-cpu/ (about 75 minutes on 2 CPU cores): GRPO on MBPP's
# train split and the generated `basics` (configs/mbpp-cpu.toml), then greedy pass@1 of the starting model and of the
# trained one on MBPP's validation split (90) and HumanEval (164), compared problem by problem
# (paired bootstrap 95% CI, McNemar), each and combined. MBPP's test split is never read.
#   bash scripts/mbpp-learning-run.sh                       # MBPP from ../shared/data/mbpp
#   MBPP=google-research-datasets/mbpp bash scripts/mbpp-learning-run.sh   # through datasets (online)
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
setup_all
cd "$ROOT"
set -euo pipefail
MBPP="${MBPP:-../shared/data/mbpp}"
if [ -d "$MBPP" ]; then train="mbpp:$MBPP/train.jsonl"; validation="mbpp:$MBPP/validation.jsonl"
else train="mbpp:$MBPP:train"; validation="mbpp:$MBPP:validation"; fi
run=runs/mbpp-cpu
out=docs/results/mbpp-cpu
grpo-train --config configs/mbpp-cpu.toml --set "dataset=$train+basics" --set "eval_dataset=$validation"
last=$(ls -d "$run"/checkpoints/step-* | sort | tail -1)
mkdir -p "$out"
cp "$run/metrics.jsonl" "$run/training.png" "$out/"
cp "$run/eval/step-000000.jsonl" "$out/mbpp-validation-before.jsonl"
cp "$(ls "$run"/eval/step-*.jsonl | sort | tail -1)" "$out/mbpp-validation-after.jsonl"
grpo-eval --model smollm2-135m-instruct --dataset humaneval --sampler vllm -o "$out/humaneval-before.jsonl"
grpo-eval --model "$last" --dataset humaneval --sampler vllm -o "$out/humaneval-after.jsonl"
cat "$out/mbpp-validation-before.jsonl" "$out/humaneval-before.jsonl" > "$run/combined-before.jsonl"
cat "$out/mbpp-validation-after.jsonl" "$out/humaneval-after.jsonl" > "$run/combined-after.jsonl"
for set in mbpp-validation humaneval; do
  grpo-eval compare "$out/$set-before.jsonl" "$out/$set-after.jsonl" | tee "$out/$set-compare.txt"
done
grpo-eval compare "$run/combined-before.jsonl" "$run/combined-after.jsonl" | tee "$out/combined-compare.txt"
