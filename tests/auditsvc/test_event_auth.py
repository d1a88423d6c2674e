"""Events only from their producers: forged stream entries are dead-lettered, never stored.

The audit service runs its own consumer over a real Redis; entries are XADDed by hand, as anyone
with write access to the stream could.
"""

from __future__ import annotations

import secrets

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from auditsvc.settings import Settings
from auditsvc.store.models import events
from gatehouse.infra.eventauth import EventKey, EventSigner, parse_accepted_keys, parse_producer_keys
from gatehouse.infra.settings import SettingsError
from tests.auditsvc.conftest import build_event, wait_for
from tests.eventkeys import b64

AUTH_OLD = EventKey("authsvc", 1, secrets.token_bytes(32))
AUTH_NEW = EventKey("authsvc", 2, secrets.token_bytes(32))
UPLOAD = EventKey("uploadgw", 1, secrets.token_bytes(32))
# What auditsvc accepts during authsvc's key rotation (version 2 signs; version 1 still drains).
ACCEPTED = ",".join(f"{k.producer}:{k.version}:{b64(k.key)}" for k in (AUTH_NEW, AUTH_OLD, UPLOAD))


@pytest.fixture
def audit_overrides(redis_server, stream_name):
    return dict(consumer_enabled=True, redis_url=redis_server.url, event_stream=stream_name, max_deliveries=1,
                event_keys=parse_accepted_keys("AUDITSVC_EVENT_KEYS", ACCEPTED))


def login(source="authsvc", user=("u-victim", "victim")):
    event = build_event("account:login:success", user=user)
    event.source = source
    return event


def sealed(key: EventKey, event) -> bytes:
    return EventSigner(key).seal(event.SerializeToString())


async def stored_ids(audit) -> set[str]:
    async with audit.log.db() as session:
        return set((await session.execute(select(events.c.event_id))).scalars())


async def test_forged_events_are_dead_lettered_and_genuine_ones_stored(audit, redis_server, stream_name):
    genuine = {  # the newest key, the previous key (still accepted), and the other producer's own key
        "new key": (login(), AUTH_NEW), "old key": (login(), AUTH_OLD),
        "uploadgw": (login(source="uploadgw", user=("u-other", "other")), UPLOAD),
    }
    attacker = EventKey("authsvc", 2, secrets.token_bytes(32))
    altered = login()
    genuine_bytes = sealed(AUTH_NEW, altered)
    original = altered.SerializeToString()
    altered.subject_user_id, altered.subject_username = "u-admin", "admin"
    forged = {  # all claim a login of another user, from authsvc
        "no MAC": (login(), lambda e: e.SerializeToString(), "not sealed"),
        "wrong MAC": (login(), lambda e: sealed(attacker, e), "MAC does not verify with key authsvc:2"),
        "another service's key": (login(), lambda e: sealed(UPLOAD, e), "'authsvc' sealed with uploadgw's key"),
        "altered bytes": (altered, lambda e: genuine_bytes[:-len(original)] + e.SerializeToString(),
                          "MAC does not verify"),
        "unknown key": (login(), lambda e: sealed(EventKey("authsvc", 9, secrets.token_bytes(32)), e),
                        "unknown key 'authsvc:9'"),
    }
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        entry_reason = {}
        for name, (event, seal, reason) in forged.items():
            entry = await client.xadd(stream_name, {"event_id": event.event_id, "tag": event.tag, "event": seal(event)})
            entry_reason[entry] = (name, reason)
        for event, key in genuine.values():
            await client.xadd(stream_name, {"event_id": event.event_id, "tag": event.tag,
                                            "event": sealed(key, event)})
        dead_stream = audit.settings.dead_letter_stream

        async def settled():
            return len(await client.xrange(dead_stream)) == len(forged) and len(await stored_ids(audit)) == 3

        await wait_for(settled, timeout=15)
        dead = {fields[b"dlq_entry_id"]: fields for _, fields in await client.xrange(dead_stream)}
        assert await client.xpending(stream_name, audit.settings.consumer_group) == {
            "pending": 0, "min": None, "max": None, "consumers": []}
    finally:
        await client.aclose()
    assert await stored_ids(audit) == {event.event_id for event, _ in genuine.values()}
    assert set(dead) == set(entry_reason)
    for entry, (name, reason) in entry_reason.items():
        assert dead[entry][b"dlq_reason"].startswith(b"unauthenticated: "), name
        assert reason.encode() in dead[entry][b"dlq_reason"], (name, dead[entry][b"dlq_reason"])


