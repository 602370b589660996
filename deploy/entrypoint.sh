#!/bin/sh
# The server container's entry point: wait for the Docker engine (the dind sidecar), make sure
# the sandbox image is in it, then run `reward-server` with the arguments given.
#   SANDBOX_IMAGE       use this sandbox image as it is (preloaded into the engine; no build)
#   SANDBOX_BASE_IMAGE  otherwise build the sandbox image on this base (default python:3.11-slim)
#   ENGINE_WAIT_S       how long to wait for the engine (default 60)
set -eu
wait_s="${ENGINE_WAIT_S:-60}"
waited=0
until python3 -c "import docker; docker.from_env(timeout=5).ping()" 2>/dev/null; do
  waited=$((waited + 1))
  if [ "$waited" -ge "$wait_s" ]; then
    echo "codereward-entrypoint: no Docker engine at ${DOCKER_HOST:-unix:///var/run/docker.sock} after ${wait_s} s" >&2
    exit 1
  fi
  sleep 1
done
if [ -n "${SANDBOX_IMAGE:-}" ]; then
  image="$SANDBOX_IMAGE"
else
  image="$(codereward-build-image --base-image "${SANDBOX_BASE_IMAGE:-python:3.11-slim}")"
fi
exec reward-server --image "$image" "$@"
