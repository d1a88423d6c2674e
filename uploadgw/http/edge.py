"""The public edge's bounds on hostile clients: slow bodies, refusals that end the connection, and
caps on concurrent uploads.

A request's head must be complete within `header_timeout` of the connection opening or of its first
byte (`HeadTimedRequestHandler`); a connection idle between requests is closed after
`keepalive_timeout` (aiohttp's timer: longer, as a reverse proxy keeps its idle upstream connections
for up to a minute and must not reuse one the gateway is closing). Once a handler runs, a watchdog
follows the body: no new byte for `body_idle_timeout`, or less than `body_min_rate` bytes a second
over the last `body_rate_window` once `body_rate_grace` has passed, and the body is cut (408, the
connection closed). The watchdog only looks at what reached the request's stream; while the
handler is not reading (authsvc answering, a few seconds at most) the stream fills and the client
waits, which the idle timeout (tens of seconds) leaves room for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import logging

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from gatehouse.infra.errors import GatehouseError
from uploadgw.errors import RateLimited
from uploadgw.http import credentials
from uploadgw.http.middleware import client_address, error_response

log = logging.getLogger(__name__)
# After a refusal the gateway reads (and drops) at most this much of the body, for at most this
# long, so that a client still sending a small upload reads the answer instead of a reset; then
# it closes the connection instead of draining a large body.
REFUSAL_DRAIN_BYTES = 1024 * 1024
REFUSAL_DRAIN_SECONDS = 2.0
RETRY_AFTER = 10


class HeadTimedRequestHandler(RequestHandler):
    """aiohttp's connection handler, closing a connection whose request head is not complete
    `head_timeout` seconds after the connection opened, or after the first byte of a head that
    follows a response. (aiohttp has no such timer; this reads its per-connection counters.)"""

    __slots__ = ("_head_timeout", "_head_timer", "_heads_at_arm")

    def __init__(self, manager: Server, *, head_timeout: float, **kwargs):
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._heads_at_arm = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._disarm()
        elif data and self._head_timer is None and self._between_requests():
            self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self._current_request is None and not self._messages

    def _arm(self) -> None:
        self._heads_at_arm = self._request_count
        self._head_timer = self._loop.call_later(self._head_timeout, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._request_count == self._heads_at_arm and self._between_requests() and not self._force_close:
            log.info("request head too slow: connection closed")
            self.force_close()


class _HeadTimedServer(Server):
    def __init__(self, *args, head_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout

    def __call__(self) -> RequestHandler:
        return HeadTimedRequestHandler(self, loop=self._loop, head_timeout=self.head_timeout, **self._kwargs)


class EdgeRunner(web.AppRunner):
    """`web.AppRunner` whose connections have a head timeout (see `HeadTimedRequestHandler`)."""

    def __init__(self, app: web.Application, *, head_timeout: float, **kwargs):
        super().__init__(app, **kwargs)
        self._head_timeout = head_timeout

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        return _HeadTimedServer(server.request_handler, request_factory=server.request_factory,
                                handler_cancellation=server.handler_cancellation, loop=server._loop,  # noqa: SLF001
                                head_timeout=self._head_timeout, **server._kwargs)  # noqa: SLF001


@dataclasses.dataclass(frozen=True)
class BodyLimits:
    idle_timeout: float
    min_rate: int        # bytes per second (0: no floor)
    rate_window: float
    rate_grace: float


class BodyTimeout(ConnectionError):
    """Set on a request's stream when its body is cut: every read fails as a dropped connection."""


CUT = web.RequestKey("body_cut", str)


