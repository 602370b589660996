#!/usr/bin/env bash
# Runs the test suite: installs what it needs (Docker engine, sandbox image, Python packages).
#   bash scripts/test.sh                 # everything CI runs
#   bash scripts/test.sh -m "not docker" # extra arguments go to pytest
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
setup_all
cd "$ROOT"
log "lint and types"
ruff check sandboxes reward_server reward_api trainer_client tests bench
mypy
log "tests"
pytest -q -rs --durations=15 "$@"
