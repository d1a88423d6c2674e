"""With AUDITSVC_HASH_IPS on, the service stores and shows keyed hashes, and still filters by IP."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from auditsvc.store.models import events
from gatehouse.audit.v1 import audit_pb2
from tests.auditsvc.conftest import build_event, ingest_events


@pytest.fixture
def audit_overrides():
    return dict(hash_ips=True, ip_hash_key=b"\x07" * 32)


async def test_ips_are_hashed_when_the_setting_is_on(audit):
    event = build_event(ip="2001:db8::42")
    await ingest_events(audit.log, [event])
    async with audit.log.db() as session:
        stored = (await session.execute(select(events.c.ip))).scalar_one()
    assert "2001:db8::42" not in stored
    [entry] = (await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-alice"))).events
    assert entry.ip_hashed and entry.ip_address == stored
    reply = await audit.admin.ListEvents(audit_pb2.AdminListEventsRequest(
        filter=audit_pb2.EventFilter(ip_address="2001:db8::42")))
    assert [e.event_id for e in reply.events] == [event.event_id]
