#!/usr/bin/env bash
# The main job. Installs what it needs (Docker engine, sandbox image, Python packages), then
# scores HumanEval's 164 reference solutions and 164 wrong ones through a warm sandbox pool
# and compares the speed with a subprocess per program and a `docker run` per program.
# (The GRPO run against a local reward server replaces this once the trainer lands.)
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
setup_all
cd "$ROOT"
python bench/bench_sandbox.py --rounds 2 --docker-run-sample 12 "$@"
