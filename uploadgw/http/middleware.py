"""The one place where gateway errors become HTTP answers, plus request metrics.

twine prints the HTTP reason phrase, so the message goes there (one line, ASCII-safe so it
survives any client's Latin-1 decoding) and in the body. Bad input never becomes a 500.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CollectorRegistry, Counter, Histogram

from gatehouse.infra.errors import GatehouseError
from uploadgw.errors import http_status_for

log = logging.getLogger(__name__)
MAX_REASON = 1000


def reason_phrase(message: str) -> str:
    """One line of printable ASCII (non-ASCII characters become '?')."""
    flat = " ".join(message.split())
    safe = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in flat)
    return safe[:MAX_REASON] or "Error"


def error_response(status: int, message: str, *, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, reason=reason_phrase(message), text=message.strip() + "\n",
                        content_type="text/plain", headers=headers)


def response_for(exc: GatehouseError, realm: str = "Gatehouse") -> web.Response:
    status = http_status_for(exc)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{realm}", charset="UTF-8"'
    if exc.retry_after is not None:
        headers["Retry-After"] = str(int(exc.retry_after))
    if status >= 500:
        log.warning("request failed on a dependency", extra={"reason": exc.reason, "status": status})
    return error_response(status, exc.message, headers=headers)


# Methods counted under their own name; any other that aiohttp parses (WebDAV's and the like, none
# of them served) is "other", so that no client can add series to the metrics at will.
COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("uploadgw_http_requests", "HTTP requests served", ["route", "method", "status"],
                                registry=self.registry)
        self.refusals = Counter("uploadgw_http_refusals", "Refused requests by reason", ["route", "reason"],
                                registry=self.registry)
        self.latency = Histogram("uploadgw_http_latency_seconds", "HTTP request latency", ["route"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60))
        # The series of each (route, method, status), looked up once: `labels()` on every request
        # cost a simple page more than counting it.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def count(self, route: str, method: str, status: int, seconds: float, reason: str | None = None) -> None:
        if method not in COUNTED_METHODS:
            method = "other"
        series = self._series.get((route, method, status))
        if series is None:
            series = self._series[(route, method, status)] = (self.requests.labels(route, method, str(status)),
                                                              self.latency.labels(route))
        requests, latency = series
        requests.inc()
        latency.observe(seconds)
        if reason:
            self.refusals.labels(route, reason).inc()


def make_middleware(metrics: HttpMetrics):
    @web.middleware
    async def gateway_middleware(request: web.Request, handler):
        started = time.perf_counter()
        route = request.match_info.route.name or "unmatched"
        reason = None
        try:
            response = await handler(request)
        except GatehouseError as exc:
            reason = exc.reason
            response = response_for(exc)
        except web.HTTPException as exc:
            metrics.count(route, request.method, exc.status, time.perf_counter() - started)
            raise
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            log.exception("unhandled error", extra={"route": route})
            metrics.count(route, request.method, 500, time.perf_counter() - started, "internal")
            return error_response(500, "Internal server error.")
        metrics.count(route, request.method, response.status, time.perf_counter() - started, reason)
        return response

    return gateway_middleware


def client_address(text: str | None) -> str:
    """An address as authsvc takes it in ClientInfo (which refuses anything else): normalised,
    without an IPv6 zone id (it names one of our interfaces, not the client), or "" when `text`
    is not an address (a Unix socket's peer)."""
    try:
        address = ipaddress.ip_address((text or "").partition("%")[0])
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def header_text(value: str) -> str:
    """A header value as valid Unicode. aiohttp hands bytes that are not UTF-8 over as lone
    surrogates, which protobuf strings (ClientInfo, tokens), `str.encode()` and the JSON log
    refuse; each such byte becomes U+FFFD."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _readable_headers(headers: CIMultiDictProxy[str]) -> CIMultiDictProxy[str] | None:
    """The headers with every value valid Unicode, or None when they already are."""
    if "".join(headers.values()).isascii():  # the usual case, checked in one step
        return None
    clean = [(header_text(key), header_text(value)) for key, value in headers.items()]
    if clean == list(headers.items()):
        return None
    return CIMultiDictProxy(CIMultiDict(clean))


def serve_readable_headers(app: web.Application) -> None:
    """Every request `app` serves has header values that are valid Unicode (`header_text`) from
    the moment it is made: aiohttp's own code runs before any middleware (its Expect handler put a
    non-UTF-8 Expect value into a 417 body: a UnicodeEncodeError, so a 500), and the access log
    sees the request as it was made. aiohttp has no public hook for this, hence its request factory."""
    make_request = app._make_request  # noqa: SLF001

    def readable_request(message, *args, **kwargs):
        headers = _readable_headers(message.headers)
        if headers is not None:
            message = message._replace(headers=headers)
        return make_request(message, *args, **kwargs)

    app._make_request = readable_request  # type: ignore[method-assign]  # noqa: SLF001


def make_forwarded_middleware(trusted_hops: int):
    """Behind `trusted_hops` (at least 1) reverse proxies, the client is the address the outermost
    trusted proxy appended to X-Forwarded-For. With no trusted proxy (the default) the app has no
    such middleware and the header is ignored, since any client can send it; per-IP rate limits
    and audit IPs must not be spoofable. An entry that is not an address leaves the proxy's own
    address as the client's."""
    if trusted_hops < 1:
        raise ValueError("make_forwarded_middleware needs at least one trusted proxy")

    @web.middleware
    async def forwarded(request: web.Request, handler):
        hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
        if len(hops) >= trusted_hops:
            address = client_address(hops[-trusted_hops][:64])
            if address:
                request = request.clone(remote=address)
            else:
                log.warning("X-Forwarded-For entry of a trusted proxy is not an address; using the proxy's")
        return await handler(request)

    return forwarded
