"""Build the sandbox image, with or without a container registry.

The image's tag is a hash of its Dockerfile, the runner's sources and the base image's
name, so a build is skipped when an image with the same content already exists, and a
server never runs a runner older than its own code.

Offline (no registry reachable), the base is a Debian root file system made with
`debootstrap --variant=minbase --include=<every language's packages>` (`sandboxes/languages.py`:
python3, g++, a JDK, Node) and loaded with `docker import` (`python3-minimal` lacks `json` and
most of the standard library, hence full `python3`). The base's tag names a hash of the
package list, so adding a language makes a new base instead of reusing an old one. One image
carries every language: any container can take any job.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import docker
import docker.errors

from .languages import image_packages

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
DOCKERFILE = PACKAGE_DIR / "images" / "python" / "Dockerfile"
RUNNER_DIR = PACKAGE_DIR / "runner"
REPOSITORY = "codereward-sandbox-python"
PACKAGES = image_packages()
DEBOOTSTRAP_BASE = f"codereward-base:bookworm-{hashlib.sha256(' '.join(PACKAGES).encode()).hexdigest()[:8]}"
# What the sandbox never needs, left out of the base: documentation, translations, and the
# JDK's jmods (they serve only jlink).
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/lib/jvm/java-17-openjdk-amd64/jmods", "var/cache/apt/archives")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def _runner_files() -> list[Path]:
    return sorted(p for p in RUNNER_DIR.glob("*.py"))


def image_tag(base_image: str = DEBOOTSTRAP_BASE) -> str:
    """`codereward-sandbox-python:<hash>` of the Dockerfile, the runner and the base's name."""
    digest = hashlib.sha256(base_image.encode())
    for path in [DOCKERFILE, *_runner_files()]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{REPOSITORY}:{digest.hexdigest()[:12]}"


def _image_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_debootstrap_base(client: docker.DockerClient, mirror: str = DEFAULT_MIRROR) -> str:
    """Make the base (`DEBOOTSTRAP_BASE`) from a debootstrapped Debian with every language's
    packages (needs root and debootstrap)."""
    if _image_exists(client, DEBOOTSTRAP_BASE):
        return DEBOOTSTRAP_BASE
    if shutil.which("debootstrap") is None:
        raise RuntimeError(
            "debootstrap is not installed: run `apt-get install -y debootstrap`, or pass --base-image python:3.11-slim where a registry is reachable"
        )
    with tempfile.TemporaryDirectory(prefix="codereward-rootfs-") as tmp:
        rootfs, archive = Path(tmp) / "rootfs", Path(tmp) / "rootfs.tar"
        log.info("debootstrap bookworm with %s into %s (a few minutes)", " ".join(PACKAGES), rootfs)
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", "bookworm", str(rootfs), mirror],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for path in TRIM:
            shutil.rmtree(rootfs / path, ignore_errors=True)
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        repository, tag = DEBOOTSTRAP_BASE.split(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=tag)
    return DEBOOTSTRAP_BASE


def _context() -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(DOCKERFILE, arcname="Dockerfile")
        for path in _runner_files():  # codec.py is a link to reward_api/codec.py: its content goes in
            tar.add(path.resolve(), arcname=f"runner/{path.name}")
    buffer.seek(0)
    return buffer


def ensure_image(client: docker.DockerClient, base_image: str | None = None, mirror: str = DEFAULT_MIRROR, force: bool = False) -> str:
    """The sandbox image's tag, building it (and the offline base) only when missing."""
    base = base_image or DEBOOTSTRAP_BASE
    tag = image_tag(base)
    if not force and _image_exists(client, tag):
        log.info("sandbox image %s is up to date", tag)
        return tag
    if base_image is None:
        build_debootstrap_base(client, mirror)
    log.info("building %s on %s", tag, base)
    client.images.build(
        fileobj=_context(),
        custom_context=True,
        tag=tag,
        buildargs={"BASE_IMAGE": base, "LANGUAGE_PACKAGES": " ".join(PACKAGES)},
        rm=True,
        forcerm=True,
        pull=False,
        # Nothing is fetched on the debootstrap base (it has every package); another base may
        # lack the toolchains, which the Dockerfile then installs with apt-get.
        network_mode="none" if base_image is None else None,
        labels={"codereward.image": "sandbox-python"},
    )
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="codereward-build-image",
        description="Build the sandbox image (idempotent). Offline by default: a debootstrapped Debian base.",
    )
    parser.add_argument(
        "--base-image", default=None, help="build on this image instead of the debootstrap base (e.g. python:3.11-slim, needs a registry)"
    )
    parser.add_argument(
        "--mirror", default=os.environ.get("DEBIAN_MIRROR", DEFAULT_MIRROR), help="Debian mirror for debootstrap (default: %(default)s)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when the image exists")
    parser.add_argument("--print-tag", action="store_true", help="print the tag this source tree builds, and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.print_tag:
        print(image_tag(args.base_image or DEBOOTSTRAP_BASE))
        return 0
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        print(f"error: cannot reach the Docker engine ({exc}); start dockerd or set DOCKER_HOST", file=sys.stderr)
        return 2
    print(ensure_image(client, args.base_image, args.mirror, args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