async def test_a_retired_key_no_longer_authenticates(audit_db_url, audit_log, redis_server, stream_name):
    from auditsvc.consumer import Consumer
    from tests.auditsvc.conftest import audit_settings

    settings = audit_settings(audit_db_url, redis_url=redis_server.url, event_stream=stream_name, max_deliveries=1,
                              event_keys=parse_accepted_keys("AUDITSVC_EVENT_KEYS",
                                                             f"authsvc:2:{b64(AUTH_NEW.key)}"))
    consumer = Consumer.from_settings(settings, audit_log, block_ms=50)
    old, new = login(), login()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        for event, key in ((old, AUTH_OLD), (new, AUTH_NEW)):
            await client.xadd(stream_name, {"event_id": event.event_id, "tag": event.tag, "event": sealed(key, event)})
        await consumer.consume_once(block_ms=0)
        [(_, dead)] = await client.xrange(settings.dead_letter_stream)
    finally:
        await client.aclose()
        await consumer.close()
    async with consumer.store.db() as session:
        assert set((await session.execute(select(events.c.event_id))).scalars()) == {new.event_id}
    assert dead[b"event_id"] == old.event_id.encode() and b"unknown key 'authsvc:1'" in dead[b"dlq_reason"]


BASE = {"AUDITSVC_DATABASE_URL": "sqlite://", "AUDITSVC_GATEWAY_KEY": "g" * 20, "AUDITSVC_OPERATOR_KEY": "o" * 20,
        "GATEHOUSE_REDIS_URL": "redis://127.0.0.1:1/0"}


def test_the_consumer_needs_event_keys_and_reads_them_per_producer():
    with pytest.raises(SettingsError, match="AUDITSVC_EVENT_KEYS"):
        Settings.from_env(BASE)
    Settings.from_env({**BASE, "AUDITSVC_CONSUMER_ENABLED": "false"})  # the API alone needs none
    keys = Settings.from_env({**BASE, "AUDITSVC_EVENT_KEYS": ACCEPTED}).event_keys
    assert [(k.producer, k.version, k.key) for k in keys] == [
        ("authsvc", 2, AUTH_NEW.key), ("authsvc", 1, AUTH_OLD.key), ("uploadgw", 1, UPLOAD.key)]
    for bad in ("authsvc:1", f"authsvc:x:{b64(UPLOAD.key)}", f"1:{b64(UPLOAD.key)}", "authsvc:1:c2hvcnQ",
                f"authsvc:1:{b64(UPLOAD.key)},authsvc:1:{b64(AUTH_OLD.key)}"):
        with pytest.raises(SettingsError, match="AUDITSVC_EVENT_KEYS"):
            Settings.from_env({**BASE, "AUDITSVC_EVENT_KEYS": bad})


def test_producer_keys_are_versioned_newest_first():
    assert parse_producer_keys("AUTHSVC_EVENT_KEYS", f"2:{b64(AUTH_NEW.key)},1:{AUTH_OLD.key.hex()}") == (
        (2, AUTH_NEW.key), (1, AUTH_OLD.key))
    for bad in (b64(AUTH_NEW.key), f"0:{b64(AUTH_NEW.key)}", "1:c2hvcnQ",
                f"1:{b64(AUTH_NEW.key)},1:{b64(AUTH_OLD.key)}"):
        with pytest.raises(SettingsError, match="AUTHSVC_EVENT_KEYS"):
            parse_producer_keys("AUTHSVC_EVENT_KEYS", bad)
