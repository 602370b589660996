"""One reward server: sandbox pool, gRPC (reward service, health, reflection), metrics.

server = RewardServer(ServerConfig(port=0, metrics_port=0))
await server.start()        # returns once the pool is warm and health says SERVING
...                         # server.port, server.metrics_port
await server.stop()         # NOT_SERVING, in-flight work gets grace_s, containers removed
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import docker
import docker.errors
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from codereward.v1 import reward_pb2, reward_pb2_grpc
from sandboxes.image import image_tag
from sandboxes.pool import SandboxPool

from .config import ServerConfig
from .errors import ErrorInterceptor, TokenInterceptor
from .metrics import Metrics
from .scoring import Scorer
from .service import RewardServicer

log = logging.getLogger(__name__)

SERVICE_NAME = reward_pb2.DESCRIPTOR.services_by_name["RewardService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_POLL_S = 1.0
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class StartupError(RuntimeError):
    """The server cannot start; the message says how to fix it."""


def check_docker(image: str) -> docker.DockerClient:
    """Fail fast, with the fix, when the engine or the image is missing."""
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        raise StartupError(
            f"cannot reach the Docker engine ({exc}). Start it (`dockerd &`, or `systemctl start docker`) or point DOCKER_HOST at one."
        ) from exc
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise StartupError(
            f"the sandbox image {image} is missing. Build it with `codereward-build-image` (offline) or `codereward-build-image --base-image python:3.11-slim`."
        ) from None
    return client


class RewardServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.sandbox = config.sandbox
        self.metrics = Metrics()
        self.health = HealthServicer()
        self.pool: SandboxPool | None = None
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.metrics_port = 0
        self._metrics_http: Any = None
        self._monitor: asyncio.Task[None] | None = None
        self._draining = False

    async def start(self) -> None:
        image = self.sandbox.image or image_tag()
        client = await asyncio.to_thread(check_docker, image)
        pool = SandboxPool(dataclasses.replace(self.sandbox, image=image), client=client, listener=self.metrics)
        self.pool = pool
        self.metrics.watch_pool(pool)
        interceptors: list[grpc.aio.ServerInterceptor] = [ErrorInterceptor()]
        if self.config.token:
            interceptors.insert(0, TokenInterceptor(self.config.token))
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ]
        server = grpc.aio.server(interceptors=interceptors, options=options)
        reward_pb2_grpc.add_RewardServiceServicer_to_server(RewardServicer(Scorer(pool, self.config, self.metrics), self.metrics), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
        )
        address = f"{self.config.host}:{self.config.port}"
        if self.config.tls:
            assert self.config.tls_cert is not None and self.config.tls_key is not None
            credentials = grpc.ssl_server_credentials([(self.config.tls_key.read_bytes(), self.config.tls_cert.read_bytes())])
            self.port = server.add_secure_port(address, credentials)
        else:
            self.port = server.add_insecure_port(address)
        if self.port == 0:
            raise StartupError(f"cannot listen on {address}")
        await self._set_health(NOT_SERVING)
        await server.start()
        self.server = server
        if self.config.metrics_port is not None:
            http, _ = start_http_server(
                self.config.metrics_port, addr=self.config.metrics_host or self.config.host, registry=self.metrics.registry
            )
            self._metrics_http = http
            self.metrics_port = http.server_port
        try:
            await pool.start()
        except BaseException:
            await self.stop()
            raise
        await self._set_health(SERVING)
        self._monitor = asyncio.create_task(self._watch_pool(), name="health-monitor")
        log.info(
            "reward server on %s:%d (metrics :%s), %d sandboxes warm", self.config.host, self.port, self.metrics_port or "-", pool.size
        )

    async def _set_health(self, status: int) -> None:
        for service in ("", SERVICE_NAME):
            await self.health.set(service, status)

    async def _watch_pool(self) -> None:
        """SERVING while at least one sandbox is alive; NOT_SERVING while none is (Docker down)."""
        current = SERVING
        while not self._draining:
            await asyncio.sleep(HEALTH_POLL_S)
            wanted = SERVING if self.pool is not None and self.pool.size > 0 else NOT_SERVING
            if wanted != current and not self._draining:
                current = wanted
                log.warning("health -> %s", health_pb2.HealthCheckResponse.ServingStatus.Name(wanted))
                await self._set_health(wanted)

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: NOT_SERVING for `drain_s` (still answering), then refuse new calls, let
        in-flight ones finish within the grace period, remove every container.
        `grace_s=0` stops at once (no drain)."""
        self._draining = True
        await self._set_health(NOT_SERVING)
        if self._monitor is not None:
            self._monitor.cancel()
        if self.server is not None and grace_s != 0:
            await asyncio.sleep(self.config.drain_s)
        if self.server is not None:
            await self.server.stop(self.config.grace_s if grace_s is None else grace_s)
        if self.pool is not None:
            await self.pool.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
            self._metrics_http = None
