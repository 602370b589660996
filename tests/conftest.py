"""Shared fixtures. Docker-backed ones skip with a reason when no engine is reachable,
except under CI=true, where a missing engine or image is a failure."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Iterator

import docker
import docker.errors
import pytest

from sandboxes.config import CONTAINER_LABEL, SandboxConfig
from sandboxes.image import image_tag
from sandboxes.pool import SandboxPool
from sandboxes.types import Limits

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: Docker-backed tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        _unavailable(f"no Docker engine reachable: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: docker.DockerClient) -> str:
    tag = os.environ.get("CODEREWARD_IMAGE") or image_tag()
    try:
        docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        _unavailable(f"sandbox image {tag} is missing: run `codereward-build-image`")
    return tag


def our_containers(client: docker.DockerClient) -> list[str]:
    """Sandbox containers owned by this test process."""
    mine = SandboxConfig().owner
    return [c["Id"] for c in client.api.containers(all=True, filters={"label": f"{CONTAINER_LABEL}={mine}"})]


@pytest.fixture
def runtime() -> str:
    """The OCI runtime of the pools in a test; test modules may parametrize it."""
    return "runc"


def require_runtime(client: docker.DockerClient, name: str) -> None:
    if name not in client.info().get("Runtimes", {}):
        _unavailable(f"the Docker engine has no {name!r} runtime registered (see scripts/setup.sh)")


@pytest.fixture
def fast_config(sandbox_image: str, runtime: str, docker_client: docker.DockerClient) -> SandboxConfig:
    """Two warm containers and short limits, so attacks that hit a limit end quickly."""
    require_runtime(docker_client, runtime)
    return SandboxConfig(
        image=sandbox_image,
        runtime=runtime,
        workers=2,
        default_limits=Limits(time_limit_s=1.0, memory_limit_mb=128, output_limit_bytes=64 * 1024),
    )


async def _assert_no_containers_left(client: docker.DockerClient) -> None:
    for _ in range(50):  # removal of an auto-removed container may still be in progress
        if not our_containers(client):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"containers left behind: {our_containers(client)}")


@pytest.fixture
async def pool(fast_config: SandboxConfig, docker_client: docker.DockerClient) -> AsyncIterator[SandboxPool]:
    sandbox_pool = SandboxPool(fast_config, client=docker_client)
    await sandbox_pool.start()
    try:
        yield sandbox_pool
    finally:
        await sandbox_pool.close()
        await _assert_no_containers_left(docker_client)


@pytest.fixture
async def single_pool(fast_config: SandboxConfig, docker_client: docker.DockerClient) -> AsyncIterator[SandboxPool]:
    """One container: consecutive jobs are guaranteed to land on the same one."""
    sandbox_pool = SandboxPool(dataclasses.replace(fast_config, workers=1), client=docker_client)
    await sandbox_pool.start()
    try:
        yield sandbox_pool
    finally:
        await sandbox_pool.close()
        await _assert_no_containers_left(docker_client)
