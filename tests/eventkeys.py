"""Event keys for tests: every test producer seals with these, every test consumer accepts them."""

from __future__ import annotations

import base64
import secrets

from gatehouse.infra.eventauth import EventKey, EventSigner, EventVerifier

# One key per producer name the tests use; fresh per test session.
KEYS = {producer: EventKey(producer, 1, secrets.token_bytes(32))
        for producer in ("testsvc", "authsvc", "uploadgw", "bench")}
ACCEPTED = tuple(KEYS.values())
VERIFIER = EventVerifier(ACCEPTED)


def signer(producer: str = "testsvc") -> EventSigner:
    return EventSigner(KEYS[producer])


def producer_keys(producer: str) -> tuple[tuple[int, bytes], ...]:
    """A producer's settings value (AUTHSVC_EVENT_KEYS / UPLOADGW_EVENT_KEYS parsed)."""
    return ((KEYS[producer].version, KEYS[producer].key),)


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def producer_env(producer: str) -> str:
    return f"{KEYS[producer].version}:{b64(KEYS[producer].key)}"


def accepted_env() -> str:
    return ",".join(f"{k.producer}:{k.version}:{b64(k.key)}" for k in ACCEPTED)


def seal(event) -> bytes:
    """The stream bytes of a built event, sealed by the producer it names."""
    return signer(event.source).seal(event.SerializeToString())
