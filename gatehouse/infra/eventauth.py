"""Event authentication: each producer seals its events with its own key; consumers verify.

The Redis stream is not a trust boundary: whoever can XADD could otherwise forge any event. A
producer (authsvc, uploadgw) seals the serialised `gatehouse.events.v1.Event` when it writes the
outbox row, so the relay moves sealed bytes and never holds a key. A sealed event is

    MAGIC | len(key id) (1 byte) | key id ("<producer>:<version>", ASCII) | HMAC-SHA256 (32) | event

and the MAC covers everything but itself (magic, key id and event bytes). A consumer looks the key
id up in the keys it accepts, compares the MAC in constant time, and checks that the event's
`source` is the producer that owns the key: a service's key cannot speak for another service.

Keys rotate by version: a producer signs with its newest key ("version:key,…", newest first);
consumers accept every listed "producer:version:key" until the old version has drained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Iterable

from gatehouse.infra.settings import SettingsError, decode_key

MAGIC = b"GHE1"
MAC_SIZE = 32
MIN_KEY_BYTES = 32
_PRODUCER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


class EventAuthError(Exception):
    """A sealed event that cannot be authenticated; `reason` says why (never a key)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class EventKey:
    producer: str
    version: int
    key: bytes = dataclasses.field(repr=False)

    @property
    def key_id(self) -> bytes:
        return f"{self.producer}:{self.version}".encode("ascii")


@dataclasses.dataclass(frozen=True)
class Opened:
    """An authenticated event: who sealed it (producer, key version) and the event's bytes."""

    producer: str
    version: int
    event: bytes


class EventSigner:
    """Seals a producer's events with its newest key."""

    def __init__(self, key: EventKey):
        if len(key.key) < MIN_KEY_BYTES:
            raise ValueError(f"an event key needs at least {MIN_KEY_BYTES} bytes")
        self.key = key
        key_id = key.key_id
        self._header = MAGIC + bytes([len(key_id)]) + key_id
        self._hmac = hmac.new(key.key, self._header, hashlib.sha256)  # copied per event

    @classmethod
    def for_producer(cls, producer: str, keys: Iterable[tuple[int, bytes]]) -> "EventSigner":
        """The signer for `producer` from its settings' keys, newest first."""
        version, key = next(iter(keys))
        return cls(EventKey(producer, version, key))

    def seal(self, event: bytes) -> bytes:
        mac = self._hmac.copy()
        mac.update(event)
        return self._header + mac.digest() + event


class EventVerifier:
    """Opens sealed events with the keys a consumer accepts (producer and version -> key)."""

    def __init__(self, keys: Iterable[EventKey]):
        self._keys = {key.key_id: key for key in keys}
        # HMAC objects keyed once and copied per event (a third of the cost of keying each time).
        self._keyed = {key_id: hmac.new(key.key, digestmod=hashlib.sha256) for key_id, key in self._keys.items()}
        if not self._keys:
            raise ValueError("an event verifier needs at least one key")

    def open(self, sealed: bytes) -> Opened:
        """The authenticated event, or EventAuthError."""
        if not sealed.startswith(MAGIC):
            raise EventAuthError("the event is not sealed by a producer key")
        start = len(MAGIC) + 1
        if len(sealed) < start:
            raise EventAuthError("the sealed event is truncated")
        end = start + sealed[len(MAGIC)]
        key_id = sealed[start:end]
        if len(sealed) < end + MAC_SIZE:
            raise EventAuthError("the sealed event is truncated")
        key = self._keys.get(key_id)
        if key is None:
            shown = key_id.decode("ascii", "replace")[:64]
            raise EventAuthError(f"the event is sealed with an unknown key {shown!r}")
        mac, event = sealed[end:end + MAC_SIZE], sealed[end + MAC_SIZE:]
        expected = self._keyed[key_id].copy()
        expected.update(sealed[:end])
        expected.update(event)
        if not hmac.compare_digest(mac, expected.digest()):
            raise EventAuthError(f"the event's MAC does not verify with key {key.producer}:{key.version}")
        return Opened(key.producer, key.version, event)


def peek_event(payload: bytes) -> bytes:
    """The event bytes of a stream entry WITHOUT authenticating them (sealed or bare).

    Only for readers that hold no producer key and act on nothing an attacker could gain from
    (the gateway's project-deletion listener; see its module). Never for storing events."""
    if payload.startswith(MAGIC) and len(payload) > len(MAGIC):
        return payload[len(MAGIC) + 1 + payload[len(MAGIC)] + MAC_SIZE:]
    return payload


# -- settings ----------------------------------------------------------------------------------


def parse_producer_keys(name: str, value: str) -> tuple[tuple[int, bytes], ...]:
    """A producer's keys: "version:key,…" newest first (the first signs)."""
    keys = []
    for item in _items(value):
        version, sep, raw = item.partition(":")
        keys.append((_version(name, version if sep else ""), _key(name, raw)))
    if len({v for v, _ in keys}) != len(keys):
        raise SettingsError(f"{name} versions must be unique")
    return tuple(keys)


def parse_accepted_keys(name: str, value: str) -> tuple[EventKey, ...]:
    """The keys a consumer accepts: "producer:version:key,…" (several versions per producer while
    a key rotates)."""
    keys = []
    for item in _items(value):
        producer, version, raw = (item.split(":", 2) + ["", ""])[:3]
        if not producer or not set(producer) <= _PRODUCER_CHARS:
            raise SettingsError(f"{name} entries must look like '<producer>:<version>:<key>'")
        keys.append(EventKey(producer, _version(name, version), _key(name, raw)))
    if len({k.key_id for k in keys}) != len(keys):
        raise SettingsError(f"{name} lists a producer's version twice")
    return tuple(keys)


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _version(name: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 10**9:
        raise SettingsError(f"{name} entries need a key version from 1 to 999999999 ('<version>:<key>')")
    return int(text)


def _key(name: str, raw: str) -> bytes:
    key = decode_key(raw)
    if key is None or len(key) < MIN_KEY_BYTES:
        raise SettingsError(f"{name} keys must be base64 or hex of at least {MIN_KEY_BYTES} bytes")
    return key
