"""A real `reward-server` process for the fault, load, soak and bad-input tests.

Unlike test_cli's `ServerProcess`, its stderr goes to a file (never a pipe nobody reads, which
would block a chatty server), it takes an environment (DOCKER_HOST, TMPDIR) and a fixed port
(to restart on the same address), and it reports the process's RSS and open descriptors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import docker

from reward_api.listening import find_listening
from sandboxes.config import CONTAINER_LABEL

from .helpers import parse_metrics

BIN = Path(sys.executable).parent


class ServerProcess:
    def __init__(
        self, image: str, *extra: str, port: int = 0, workers: int = 2, env: dict[str, str] | None = None, start_timeout_s: float = 90.0
    ) -> None:
        self.log = Path(tempfile.mkstemp(prefix="reward-server-", suffix=".log")[1])
        with open(self.log, "wb") as stderr:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "reward-server"),
                    "--port",
                    str(port),
                    "--metrics-port",
                    "0",
                    "--workers",
                    str(workers),
                    "--image",
                    image,
                    "--drain-s",
                    "0.2",
                    "--grace-s",
                    "5",
                    *extra,
                ],
                stderr=stderr,
                stdout=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
            )
        self.port = self.metrics_port = 0
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            listening = find_listening(self.output())
            if listening:
                self.port, self.metrics_port = listening.port, listening.metrics_port or 0
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        self.log.unlink(missing_ok=True)
        raise AssertionError(f"reward-server did not start: {self.output()[-3000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def owner_label(self) -> str:
        """The label filter of this process's sandbox containers."""
        return f"{CONTAINER_LABEL}={os.uname().nodename}:{self.proc.pid}"

    def containers(self, client: docker.DockerClient) -> list[str]:
        return [c["Id"] for c in client.api.containers(all=True, filters={"label": self.owner_label})]

    def metrics(self) -> dict[str, float]:
        """A scrape of its Prometheus endpoint: `name{labels}` -> value."""
        return parse_metrics(urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode())

    def programs_served(self) -> float:
        return sum(v for k, v in self.metrics().items() if k.startswith("codereward_programs_total{"))

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup (its containers go away on their own: stdin closes)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit. Returns the exit status."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=30)
            self.log.unlink(missing_ok=True)


def wait_for(predicate, timeout_s: float = 30.0, interval_s: float = 0.1, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"{what} not reached within {timeout_s:.0f}s")
