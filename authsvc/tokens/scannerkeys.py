"""The public keys of the secret scanners an operator trusts, and the check of a report's signature.

A scanner publishes its keys as GitHub does (`/meta/public_keys/secret_scanning`):
`{"public_keys": [{"key_identifier": "...", "key": "<PEM>", "is_current": true}, ...]}`. A report
names its key in `GITHUB-PUBLIC-KEY-IDENTIFIER` and carries, in `GITHUB-PUBLIC-KEY-SIGNATURE`, the
base64 of a DER ECDSA signature (P-256, SHA-256) over the raw body. Only a key its scanner lists as
current verifies. Keys are cached for `ttl` seconds; a key id not in a fresh cache refetches at
most every `REFETCH_AFTER` seconds (an unsigned flood of made-up ids cannot turn into a flood of
fetches), and concurrent lookups share one fetch.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.errors import InvalidArgument, Unavailable

log = logging.getLogger(__name__)
REFETCH_AFTER = 30.0
FETCH_TIMEOUT = 5.0
MAX_KEYS_BYTES = 256 * 1024
MAX_HEADER_CHARS = 1024


@dataclasses.dataclass(frozen=True)
class TrustedScanner:
    """A secret scanner whose reports are believed: its name (in events and mails) and keys URL."""

    name: str
    keys_url: str


def check_keys_url(url: str) -> str:
    """The URL, or ValueError: HTTPS, or plain HTTP to a loopback address only (a local scanner or
    a test's key server; anything else on the way could swap the keys)."""
    if not isinstance(url, str):
        raise ValueError("a scanner's keys URL must be a string")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "http" and loopback:
        return url
    raise ValueError(f"a scanner's keys URL must be https:// (http:// only to a loopback address), got {url!r}")


@dataclasses.dataclass(frozen=True)
class _Key:
    public_key: ec.EllipticCurvePublicKey | None  # None: listed, but not a P-256 key we can use
    current: bool


class ScannerKeys:
    """One scanner's keys, fetched from its URL and cached."""

    def __init__(self, scanner: TrustedScanner, *, ttl: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.scanner = scanner
        self.ttl = ttl
        self._monotonic = monotonic
        self._keys: Mapping[str, _Key] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def lookup(self, key_id: str) -> _Key | None:
        asked = self._monotonic()
        age = asked - self._fetched_at
        if age < self.ttl and (key_id in self._keys or age < min(self.ttl, REFETCH_AFTER)):
            return self._keys.get(key_id)
        async with self._lock:
            if self._fetched_at < asked:  # no fetch finished while this one waited
                self._keys = await self._fetch()
                self._fetched_at = self._monotonic()
        return self._keys.get(key_id)

    async def _fetch(self) -> Mapping[str, _Key]:
        url = self.scanner.keys_url
        try:
            timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                # No redirects: a redirect could leave HTTPS.
                async with http.get(url, allow_redirects=False, headers={"Accept": "application/json"}) as reply:
                    raw = await reply.content.read(MAX_KEYS_BYTES + 1)
                    status = reply.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise self._unavailable(f"could not reach it ({type(exc).__name__})") from None
        if status != 200:
            raise self._unavailable(f"it answered HTTP {status}")
        if len(raw) > MAX_KEYS_BYTES:
            raise self._unavailable("its answer is too large")
        try:
            return _parse_keys(json.loads(raw))
        except (ValueError, TypeError, KeyError) as exc:
            raise self._unavailable(f"its answer is not a key list ({exc})") from None

    def _unavailable(self, why: str) -> Unavailable:
        log.warning("scanner keys not fetched", extra={"scanner": self.scanner.name, "why": why})
        return Unavailable(f"The public keys of the secret scanner {self.scanner.name!r} could not be fetched: "
                           f"{why}. Try again later.", reason="scanner_keys_unavailable")


def _parse_keys(document: object) -> dict[str, _Key]:
    if not isinstance(document, dict) or not isinstance(document.get("public_keys"), list):
        raise ValueError("no 'public_keys' list")
    keys: dict[str, _Key] = {}
    for entry in document["public_keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("key_identifier"), str) \
                or not isinstance(entry.get("key"), str):
            raise ValueError("each key needs 'key_identifier' and 'key' strings")
        try:
            loaded = serialization.load_pem_public_key(entry["key"].encode("utf-8"))
        except (ValueError, TypeError):
            loaded = None
        usable = loaded if isinstance(loaded, ec.EllipticCurvePublicKey) and \
            isinstance(loaded.curve, ec.SECP256R1) else None
        keys[entry["key_identifier"]] = _Key(usable, entry.get("is_current") is True)
    return keys


class ReportVerifier:
    """Which trusted scanner signed this body, or InvalidArgument (Unavailable when keys could not
    be fetched). Fails closed: no scanner configured means no report is believed."""

    def __init__(self, scanners: tuple[TrustedScanner, ...], *, ttl: float) -> None:
        self._scanners = [ScannerKeys(s, ttl=ttl) for s in scanners]

    async def signer(self, body: bytes, key_id: str, signature: str) -> TrustedScanner:
        if not key_id or not signature:
            raise InvalidArgument("The report is not signed: it needs the GITHUB-PUBLIC-KEY-IDENTIFIER and "
                                  "GITHUB-PUBLIC-KEY-SIGNATURE headers.", reason="signature_missing")
        if len(key_id) > MAX_HEADER_CHARS or len(signature) > MAX_HEADER_CHARS:
            raise InvalidArgument("The report's signature headers are too long.", reason="signature_invalid")
        try:
            der = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument("The report's signature is not base64.", reason="signature_invalid") from None
        found: list[tuple[TrustedScanner, _Key]] = []
        unavailable: Unavailable | None = None
        for keys in self._scanners:
            try:
                key = await keys.lookup(key_id)
            except Unavailable as exc:
                unavailable = exc
                continue
            if key is not None:
                found.append((keys.scanner, key))
        current = [(scanner, key.public_key) for scanner, key in found if key.current and key.public_key]
        for scanner, public_key in current:
            try:
                public_key.verify(der, body, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            return scanner
        if current:
            raise InvalidArgument("The report's signature does not match its body.", reason="signature_invalid")
        if any(key.current for _, key in found):
            raise InvalidArgument(f"The key {key_id[:100]!r} is not an ECDSA P-256 public key.", reason="key_unusable")
        if found:
            raise InvalidArgument(f"The key {key_id[:100]!r} is no longer current: sign with a current key.",
                                  reason="key_not_current")
        if unavailable is not None:
            raise unavailable
        raise InvalidArgument(f"No trusted secret scanner has the key {key_id[:100]!r}.", reason="unknown_key")
