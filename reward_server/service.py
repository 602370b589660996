"""The gRPC servicer: a thin translation between the wire and the Scorer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import grpc

from codereward.v1 import reward_pb2 as pb
from codereward.v1 import reward_pb2_grpc as pb_grpc

from .errors import InvalidRequest, ServiceError
from .metrics import Metrics
from .scoring import Scorer

log = logging.getLogger(__name__)


class RewardServicer(pb_grpc.RewardServiceServicer):
    def __init__(self, scorer: Scorer, metrics: Metrics) -> None:
        self.scorer = scorer
        self.metrics = metrics

    async def _score(self, method: str, request: pb.ScoreRequest) -> pb.ScoreResponse:
        began = time.monotonic()
        self.metrics.inflight.inc()
        code = grpc.StatusCode.OK
        try:
            return await self.scorer.score(request)
        except ServiceError as exc:
            code = exc.code
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self.metrics.inflight.dec()
            self.metrics.requests.labels(method, code.name).inc()
            self.metrics.request_seconds.labels(method).observe(time.monotonic() - began)

    async def Score(self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext) -> pb.ScoreResponse:  # noqa: N802 (gRPC's name)
        return await self._score("Score", request)

    async def ScoreStream(
        self, requests: AsyncIterator[pb.ScoreRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ScoreResponse]:  # noqa: N802
        """Each group is scored as soon as it arrives; answers go out as soon as they are done.
        A refused group gets a response with `error` set; the stream goes on."""
        done: asyncio.Queue[pb.ScoreResponse | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def one(request: pb.ScoreRequest) -> None:
            try:
                done.put_nowait(await self._score("ScoreStream", request))
            except ServiceError as exc:
                done.put_nowait(pb.ScoreResponse(request_id=request.request_id, error=pb.ScoreError(code=exc.code.name, message=str(exc))))
            except Exception as exc:  # a bug: answer this group, keep the stream
                log.exception("scoring %s failed", request.request_id)
                done.put_nowait(
                    pb.ScoreResponse(
                        request_id=request.request_id, error=pb.ScoreError(code="INTERNAL", message=f"{type(exc).__name__}: {exc}")
                    )
                )

        async def read() -> None:
            try:
                async for request in requests:
                    task = asyncio.create_task(one(request))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            except Exception as exc:
                # A message that does not decode as a ScoreRequest raises here. The writer below
                # waits on `done`: it is woken first, or the stream would hang until the client's
                # deadline instead of ending with INVALID_ARGUMENT (tests/test_bad_input.py).
                done.put_nowait(None)
                raise InvalidRequest(f"stream: a message could not be read as a ScoreRequest ({type(exc).__name__}: {exc})") from None
            if tasks:
                await asyncio.gather(*list(tasks), return_exceptions=True)
            done.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (response := await done.get()) is not None:
                yield response
            await reader
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()
