"""Sessions over the reward service's `ScoreStream`: many groups in flight, answers as futures.

- A `ScoreSession` is one stream; it reopens it after `UNAVAILABLE` and sends again every
  request not yet answered, on whichever server is up: a server killed mid-stream loses no group.
- A stream stays on one server, so a `SpreadSession` keeps one stream per server and sends each
  group on the least loaded: what a trainer with several reward servers uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc

from codereward.v1 import reward_pb2 as pb

from .channel import ClientOptions, address_list, resolve_addresses
from .clients import AsyncRewardClient, Backoff, RewardServiceError
from .types import GroupScore

log = logging.getLogger(__name__)


class ScoreSession:
    """Submit groups over one ScoreStream; results come back as futures, in any order."""

    def __init__(self, client: AsyncRewardClient) -> None:
        self.client = client
        self._pending: dict[str, tuple[pb.ScoreRequest, asyncio.Future[GroupScore]]] = {}
        self._outbox: asyncio.Queue[pb.ScoreRequest] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ended: RewardServiceError | None = None  # why the stream gave up, once it has
        self.reconnects = 0

    async def __aenter__(self) -> ScoreSession:
        self._task = asyncio.create_task(self._run(), name="score-session")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # (a cancellation of close's caller still propagates)
        for _, future in self._pending.values():
            if not future.done():
                future.cancel()

    @property
    def ended(self) -> bool:
        """The stream gave up (a status that is not retried, or retrying ran out of time)."""
        return self._ended is not None

    def submit(self, request: pb.ScoreRequest) -> asyncio.Future[GroupScore]:
        """Send a group; its future fails at once with the reason when the stream has ended."""
        if self._task is None:
            raise RuntimeError("use `async with client.session() as session`")
        if request.request_id in self._pending:
            raise ValueError(f"request_id {request.request_id!r} is already in flight")
        future: asyncio.Future[GroupScore] = asyncio.get_running_loop().create_future()
        if self._ended is not None:
            future.set_exception(self._ended)
            return future
        self._pending[request.request_id] = (request, future)
        self._outbox.put_nowait(request)
        return future

    @property
    def in_flight(self) -> int:
        """Groups sent and not answered yet."""
        return len(self._pending)

    def waiting_for(self, request_id: str) -> bool:
        return request_id in self._pending

    def detach_pending(self) -> list[tuple[pb.ScoreRequest, asyncio.Future[GroupScore]]]:
        """Take every unanswered group off this session (to send it elsewhere): closing it then
        leaves their futures alone."""
        pending, self._pending = list(self._pending.values()), {}
        return pending

    @property
    def in_flight_programs(self) -> int:
        return sum(len(request.completions) for request, _ in self._pending.values())

    async def _requests(self, resend: list[pb.ScoreRequest]) -> AsyncIterator[pb.ScoreRequest]:
        for request in resend:
            yield request
        while True:
            request = await self._outbox.get()
            if request.request_id in self._pending:
                yield request

    async def _run(self) -> None:
        backoff = Backoff(self.client.options)
        resend: list[pb.ScoreRequest] = []
        while True:
            call = self.client.stub.ScoreStream(self._requests(resend), metadata=self.client.metadata)
            try:
                async for response in call:
                    backoff = Backoff(self.client.options)
                    entry = self._pending.pop(response.request_id, None)
                    if entry is None or entry[1].done():
                        continue
                    if response.HasField("error"):
                        refusal = getattr(grpc.StatusCode, response.error.code, grpc.StatusCode.UNKNOWN)
                        entry[1].set_exception(RewardServiceError(refusal, response.error.message))
                    else:
                        entry[1].set_result(GroupScore.from_pb(response))
                # The server ended the stream without an error (it never should with groups
                # unanswered): treated as a dropped connection.
                code, details = grpc.StatusCode.UNAVAILABLE, "the server ended the stream"
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
            delay = backoff.delay_after(code, details)
            if delay is None:
                self._ended = RewardServiceError(code, details)
                for _, future in self._pending.values():
                    if not future.done():
                        future.set_exception(self._ended)
                self._pending.clear()
                return
            self.reconnects += 1  # reconnect and send every unanswered group again
            await asyncio.sleep(delay)
            resend = [request for request, _ in self._pending.values()]
            while not self._outbox.empty():  # already in `resend`
                self._outbox.get_nowait()


class SpreadSession:
    """Groups spread over several reward servers at once, one ScoreStream per server.

    A stream is one HTTP/2 call, so `round_robin` keeps it on one server for its whole life: one
    `ScoreSession` uses one server however many are given. Here stream i prefers address i and
    fails over to the others (`pick_first` over the address list rotated to start at i); each
    group goes to the stream with the fewest programs in flight, so a slower or busier server
    gets fewer. A dead server's unanswered groups are sent again on its stream's next server.
    Host names are resolved again every `refresh_s` (a Kubernetes headless Service: pods come
    and go): a new address gets a stream, and a vanished one's stream is closed, its unanswered
    groups sent again on the others. A URI target (`dns:///name:port`) is gRPC's to resolve:
    one stream, as `ScoreSession`.

        async with SpreadSession(["10.0.0.5:50051", "10.0.0.6:50051"]) as session:
            group = await session.submit(request)
    """

    def __init__(
        self,
        targets: str | Sequence[str],
        options: ClientOptions | None = None,
        *,
        refresh_s: float = 30.0,
        resolve: Callable[[str | Sequence[str]], list[tuple[str, str]] | None] = resolve_addresses,
        **kwargs: Any,
    ) -> None:
        self.targets = targets
        self.options = options or ClientOptions(**kwargs)
        self.refresh_s = refresh_s
        self._resolve = resolve
        self._streams: dict[tuple[str, str] | None, tuple[AsyncRewardClient, ScoreSession]] = {}
        self._refresher: asyncio.Task[None] | None = None

    @property
    def sessions(self) -> list[ScoreSession]:
        return [session for _, session in self._streams.values()]

    @property
    def addresses(self) -> list[tuple[str, str]]:
        """The addresses with a stream now (empty for a URI target)."""
        return [a for a in self._streams if a is not None]

    async def __aenter__(self) -> SpreadSession:
        addresses = await asyncio.to_thread(self._resolve, self.targets)
        if addresses is None:
            await self._open(None, AsyncRewardClient(self.targets, self.options))
        else:
            await self._open_all(addresses)
        if addresses is not None and self.refresh_s > 0:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="spread-session-refresh")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(self, address: tuple[str, str] | None, client: AsyncRewardClient) -> None:
        session = client.session()
        await session.__aenter__()
        self._streams[address] = (client, session)

    async def _open_all(self, addresses: list[tuple[str, str]]) -> None:
        """A stream for each address without one, failing over to all the others."""
        for i, address in enumerate(addresses):
            if address not in self._streams:
                rotation = addresses[i:] + addresses[:i]
                await self._open(address, AsyncRewardClient(address_list(rotation), self.options, policy="pick_first"))

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                addresses = await asyncio.to_thread(self._resolve, self.targets)
            except (OSError, ValueError) as exc:  # a DNS hiccup: keep the streams there are
                log.warning("resolving %s again failed (%s); keeping %d streams", self.targets, exc, len(self._streams))
                continue
            try:
                await self.refresh(addresses or self.addresses)
            except Exception:  # noqa: BLE001 — the refresher must outlive one bad round
                log.exception("refreshing the reward-server streams failed; trying again in %.0fs", self.refresh_s)

    async def refresh(self, addresses: list[tuple[str, str]]) -> None:
        """Bring the streams in line with `addresses`: open streams to new addresses; close those
        of vanished ones, those that gave up (`ScoreSession.ended`), and idle ones that failed
        over to another server (so that they come back to their own). The groups of a closed
        stream are sent again on the others. Other streams are left as they are."""
        if None in self._streams:
            return
        stale = [
            a
            for a, (_, session) in self._streams.items()
            if a not in addresses or session.ended or (session.reconnects and not session.in_flight)
        ]
        closing = [self._streams.pop(a) for a in stale]
        moved = [entry for _, session in closing for entry in session.detach_pending()]
        try:
            await self._open_all(addresses)
        finally:  # even when cancelled: no group may be left without a stream or an answer
            for request, future in moved:
                if future.done():
                    continue
                if self._streams:
                    _forward(self.submit(request), future)
                else:
                    future.set_exception(RewardServiceError(grpc.StatusCode.UNAVAILABLE, "no reward-server stream left"))
            for client, session in closing:
                await session.close()
                await client.close()

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        for client, session in self._streams.values():
            await session.close()
            await client.close()
        self._streams = {}

    def submit(self, request: pb.ScoreRequest) -> asyncio.Future[GroupScore]:
        if not self._streams:
            raise RuntimeError("use `async with SpreadSession(...) as session`")
        if any(s.waiting_for(request.request_id) for s in self.sessions):
            raise ValueError(f"request_id {request.request_id!r} is already in flight")
        # A stream that gave up answers at once with its reason; the others are preferred (the
        # next refresh reopens it).
        live = [s for s in self.sessions if not s.ended] or self.sessions
        return min(live, key=lambda s: s.in_flight_programs).submit(request)

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self.sessions)

    @property
    def reconnects(self) -> int:
        return sum(s.reconnects for s in self.sessions)


def _forward(source: asyncio.Future[GroupScore], target: asyncio.Future[GroupScore]) -> None:
    """When `source` is done, give its outcome to `target` (unless that was cancelled)."""

    def done(future: asyncio.Future[GroupScore]) -> None:
        if target.done():
            return
        if future.cancelled():
            target.cancel()
        elif future.exception() is not None:
            target.set_exception(future.exception())  # type: ignore[arg-type]
        else:
            target.set_result(future.result())

    source.add_done_callback(done)
