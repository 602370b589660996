"""The sandbox image: content-addressed tag, idempotent build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest

from sandboxes import image


def test_tag_depends_on_base_and_runner_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tag = image.image_tag()
    assert tag.startswith("codereward-sandbox-python:") and tag == image.image_tag()
    assert image.image_tag("python:3.11-slim") != tag
    runner_copy = tmp_path / "runner"
    runner_copy.mkdir()
    for source in image.RUNNER_DIR.glob("*.py"):
        (runner_copy / source.name).write_bytes(source.read_bytes())
    monkeypatch.setattr(image, "RUNNER_DIR", runner_copy)
    assert image.image_tag() == tag
    (runner_copy / "main.py").write_text((runner_copy / "main.py").read_text() + "\n# changed\n")
    assert image.image_tag() != tag


class _NoBuilds:
    """The real client, except that building is an error: proves nothing gets rebuilt."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        self.images = self

    def get(self, name: str) -> Any:
        return self._client.images.get(name)

    def build(self, **kwargs: Any) -> Any:
        raise AssertionError("ensure_image rebuilt an image that already exists")


@pytest.mark.docker
def test_ensure_image_does_nothing_when_the_image_exists(docker_client: docker.DockerClient, sandbox_image: str) -> None:
    if sandbox_image != image.image_tag():
        pytest.skip("CODEREWARD_IMAGE names an image built elsewhere")
    assert image.ensure_image(_NoBuilds(docker_client)) == sandbox_image  # type: ignore[arg-type]
