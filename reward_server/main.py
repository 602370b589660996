"""`reward-server`: run one reward server until SIGTERM or SIGINT.

reward-server                                   # 127.0.0.1:50051, metrics on :9464
reward-server --host 0.0.0.0 --tls-cert c.pem --tls-key k.pem --token "$TOKEN"
reward-server --config server.toml --workers 8
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from reward_api.config_flags import HelpFormatter, add_flags, given_flags
from reward_api.listening import Listening
from sandboxes.config import SandboxConfig

from .config import SANDBOX_FLAGS, ServerConfig
from .server import RewardServer, StartupError

log = logging.getLogger("reward_server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reward-server", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--config", type=Path, help="TOML file with ServerConfig keys (top level or a [server] table); flags override it")
    parser.add_argument("--log-level", default="INFO", help="Logging level: DEBUG, INFO, WARNING or ERROR (default: INFO).")
    add_flags(parser, ServerConfig)
    add_flags(parser, SandboxConfig, SANDBOX_FLAGS)
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    overrides = {**given_flags(args, ServerConfig), **given_flags(args, SandboxConfig, SANDBOX_FLAGS)}
    if args.config:
        return ServerConfig.from_toml(args.config, **overrides)
    return ServerConfig.from_flat(overrides)


async def serve(config: ServerConfig) -> int:
    server = RewardServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except StartupError as exc:
        print(f"reward-server: {exc}", file=sys.stderr)
        await server.stop(grace_s=0)
        return 2
    print(Listening(config.host, server.port, server.metrics_port or None).line(), file=sys.stderr, flush=True)
    await stop.wait()
    log.info("draining (grace %.0fs)", config.grace_s)
    await server.stop()
    log.info("stopped; every sandbox container removed")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"reward-server: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
