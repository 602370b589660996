#!/usr/bin/env bash
# bench_server.py and bench_trainer.py at another commit and at the working tree, alternated in
# one run on this machine (the machines are noisy: compare within a run, never across runs).
#   bash bench/compare_commits.sh BASE [ROUNDS]       # e.g. bash bench/compare_commits.sh 0804356 2
# The other commit runs from a git worktree through PYTHONPATH (with its own sandbox image,
# built here); the Docker engine must be running (scripts/setup.sh ensure_docker).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
base="${1:?usage: bench/compare_commits.sh BASE [ROUNDS]}"
rounds="${2:-1}"
other="$(mktemp -d /tmp/codereward-base-XXXXXX)"
trap 'git -C "$ROOT" worktree remove --force "$other" >/dev/null 2>&1 || true; rm -rf "$other"' EXIT
git -C "$ROOT" worktree add -q --detach "$other" "$base"
(cd "$other" && PYTHONPATH="$other" "$PY" -m sandboxes.image >/dev/null)
for round in $(seq "$rounds"); do
  for tree in "$other" "$ROOT"; do
    echo "=== round $round: $(git -C "$tree" rev-parse --short HEAD)$([ "$tree" = "$ROOT" ] && echo ' (working tree)')"
    (cd "$tree" && PYTHONPATH="$tree" "$PY" bench/bench_server.py --workers 2 --latency-requests 100 2>&1 | grep -v WARNING | tail -8)
    (cd "$tree" && PYTHONPATH="$tree" "$PY" bench/bench_trainer.py --variants ours --steps 4 2>&1 | grep -v WARNING | tail -4)
  done
done