async def _watch(request: web.Request, limits: BodyLimits) -> None:
    content = request.content
    loop = asyncio.get_running_loop()
    start = last_progress = loop.time()
    total = content.total_bytes
    samples = collections.deque([(start, total)])
    tick = max(0.05, min(1.0, limits.idle_timeout / 4, limits.rate_window / 4))
    while not content.is_eof() and content.exception() is None:
        await asyncio.sleep(tick)
        now, received = loop.time(), content.total_bytes
        if received != total:
            total, last_progress = received, now
        if now - last_progress >= limits.idle_timeout:
            reason = f"The request body stalled: no data for {limits.idle_timeout:g} seconds."
            break
        samples.append((now, received))
        while len(samples) > 1 and samples[1][0] <= now - limits.rate_window:
            samples.popleft()
        if limits.min_rate and now - start >= limits.rate_grace:
            since, then = samples[0]
            if now > since and (received - then) / (now - since) < limits.min_rate:
                reason = (f"The request body arrived slower than {limits.min_rate} bytes per second; "
                          "upload from a faster connection.")
                break
    else:
        return
    request[CUT] = reason
    log.info("request body cut", extra={"reason": reason, "received": total})
    content.set_exception(BodyTimeout(reason))


async def finish_and_close(request: web.Request, response: web.StreamResponse, *, drain: bool = True) -> None:
    """Send `response`, read what little of the unread body fits the drain budget, close."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if drain:
        left = REFUSAL_DRAIN_BYTES
        with contextlib.suppress(Exception):
            async with asyncio.timeout(REFUSAL_DRAIN_SECONDS):
                while left > 0 and (chunk := await request.content.readany()):
                    left -= len(chunk)
    request.protocol.force_close()


def make_body_guard(limits: BodyLimits):
    """Middleware (outside the error mapping): watch the body while the handler runs; a request
    whose body was cut gets a 408; any refusal that leaves body unread closes the connection."""

    @web.middleware
    async def body_guard(request: web.Request, handler):
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        watchdog = asyncio.ensure_future(_watch(request, limits))
        try:
            response = await handler(request)
        except Exception:
            if CUT not in request:
                raise
            response = None
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if CUT in request:
            response = error_response(408, request[CUT])
            await finish_and_close(request, response, drain=False)
            return response
        if response.status >= 400 and not request.content.is_eof() and not response.prepared:
            await finish_and_close(request, response)
        return response

    return body_guard


class UploadSlots:
    """Caps on uploads running at once per token (keyed by a hash of the token string as the
    Authorization header carries it, in any of its accepted forms: the gateway never parses a
    token) and per client address. Replica-local: with N replicas behind a
    balancer a client may run up to N times the cap."""

    def __init__(self, *, per_token: int, per_ip: int):
        self.per_token = per_token
        self.per_ip = per_ip
        self._running: collections.Counter[str] = collections.Counter()

    def keys(self, request: web.Request) -> list[tuple[str, int]]:
        keys = []
        if self.per_token:
            try:
                token = credentials.upload_token(request.headers.get("Authorization"))
            except GatehouseError:
                token = None  # refused by the handler before anything is read
            if token is not None:
                keys.append(("token:" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest(), self.per_token))
        address = client_address(request.remote)
        if self.per_ip and address:
            keys.append(("ip:" + address, self.per_ip))
        return keys

    def check(self, request: web.Request) -> None:
        """RateLimited (429, Retry-After) when a cap of this request is full."""
        self._check(self.keys(request))

    def _check(self, keys: list[tuple[str, int]]) -> None:
        for key, cap in keys:
            if self._running[key] >= cap:
                what = "API token" if key.startswith("token:") else "address"
                raise RateLimited(f"Too many uploads at once from this {what} (at most {cap}); retry in "
                                  f"{RETRY_AFTER} seconds.", reason="too_many_uploads", retry_after=RETRY_AFTER)

    @contextlib.contextmanager
    def hold(self, request: web.Request):
        """Take a slot under every cap for the duration of the upload (check and take: one step,
        as nothing awaits between them)."""
        keys = self.keys(request)
        self._check(keys)
        for key, _ in keys:
            self._running[key] += 1
        try:
            yield
        finally:
            for key, _ in keys:
                self._running[key] -= 1
                if self._running[key] <= 0:
                    del self._running[key]
