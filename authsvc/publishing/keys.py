"""The issuers' signing keys, from each issuer's OIDC discovery document, cached by `kid`.

- The discovery document is `<issuer>/.well-known/openid-configuration`; its `issuer` must repeat
  the configured URL exactly, and neither it nor the key set is followed through a redirect (a
  redirect could hand another issuer's keys to this one).
- A key set is kept `max_age`; a `kid` it does not hold refreshes it, at most once per
  `refresh_interval` per issuer (an attacker's made-up `kid`s cannot make us hammer the issuer),
  and concurrent refreshes of one issuer are one fetch.
- An empty or unusable key set is never cached: the last good one stays.
- When a refresh fails, the last good key set is still used for `stale_for` past its age (a short
  issuer outage does not stop publishing); after that, KeysUnavailable.
- Only RSA and P-256 EC signature keys are kept (RS256 and ES256, nothing else is accepted).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp
import jwt

from authsvc.errors import Unavailable
from authsvc.settings import OidcIssuer, issuer_url_ok
from gatehouse.infra.clock import Clock

log = logging.getLogger(__name__)
ALGORITHMS = {"RSA": "RS256", "EC": "ES256"}
MAX_DOCUMENT_BYTES = 256 * 1024
FETCH_TIMEOUT_SECONDS = 5.0


class KeysUnavailable(Unavailable):
    """The issuer's keys could not be had (and no recent copy is left)."""


@dataclasses.dataclass
class _Entry:
    keys: dict[str, jwt.PyJWK]
    fetched_at: dt.datetime | None = None  # the last good fetch
    tried_at: dt.datetime | None = None    # the last attempt, good or not
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


class KeySets:
    def __init__(self, *, clock: Clock, refresh_interval: dt.timedelta, max_age: dt.timedelta,
                 stale_for: dt.timedelta, ca_file: str = "") -> None:
        self.clock = clock
        self.refresh_interval = refresh_interval
        self.max_age = max_age
        self.stale_for = stale_for
        self._ca_file = ca_file
        self._entries: dict[str, _Entry] = {}
        self._session: aiohttp.ClientSession | None = None
        self.fetches = 0  # key set fetches made (the benchmark checks a warm exchange makes none)

    async def key(self, issuer: OidcIssuer, kid: str) -> jwt.PyJWK | None:
        """The issuer's key `kid`, or None when the issuer has no such key (after the refresh this
        may cause). KeysUnavailable when the issuer cannot be reached and no recent copy is kept."""
        entry = self._entries.setdefault(issuer.url, _Entry(keys={}))
        now = self.clock.now()
        fresh = entry.fetched_at is not None and now - entry.fetched_at < self.max_age
        if fresh and kid in entry.keys:
            return entry.keys[kid]
        async with entry.lock:
            now = self.clock.now()
            fresh = entry.fetched_at is not None and now - entry.fetched_at < self.max_age
            if fresh and kid in entry.keys:
                return entry.keys[kid]  # another call refreshed while this one waited
            if entry.tried_at is None or now - entry.tried_at >= self.refresh_interval:
                entry.tried_at = now
                try:
                    entry.keys = await self._fetch(issuer)
                    entry.fetched_at = now
                    return entry.keys.get(kid)
                except KeysUnavailable as exc:
                    log.warning("issuer keys not refreshed", extra={"issuer": issuer.url, "reason": exc.reason})
                    failure: KeysUnavailable = exc
            else:
                failure = KeysUnavailable(f"{issuer.url} could not be reached for its keys a moment ago; try again "
                                          "in a minute.", reason="fetch_failed")
            usable = entry.fetched_at is not None and now - entry.fetched_at < self.max_age + self.stale_for
            if not usable:
                raise failure
        return entry.keys.get(kid)

    async def _fetch(self, issuer: OidcIssuer) -> dict[str, jwt.PyJWK]:
        self.fetches += 1
        discovery = await self._get_json(issuer.url.rstrip("/") + "/.well-known/openid-configuration")
        if discovery.get("issuer") != issuer.url:
            raise KeysUnavailable(f"The discovery document of {issuer.url} names another issuer.",
                                  reason="issuer_mismatch")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not issuer_url_ok(jwks_uri.split("?", 1)[0]):
            raise KeysUnavailable(f"The discovery document of {issuer.url} has no usable jwks_uri.",
                                  reason="jwks_uri_invalid")
        keys = _usable_keys(await self._get_json(jwks_uri))
        if not keys:
            raise KeysUnavailable(f"{issuer.url} publishes no usable signing key.", reason="empty_key_set")
        return keys

    async def _get_json(self, url: str) -> Mapping[str, Any]:
        session = self._get_session()
        try:
            async with session.get(url, allow_redirects=False, headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    raise KeysUnavailable(f"{_host(url)} answered {resp.status} for its keys.", reason="fetch_failed")
                body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
        except (aiohttp.ClientError, asyncio.TimeoutError, ssl.SSLError) as exc:
            raise KeysUnavailable(f"{_host(url)} could not be reached for its keys.",
                                  reason="fetch_failed") from exc
        if len(body) > MAX_DOCUMENT_BYTES:
            raise KeysUnavailable(f"{_host(url)} sent too large a document.", reason="document_too_large")
        try:
            data = json.loads(body)
        except ValueError:
            raise KeysUnavailable(f"{_host(url)} sent a document that is not JSON.", reason="not_json") from None
        if not isinstance(data, dict):
            raise KeysUnavailable(f"{_host(url)} sent a document that is not a JSON object.", reason="not_json")
        return data

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            context = ssl.create_default_context(cafile=self._ca_file or None)
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS),
                connector=aiohttp.TCPConnector(ssl=context, limit=20), trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _usable_keys(jwks: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for item in jwks.get("keys") or ():
        if not isinstance(item, dict):
            continue
        kid, kty = item.get("kid"), item.get("kty")
        algorithm = ALGORITHMS.get(kty) if isinstance(kty, str) else None
        if not isinstance(kid, str) or not kid or algorithm is None or item.get("use", "sig") != "sig":
            continue
        if item.get("alg", algorithm) != algorithm or (kty == "EC" and item.get("crv") != "P-256"):
            continue
        try:
            keys[kid] = jwt.PyJWK(item, algorithm)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
    return keys


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc

