"""The stream consumer against real Redis processes: once-only storage, reclaim, dead letters."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from auditsvc.consumer import Consumer
from auditsvc.store.models import events
from tests import eventkeys
from tests.auditsvc.conftest import build_event, wait_for, xadd_events

GROUP = "auditsvc"


async def stored_ids(log) -> list[str]:
    async with log.db() as session:
        return list((await session.execute(select(events.c.event_id))).scalars())


async def pending_count(redis_url, stream) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return (await client.xpending(stream, GROUP))["pending"]
    finally:
        await client.aclose()


def consumer(redis_url, stream, audit_log, name="c1", **kw) -> Consumer:
    kw.setdefault("block_ms", 50)
    kw.setdefault("verifier", eventkeys.VERIFIER)
    return Consumer(redis_url, stream, GROUP, name, audit_log, **kw)


async def drain(c: Consumer, rounds: int = 50) -> None:
    """Run rounds until one handles nothing."""
    for _ in range(rounds):
        if not await c.consume_once(block_ms=0):
            return


async def test_stores_each_event_once_and_acknowledges(redis_server, stream_name, audit_log):
    evs = [build_event(details={"n": str(i)}) for i in range(20)]
    await xadd_events(redis_server.url, stream_name, evs)
    await xadd_events(redis_server.url, stream_name, [evs[3]])  # a relay duplicate after a crash
    c = consumer(redis_server.url, stream_name, audit_log, batch_size=8)
    try:
        await drain(c)
    finally:
        await c.close()
    ids = await stored_ids(audit_log)
    assert sorted(ids) == sorted(e.event_id for e in evs)
    assert c.stats.stored == 20 and c.stats.duplicates == 1 and c.stats.acked == 21
    assert await pending_count(redis_server.url, stream_name) == 0


async def test_at_start_it_first_drains_its_own_pending_entries(redis_server, stream_name, audit_log):
    evs = [build_event() for _ in range(5)]
    await xadd_events(redis_server.url, stream_name, evs)
    client = aioredis.Redis.from_url(redis_server.url)
    await client.xgroup_create(stream_name, GROUP, id="0")
    await client.xreadgroup(GROUP, "c1", {stream_name: ">"}, count=10)  # read, then "crashed"
    await client.aclose()
    c = consumer(redis_server.url, stream_name, audit_log, claim_idle_ms=3_600_000)
    try:
        assert await c.consume_once(block_ms=0) == 5
    finally:
        await c.close()
    assert sorted(await stored_ids(audit_log)) == sorted(e.event_id for e in evs)
    assert c.stats.claimed == 0  # its own entries, not claimed from others
    assert await pending_count(redis_server.url, stream_name) == 0


async def test_entry_of_a_consumer_killed_between_commit_and_ack_is_reclaimed_and_stored_once(
        redis_server, stream_name, audit_db_url, audit_log, tmp_path, repo_root):
    evs = [build_event(details={"n": str(i)}) for i in range(4)]
    await xadd_events(redis_server.url, stream_name, evs)
    marker = tmp_path / "committed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.auditsvc._killable_consumer", audit_db_url, redis_server.url,
         stream_name, GROUP, "doomed", str(marker), eventkeys.accepted_env()],
        cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)})
    try:
        await wait_for(lambda: asyncio.sleep(0, marker.exists() and marker.read_text()), timeout=30)
        assert set(marker.read_text().split(",")) == {e.event_id for e in evs}
        # Committed but not acknowledged: stored, and still pending with the doomed consumer.
        assert sorted(await stored_ids(audit_log)) == sorted(e.event_id for e in evs)
        assert await pending_count(redis_server.url, stream_name) == 4
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rescuer = consumer(redis_server.url, stream_name, audit_log, name="rescuer", claim_idle_ms=200)
    try:
        await wait_for(lambda: _rescue_round(rescuer, redis_server.url, stream_name), timeout=10)
    finally:
        await rescuer.close()
    ids = await stored_ids(audit_log)
    assert sorted(ids) == sorted(e.event_id for e in evs) and len(ids) == len(set(ids))
    assert rescuer.stats.claimed == 4 and rescuer.stats.duplicates == 4 and rescuer.stats.stored == 0


async def _rescue_round(c, redis_url, stream) -> bool:
    await c.consume_once(block_ms=0)
    return await pending_count(redis_url, stream) == 0


async def test_poison_entry_goes_to_the_dead_letter_stream_and_the_rest_flows(redis_server, stream_name, audit_log):
    client = aioredis.Redis.from_url(redis_server.url)
    first = [build_event() for _ in range(3)]
    await xadd_events(redis_server.url, stream_name, first)
    garbage = eventkeys.signer().seal(b"\xff\x00garbage")  # authentic, but not an event
    poison_id = await client.xadd(stream_name, {"event_id": "x", "tag": "t", "event": garbage})
    later = [build_event() for _ in range(3)]
    await xadd_events(redis_server.url, stream_name, later)
    c = consumer(redis_server.url, stream_name, audit_log, claim_idle_ms=100, max_deliveries=3)
    try:
        await drain(c)
        # Everything else is stored at once; the poison waits, unacknowledged, for a retry.
        assert sorted(await stored_ids(audit_log)) == sorted(e.event_id for e in first + later)
        assert await pending_count(redis_server.url, stream_name) == 1
        assert await c.trim_once() == 3  # trimming keeps the unacknowledged poison entry
        assert [i for i, _ in await client.xrange(stream_name)][0] == poison_id
        await wait_for(lambda: _dead_lettered(c), timeout=10)
        more = [build_event() for _ in range(2)]
        await xadd_events(redis_server.url, stream_name, more)
        await drain(c)
        assert await c.trim_once() >= 1
    finally:
        await c.close()
    assert sorted(await stored_ids(audit_log)) == sorted(e.event_id for e in first + later + more)
    assert await pending_count(redis_server.url, stream_name) == 0
    [(_, dead)] = await client.xrange(c.dead_letter_stream)
    await client.aclose()
    assert dead[b"event"] == garbage and dead[b"event_id"] == b"x"
    assert dead[b"dlq_entry_id"] == poison_id and dead[b"dlq_deliveries"] == b"3"
    assert b"not a gatehouse.events.v1.Event" in dead[b"dlq_reason"]
    assert c.stats.dead_lettered == 1 and c.stats.retried == 2


async def _dead_lettered(c) -> bool:
    await c.consume_once(block_ms=0)
    return c.stats.dead_lettered == 1


async def test_two_consumers_share_the_load_with_no_duplicates_and_nothing_missing(
        redis_server, stream_name, audit_log):
    a = consumer(redis_server.url, stream_name, audit_log, name="a", batch_size=25)
    b = consumer(redis_server.url, stream_name, audit_log, name="b", batch_size=25)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run_forever(stop)), asyncio.create_task(b.run_forever(stop))]
    evs = [build_event(details={"n": str(i)}) for i in range(600)]
    try:
        for i in range(0, 600, 50):
            await xadd_events(redis_server.url, stream_name, evs[i:i + 50])
            await asyncio.sleep(0.01)
        await wait_for(lambda: _stored_count(audit_log, 600), timeout=30)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    ids = await stored_ids(audit_log)
    assert len(ids) == 600 and set(ids) == {e.event_id for e in evs}
    assert a.stats.stored + b.stats.stored == 600
    assert a.stats.duplicates == b.stats.duplicates == 0
    assert a.stats.stored > 0 and b.stats.stored > 0
    assert await pending_count(redis_server.url, stream_name) == 0


async def _stored_count(log, expected) -> bool:
    async with log.db() as session:
        return (await session.execute(select(func.count()).select_from(events))).scalar_one() == expected


async def test_redis_outage_does_not_stop_the_consumer(own_redis, stream_name, audit_log):
    c = consumer(own_redis.url, stream_name, audit_log, backoff_initial=0.05, backoff_max=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(c.run_forever(stop))
    try:
        before = [build_event() for _ in range(3)]
        await xadd_events(own_redis.url, stream_name, before)
        await wait_for(lambda: _stored_count(audit_log, 3))
        own_redis.kill()
        await asyncio.sleep(0.6)
        assert not task.done()
        own_redis.start()
        after = [build_event() for _ in range(3)]
        await xadd_events(own_redis.url, stream_name, after)
        await wait_for(lambda: _stored_count(audit_log, 6))
    finally:
        stop.set()
        await task
    assert sorted(await stored_ids(audit_log)) == sorted(e.event_id for e in before + after)


async def test_redis_restarted_empty_gets_the_group_recreated(own_redis, tmp_path, stream_name, audit_log):
    c = consumer(own_redis.url, stream_name, audit_log, backoff_initial=0.05, backoff_max=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(c.run_forever(stop))
    try:
        await wait_for(lambda: asyncio.sleep(0, c.source.ready))
        own_redis.kill()
        for f in own_redis.data_dir.glob("appendonly*"):
            f.unlink()  # Redis comes back without the stream or the group
        own_redis.start()
        evs = [build_event() for _ in range(2)]
        await xadd_events(own_redis.url, stream_name, evs)
        await wait_for(lambda: _stored_count(audit_log, 2))
    finally:
        stop.set()
        await task


@pytest.mark.parametrize("fields, reason", [
    ({b"tag": b"x"}, "no 'event' field"),
    ({b"event": eventkeys.signer().seal(b"")}, "no valid event_id"),
])
def test_decode_refuses_entries_that_are_not_events(fields, reason):
    from auditsvc.consumer import PoisonEntry, decode_entry

    with pytest.raises(PoisonEntry) as err:
        decode_entry(fields, eventkeys.VERIFIER)
    assert reason in err.value.reason


def test_decode_refuses_an_entry_whose_id_does_not_match_its_event():
    from auditsvc.consumer import PoisonEntry, decode_entry

    event = build_event()
    with pytest.raises(PoisonEntry):
        decode_entry({b"event_id": b"other", b"event": eventkeys.seal(event)}, eventkeys.VERIFIER)
