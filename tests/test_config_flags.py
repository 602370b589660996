"""Config dataclasses as command lines: `reward-server --help` and `grpo-train --help` list every
field with its whole help text and its default, and each flag sets its field over a TOML file."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import pytest

from reward_api.config_flags import HelpFormatter, add_flags, given_flags, help_of, option
from reward_server.config import SANDBOX_FLAGS, ServerConfig
from reward_server.main import _parser as server_parser
from reward_server.main import config_from_args
from sandboxes.config import SandboxConfig
from trainer_client.cli import train_config, train_parser
from trainer_client.config import TrainConfig

BIN = Path(sys.executable).parent


def help_of_command(command: str) -> str:
    """`command --help` as a user sees it, white space folded (argparse wraps the lines)."""
    result = subprocess.run([str(BIN / command), "--help"], capture_output=True, text=True, timeout=60, check=True)
    return " ".join(result.stdout.split())


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def has_flag(text: str, name: str) -> bool:
    return f" {flag(name)} " in text or f" {flag(name)}, " in text  # `--x VALUE` or `--x, --no-x`


def test_reward_server_help_has_every_field_with_its_whole_text() -> None:
    text = help_of_command("reward-server")
    documented = {f.name: help_of(f) for f in fields(ServerConfig) if f.name != "sandbox"}
    documented |= {f.name: help_of(f) for f in fields(SandboxConfig) if f.name in SANDBOX_FLAGS}
    assert set(SANDBOX_FLAGS) <= documented.keys()
    for name, doc in documented.items():
        assert doc.endswith(".") and has_flag(text, name) and " ".join(doc.split()) in text, name
    assert "(default: 50051)" in text and "(default: 'runc')" in text and "--no-insecure" in text


def test_grpo_train_help_has_every_field_with_its_whole_text() -> None:
    text = help_of_command("grpo-train")
    for f in fields(TrainConfig):
        if f.name == "extra":  # a TOML table, no flag
            assert not has_flag(text, f.name)
            continue
        doc = " ".join(help_of(f).split())
        assert doc.endswith((".", ")")) and has_flag(text, f.name) and doc in text, f.name
    assert "(default: 4)" in text and "--no-tensorboard" in text and "{sequence-mean,token-mean,constant}" in text


def test_server_flags_set_their_fields_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('[server]\nworkers = 8\nmax_queue = 10\nruntime = "runsc"\ngrace_s = 3.0\n')
    args = ["--config", str(path), "--workers", "3", "--port", "0", "--host", "0.0.0.0", "--insecure", "--drain-s", "0.5"]
    config = config_from_args(server_parser().parse_args(args))
    assert (config.sandbox.workers, config.sandbox.runtime, config.max_queue, config.grace_s) == (3, "runsc", 10, 3.0)
    assert (config.port, config.host, config.insecure, config.drain_s) == (0, "0.0.0.0", True, 0.5)
    default = config_from_args(server_parser().parse_args([]))
    assert default == ServerConfig(sandbox=SandboxConfig(owner=default.sandbox.owner))
    with pytest.raises(ValueError, match="unknown keys \\['wokers'\\]"):
        path.write_text("wokers = 2\n")
        config_from_args(server_parser().parse_args(["--config", str(path)]))


def test_train_flags_set_their_fields_between_the_file_and_set(tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text("group_size = 8\nbeta = 0.1\nseed = 5\n")
    args = train_parser().parse_args(
        ["--config", str(path), "--group-size", "6", "--no-tensorboard", "--difficulty-band", "0.1,0.9", "--reward-servers", "a:1,b:2"]
        + ["--sampler", "hf", "--output-dir", "out", "--set", "group_size=2"]
    )
    config = train_config(args)
    assert (config.group_size, config.beta, config.seed, config.tensorboard) == (2, 0.1, 5, False)  # --set beats the flag
    assert (config.difficulty_band, config.reward_servers, config.sampler, config.output_dir) == (
        (0.1, 0.9),
        ("a:1", "b:2"),
        "hf",
        Path("out"),
    )
    assert train_config(train_parser().parse_args(["--group-size", "6"])).group_size == 6
    assert train_config(train_parser().parse_args([])) == TrainConfig()
    with pytest.raises(SystemExit):
        train_parser().parse_args(["--sampler", "tgi"])  # a Literal field's choices are checked


@dataclass(frozen=True)
class _Example:
    name: str = option("x", "A name.")
    mode: Literal["a", "b"] = option("a", "A mode.")
    limit: int | None = option(None, "A limit, or none.")
    ratio: float = option(0.5, "A ratio of 50%.")
    ids: tuple[int, ...] = option((), "Some ids.")
    fast: bool = option(True, "Go fast.")


def test_types_become_flags_and_only_given_flags_come_back() -> None:
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_flags(parser, _Example)
    args = parser.parse_args(["--mode", "b", "--limit", "3", "--ids", "1, 2", "--no-fast"])
    assert given_flags(args, _Example) == {"mode": "b", "limit": 3, "ids": (1, 2), "fast": False}
    assert "A ratio of 50%. (default: 0.5)" in " ".join(parser.format_help().split())


def test_a_field_without_help_text_is_refused() -> None:
    @dataclass
    class Undocumented:
        size: int = 1

    with pytest.raises(TypeError, match="Undocumented.size has no help text"):
        add_flags(argparse.ArgumentParser(), Undocumented)
