"""The console scripts as a user runs them: real processes, real server, real Docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from google.protobuf import json_format

from codereward.v1 import reward_pb2 as pb
from reward_api.types import assert_test, make_problem, make_request
from sandboxes.config import CONTAINER_LABEL

from .server_proc import ServerProcess

BIN = Path(sys.executable).parent


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "command", [["reward-server"], ["reward-client"], ["reward-client", "score"], ["reward-client", "convert"], ["codereward-build-image"]]
)
def test_every_console_script_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


@pytest.fixture
def server_process(sandbox_image: str) -> Iterator[ServerProcess]:
    server = ServerProcess(sandbox_image)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.docker
def test_sigterm_drains_and_removes_every_container(sandbox_image: str, docker_client: docker.DockerClient) -> None:
    server = ServerProcess(sandbox_image)
    owner = f"{CONTAINER_LABEL}={os.uname().nodename}:{server.proc.pid}"
    assert len(docker_client.api.containers(filters={"label": owner})) == 2
    assert run("reward-client", "health", "--target", server.target).stdout.strip() == "SERVING"
    assert server.stop() == 0
    assert docker_client.api.containers(all=True, filters={"label": owner}) == []


@pytest.mark.docker
def test_score_a_file_keeps_order_and_reports_bad_lines(server_process: ServerProcess, tmp_path: Path) -> None:
    problem = make_problem("add", [assert_test("assert add(1, 2) == 3")])
    good = make_request(problem, ["def add(a, b):\n    return a + b\n", "def add(a, b):\n    return 0\n"], request_id="first")
    refused = make_request(problem, [], request_id="empty")
    lines = [
        json_format.MessageToJson(good, indent=None).encode(),
        b"{not json",
        b"\xff\xfe not utf-8",
        json_format.MessageToJson(refused, indent=None).encode(),
    ]
    requests = tmp_path / "in.jsonl"
    requests.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    result = run("reward-client", "score", "--target", server_process.target, str(requests), "-o", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    responses = [json_format.Parse(line, pb.ScoreResponse()) for line in out.read_text().splitlines()]
    assert len(responses) == 4
    assert responses[0].request_id == "first" and [r.reward for r in responses[0].results] == [1.0, 0.0]
    assert "not a ScoreRequest" in responses[1].error.message and responses[1].error.code == "INVALID_ARGUMENT"
    assert "not UTF-8" in responses[2].error.message
    assert responses[3].request_id == "empty" and "completions: empty" in responses[3].error.message
    assert "2 programs" in result.stderr and "pass rate 50.0%" in result.stderr


@pytest.mark.docker
def test_humaneval_in_one_command(server_process: ServerProcess, tmp_path: Path) -> None:
    requests, out = tmp_path / "humaneval.jsonl", tmp_path / "scored.jsonl"
    assert run("reward-client", "convert", "humaneval", "-o", str(requests)).returncode == 0
    assert len(requests.read_text().splitlines()) == 164
    result = run("reward-client", "score", "--target", server_process.target, str(requests), "-o", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(scored) == 164 and all(s["results"][0]["verdict"] == "PASSED" for s in scored)
    assert "164 programs" in result.stderr and "pass rate 100.0%" in result.stderr


def test_convert_mbpp_with_samples(tmp_path: Path) -> None:
    data = tmp_path / "mbpp.jsonl"
    record = {
        "task_id": 7,
        "text": "add",
        "code": "def add(a, b):\n    return a + b",
        "test_setup_code": "",
        "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
        "challenge_test_list": [],
    }
    data.write_text(json.dumps(record) + "\n")
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        "\n".join(json.dumps({"task_id": 7, "completion": c}) for c in ("def add(a, b): return a + b", "def add(a, b): return 1")) + "\n"
    )
    out = tmp_path / "requests.jsonl"
    assert run("reward-client", "convert", "mbpp", "--data", str(data), "--samples", str(samples), "-o", str(out)).returncode == 0
    request = json_format.Parse(out.read_text().splitlines()[0], pb.ScoreRequest())
    assert request.request_id == "mbpp/7" and len(request.completions) == 2
    assert [t.assert_code for t in request.problem.tests] == record["test_list"]


def test_server_fails_fast_with_the_fix(tmp_path: Path) -> None:
    missing = run("reward-server", "--port", "0", "--metrics-port", "0", "--image", "codereward-sandbox-python:missing")
    docker_up = "cannot reach the Docker engine" not in missing.stderr
    if docker_up:
        assert missing.returncode == 2 and "codereward-build-image" in missing.stderr
    unreachable = run("reward-server", "--port", "0", env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert unreachable.returncode == 2 and "cannot reach the Docker engine" in unreachable.stderr and "dockerd" in unreachable.stderr
    exposed = run("reward-server", "--host", "0.0.0.0")
    assert exposed.returncode == 2 and "--insecure" in exposed.stderr
