"""The audit log's storage rules: once per event id, cleaning, hashed IPs, windows, retention."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select

from auditsvc.consumer import decode_entry
from auditsvc.store.models import events
from auditsvc.store.records import EventFilter
from auditsvc.store.service import AuditLog
from tests import eventkeys
from tests.auditsvc.conftest import NOW, build_event, ingest_events


def record(event):
    return decode_entry({b"event": eventkeys.seal(event)}, eventkeys.VERIFIER)


async def rows(log):
    async with log.db() as session:
        return (await session.execute(select(events).order_by(events.c.id))).all()


async def test_ingest_is_idempotent_by_event_id(audit_log):
    a, b = build_event(), build_event()
    first = await audit_log.ingest([record(a), record(b), record(a)])
    assert first.inserted == {a.event_id, b.event_id} and not first.rejected
    again = await audit_log.ingest([record(b)])
    assert again.inserted == set() and not again.rejected
    assert len(await rows(audit_log)) == 2


async def test_overlong_values_are_cut_not_refused(audit_log):
    event = build_event(user=("u-long", "n" * 5000), ua="u" * 5000, details={"k" * 500: "v" * 5000})
    assert (await audit_log.ingest([record(event)])).inserted == {event.event_id}
    [row] = await rows(audit_log)
    assert len(row.subject_username) == 200 and len(row.user_agent) == 500


async def test_one_unusable_record_does_not_hold_back_the_others(audit_log):
    good = record(build_event())
    bad = dataclasses.replace(record(build_event()), details=12345)  # not a mapping
    result = await audit_log.ingest([good, bad])
    assert result.inserted == {good.event_id} and set(result.rejected) == {bad.event_id}


async def test_ips_can_be_stored_as_keyed_hashes(audit_log):
    key = b"k" * 32
    hashing = AuditLog(audit_log.db, clock=audit_log.clock, ip_hash_key=key)
    event = build_event(ip="198.51.100.23")
    await ingest_events(hashing, [event])
    [row] = await rows(audit_log)
    assert row.ip_hashed and row.ip != "198.51.100.23" and len(row.ip) == 64
    page = await hashing.list_events(EventFilter(ip_address="198.51.100.23"))
    assert [e.event_id for e in page.entries] == [event.event_id]
    assert page.entries[0].ip == row.ip and page.entries[0].ip_hashed
    other_key = AuditLog(audit_log.db, clock=audit_log.clock, ip_hash_key=b"x" * 32)
    assert (await other_key.list_events(EventFilter(ip_address="198.51.100.23"))).entries == []


async def test_the_default_window_is_configurable(audit_log):
    await ingest_events(audit_log, [build_event(at=NOW - dt.timedelta(days=2)),
                                    build_event(at=NOW - dt.timedelta(days=4))])
    three_days = AuditLog(audit_log.db, clock=audit_log.clock, default_window=dt.timedelta(days=3))
    assert len((await three_days.list_user_events("u-alice")).entries) == 1
    assert len((await audit_log.list_user_events("u-alice")).entries) == 2


async def test_pruning_deletes_events_past_retention(audit_log, clock):
    log = AuditLog(audit_log.db, clock=clock, retention=dt.timedelta(days=30))
    keep = [build_event(at=NOW - dt.timedelta(days=29)), build_event(at=NOW - dt.timedelta(hours=1))]
    old = [build_event(at=NOW - dt.timedelta(days=31)) for _ in range(3)]
    await ingest_events(log, keep + old)
    assert await log.prune_once(batch=2) == 3
    assert await log.prune_once() == 0
    assert {r.event_id for r in await rows(log)} == {e.event_id for e in keep}
    clock.advance(days=30)
    assert await log.prune_once() == 2


async def test_an_event_without_a_time_gets_its_arrival_time(audit_log, clock):
    event = build_event()
    event.ClearField("occurred_at")
    await ingest_events(audit_log, [event])
    [row] = await rows(audit_log)
    assert row.occurred_at.replace(tzinfo=dt.timezone.utc) == NOW


async def test_follow_sends_the_backlog_oldest_first_page_by_page_then_new_events(audit_log):
    old = [build_event(at=NOW - dt.timedelta(minutes=m)) for m in (5, 3, 3, 1, 4)]
    await ingest_events(audit_log, old)
    stream = audit_log.follow(EventFilter(), since=NOW - dt.timedelta(hours=1), poll_seconds=0.01,
                              backlog_page=2)
    got = [(await anext(stream)).event_id for _ in old]
    by_time = sorted(old, key=lambda e: e.occurred_at.ToDatetime())
    assert got[0] == by_time[0].event_id and got[-1] == by_time[-1].event_id
    assert sorted(got) == sorted(e.event_id for e in old)
    new = build_event()
    await ingest_events(audit_log, [new])
    assert (await anext(stream)).event_id == new.event_id
    await stream.aclose()
