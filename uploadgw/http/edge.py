"""The public edge's bounds on hostile clients: slow bodies, refusals that end the connection, and
caps on concurrent uploads.

A request's head must be complete within `header_timeout` of the connection opening or of the
previous response (aiohttp's keep-alive timer, set in server.py). Once a handler runs, a watchdog
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

from uploadgw.errors import RateLimited
from uploadgw.http.middleware import client_address, error_response

log = logging.getLogger(__name__)
# After a refusal the gateway reads (and drops) at most this much of the body, for at most this
# long, so that a client still sending a small upload reads the answer instead of a reset; then
# it closes the connection instead of draining a large body.
REFUSAL_DRAIN_BYTES = 1024 * 1024
REFUSAL_DRAIN_SECONDS = 2.0
RETRY_AFTER = 10


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
        if not request.body_exists:
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
    """Caps on uploads running at once per token (keyed by a hash of the token string: the
    gateway never parses a token) and per client address. Replica-local: with N replicas behind a
    balancer a client may run up to N times the cap."""

    def __init__(self, *, per_token: int, per_ip: int):
        self.per_token = per_token
        self.per_ip = per_ip
        self._running: collections.Counter[str] = collections.Counter()

    def keys(self, request: web.Request) -> list[tuple[str, int]]:
        keys = []
        header = request.headers.get("Authorization", "")
        if self.per_token and header:
            keys.append(("token:" + hashlib.sha256(header.strip().encode("utf-8", "replace")).hexdigest(),
                         self.per_token))
        address = client_address(request.remote)
        if self.per_ip and address:
            keys.append(("ip:" + address, self.per_ip))
        return keys

    def check(self, request: web.Request) -> None:
        """RateLimited (429, Retry-After) when a cap of this request is full."""
        for key, cap in self.keys(request):
            if self._running[key] >= cap:
                what = "API token" if key.startswith("token:") else "address"
                raise RateLimited(f"Too many uploads at once from this {what} (at most {cap}); retry in "
                                  f"{RETRY_AFTER} seconds.", reason="too_many_uploads", retry_after=RETRY_AFTER)

    @contextlib.contextmanager
    def hold(self, request: web.Request):
        """Take a slot under every cap for the duration of the upload (check and take: one step,
        as nothing awaits between them)."""
        self.check(request)
        keys = [key for key, _ in self.keys(request)]
        for key in keys:
            self._running[key] += 1
        try:
            yield
        finally:
            for key in keys:
                self._running[key] -= 1
                if self._running[key] <= 0:
                    del self._running[key]
