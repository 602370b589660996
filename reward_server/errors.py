"""Domain errors that carry their gRPC status, and the interceptors that turn them (and a
missing or wrong bearer token) into statuses."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

log = logging.getLogger(__name__)


class ServiceError(Exception):
    code = grpc.StatusCode.INTERNAL


class InvalidRequest(ServiceError):
    """A request field is wrong; the message names the field and the limit."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class QueueFull(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class Undecodable:
    """Stands for a unary request whose bytes did not decode, so that the interceptor can refuse
    it with INVALID_ARGUMENT (gRPC's own answer would be UNKNOWN)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:
            return Undecodable(f"{type(exc).__name__}: {exc}")

    return parse


def _wrap(
    handler: grpc.RpcMethodHandler, wrap_unary: Callable[..., Any], wrap_stream: Callable[..., Any], tolerant: bool = False
) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None:
        deserializer = _tolerant(handler.request_deserializer) if tolerant else handler.request_deserializer
        return grpc.unary_unary_rpc_method_handler(wrap_unary(handler.unary_unary), deserializer, handler.response_serializer)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            wrap_stream(handler.stream_stream), handler.request_deserializer, handler.response_serializer
        )
    return handler


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """ServiceError -> its status code; anything else unexpected -> INTERNAL (and logged)."""

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler

        async def fail(exc: Exception, context: grpc.aio.ServicerContext) -> None:
            if isinstance(exc, ServiceError):
                await context.abort(exc.code, str(exc))
            log.exception("%s failed", details.method)
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

        def unary(behavior: Any) -> Any:
            async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, Undecodable):
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"the request could not be read as a message of {details.method} ({request.reason})",
                    )
                try:
                    return await behavior(request, context)
                except (grpc.aio.AbortError, grpc.aio.UsageError):
                    raise
                except Exception as exc:
                    await fail(exc, context)

            return wrapper

        def stream(behavior: Any) -> Any:
            async def wrapper(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    async for response in behavior(requests, context):
                        yield response
                except (grpc.aio.AbortError, grpc.aio.UsageError):
                    raise
                except Exception as exc:
                    await fail(exc, context)

            return wrapper

        return _wrap(handler, unary, stream, tolerant=True)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Every call must carry `authorization: Bearer <token>`, except health checks (which
    load balancers and Kubernetes probes make without credentials, and which reveal nothing)."""

    EXEMPT = ("/grpc.health.v1.Health/",)

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        if details.method.startswith(self.EXEMPT):
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        given = metadata.get("authorization", "")
        given_bytes = given.encode() if isinstance(given, str) else bytes(given)
        if hmac.compare_digest(given_bytes, self._expected):
            return await continuation(details)

        async def deny_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token (metadata `authorization: Bearer <token>`)")

        async def deny_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token (metadata `authorization: Bearer <token>`)")
            yield  # pragma: no cover  (makes this an async generator)

        handler = await continuation(details)
        if handler is None:
            return handler
        return _wrap(handler, lambda _: deny_unary, lambda _: deny_stream)
