"""The consumer under poison entries, against a real Redis stream and a real database.

Whatever one entry holds, the consumer keeps going: a failure to decode or store it counts as a
delivery, after `max_deliveries` it goes to the dead-letter stream with its reason, and the other
entries of its batch are stored meanwhile.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from auditsvc.consumer import Consumer
from auditsvc.store.models import events
from auditsvc.store.service import AuditLog
from gatehouse.events.v1 import event_pb2
from gatehouse.infra.clock import FakeClock
from gatehouse.infra.db import make_engine, make_session_factory
from tests import eventkeys
from tests.auditsvc.conftest import NOW, build_event, wait_for, xadd_events

GROUP = "auditsvc"


async def stored_among(log: AuditLog, event_ids) -> set[str]:
    async with log.db() as session:
        rows = await session.execute(select(events.c.event_id).where(events.c.event_id.in_(list(event_ids))))
        return set(rows.scalars())


async def dead_letters(client, stream) -> dict[bytes, dict]:
    return {fields[b"dlq_entry_id"]: fields for _id, fields in await client.xrange(stream)}


async def settled(client, stream, last_entry_id) -> bool:
    """Every entry read by the group and none left pending."""
    [group] = [g for g in await client.xinfo_groups(stream) if g["name"] == GROUP.encode()]
    return group["pending"] == 0 and group["last-delivered-id"] == last_entry_id


# -- one poison entry in a batch ---------------------------------------------------------------


async def test_an_event_whose_time_overflows_is_dead_lettered_while_its_batch_and_later_ones_are_stored(
        redis_server, stream_name, audit_log):
    """Guards the stall of issue 19: seconds = 10**12 raised OverflowError for the whole batch,
    forever; nothing after it was stored and trimming stopped at it."""
    before = [build_event(details={"n": str(i)}) for i in range(3)]
    poison = build_event()
    poison.occurred_at.seconds = 10**12
    after = [build_event(details={"n": str(i)}) for i in range(3)]
    entry_ids = await xadd_events(redis_server.url, stream_name, before + [poison] + after)
    c = Consumer(redis_server.url, stream_name, GROUP, "c1", audit_log, verifier=eventkeys.VERIFIER, batch_size=50, block_ms=50,
                 claim_idle_ms=100, max_deliveries=3, trim_interval=0.1)
    client = aioredis.Redis.from_url(redis_server.url)
    stop = asyncio.Event()
    task = asyncio.create_task(c.run_forever(stop))
    try:
        # The poison entry's neighbours in the same batch are stored at once.
        good = {e.event_id for e in before + after}
        await wait_for(lambda: _has(audit_log, good), timeout=5)
        await wait_for(lambda: dead_letters(client, c.dead_letter_stream), timeout=10)
        later = build_event()
        await xadd_events(redis_server.url, stream_name, [later])
        await wait_for(lambda: _has(audit_log, {later.event_id}), timeout=5)
        await wait_for(lambda: _stream_empty(client, stream_name), timeout=5)  # trimming goes on
    finally:
        stop.set()
        await task
        dead = await dead_letters(client, c.dead_letter_stream)
        await client.aclose()
    assert list(dead) == [entry_ids[3]]
    [fields] = dead.values()
    assert fields[b"event"] == eventkeys.seal(poison) and fields[b"dlq_deliveries"] == b"3"
    assert b"OverflowError" in fields[b"dlq_reason"]
    assert await stored_among(audit_log, [poison.event_id]) == set()
    assert c.stats.dead_lettered == 1 and c.stats.retried == 2


async def _has(log, event_ids) -> bool:
    return await stored_among(log, event_ids) == set(event_ids)


async def _none_pending(client, stream) -> bool:
    return (await client.xpending(stream, GROUP))["pending"] == 0


async def _stream_empty(client, stream) -> bool:
    return await client.xlen(stream) == 0


async def _refuse_tag_in_the_database(log: AuditLog, tag: str) -> None:
    """A trigger that makes the database itself refuse events with `tag` (a real fault, not a mock)."""
    async with log.db() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text(
                "CREATE FUNCTION refuse_tag() RETURNS trigger AS $$ BEGIN IF NEW.tag = '" + tag + "' THEN "
                "RAISE EXCEPTION 'refused by the test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            await session.execute(text("CREATE TRIGGER refuse_tag BEFORE INSERT ON events FOR EACH ROW "
                                       "EXECUTE FUNCTION refuse_tag()"))
        else:
            await session.execute(text(
                "CREATE TRIGGER refuse_tag BEFORE INSERT ON events WHEN NEW.tag = '" + tag + "' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"))
        await session.commit()


async def test_an_event_the_database_refuses_is_isolated_from_its_batch_and_dead_lettered(
        redis_server, stream_name, audit_log):
    """On PostgreSQL a trigger's error arrives as a bare DBAPIError, which the consumer took for an
    outage: the batch was retried forever. Now, with the database answering, the batch is stored
    event by event and only the refused one is retried, then dead-lettered."""
    await _refuse_tag_in_the_database(audit_log, "test:refused")
    good = [build_event(details={"n": str(i)}) for i in range(4)]
    refused = build_event("test:refused")
    entry_ids = await xadd_events(redis_server.url, stream_name, good[:2] + [refused] + good[2:])
    c = Consumer(redis_server.url, stream_name, GROUP, "c1", audit_log, verifier=eventkeys.VERIFIER, batch_size=50, block_ms=50,
                 claim_idle_ms=100, max_deliveries=2, backoff_initial=0.05, backoff_max=0.2)
    client = aioredis.Redis.from_url(redis_server.url)
    stop = asyncio.Event()
    task = asyncio.create_task(c.run_forever(stop))
    try:
        await wait_for(lambda: _has(audit_log, {e.event_id for e in good}), timeout=5)
        await wait_for(lambda: dead_letters(client, c.dead_letter_stream), timeout=10)
        later = build_event()
        await xadd_events(redis_server.url, stream_name, [later])
        await wait_for(lambda: _has(audit_log, {later.event_id}), timeout=5)
        dead = await dead_letters(client, c.dead_letter_stream)
        # The row is visible at commit and XACK follows it: wait for the ack, not just the row.
        await wait_for(lambda: _none_pending(client, stream_name), timeout=5)
    finally:
        stop.set()
        await task
        await client.aclose()
    assert list(dead) == [entry_ids[2]]
    assert b"refused by the test trigger" in dead[entry_ids[2]][b"dlq_reason"]
    assert await stored_among(audit_log, [refused.event_id]) == set()


# -- fuzz: valid protobuf events with extreme field values -------------------------------------

_ANY_CHAR = st.characters(exclude_categories=())  # NUL, controls, lone surrogates, unassigned
_SHORT = st.text(_ANY_CHAR, max_size=30)
_HUGE = st.builds(lambda text, times: text * times, st.text(_ANY_CHAR, min_size=1, max_size=3),
                  st.integers(5_000, 60_000))
_TEXT = st.one_of(_SHORT, _SHORT, _SHORT, _HUGE)
_SECONDS = st.one_of(
    st.integers(-2**63, 2**63 - 1),
    st.integers(-62135596800, 253402300799),  # what a Timestamp may hold: years 1 to 9999
    st.sampled_from([10**12, -10**12, 253402300799, 253402300800, -62135596800, -62135596801, 0, -1]),
)
_NANOS = st.one_of(st.integers(-2**31, 2**31 - 1), st.integers(0, 999_999_999))


def _set_text(message, field: str, value: str) -> None:
    """Where protobuf refuses a value (a lone surrogate is not UTF-8), the nearest it accepts."""
    try:
        setattr(message, field, value)
    except (UnicodeError, ValueError):
        setattr(message, field, value.encode("utf-8", "replace").decode("utf-8"))


@st.composite
def extreme_events(draw) -> event_pb2.Event:
    event = event_pb2.Event()
    _set_text(event, "event_id", draw(st.one_of(st.uuids().map(str), st.uuids().map(str), _SHORT)))
    for field in ("tag", "subject_user_id", "subject_username", "project_id", "project_name",
                  "ip_address", "user_agent"):
        _set_text(event, field, draw(_TEXT))
    # Sealed by the producer it names: what a genuine producer could write (forgeries:
    # tests/auditsvc/test_event_auth.py).
    event.source = draw(st.sampled_from(sorted(eventkeys.KEYS)))
    if draw(st.booleans()):
        event.tag = "account:login:success"
    event.schema_version = draw(st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        event.occurred_at.seconds = draw(_SECONDS)
        event.occurred_at.nanos = draw(_NANOS)
    event.actor.kind = draw(st.one_of(st.integers(-2**31, 2**31 - 1), st.integers(0, 5)))
    _set_text(event.actor, "user_id", draw(_TEXT))
    _set_text(event.actor, "username", draw(_TEXT))
    for key, value in draw(st.dictionaries(_SHORT, _TEXT, max_size=120)).items():
        holder = event_pb2.Event()
        _set_text(holder, "tag", key)
        _set_text(holder, "source", value)
        event.details[holder.tag] = holder.source
    return event


class FuzzRig:
    """One event loop, one migrated database and one real Redis for every hypothesis example."""

    def __init__(self, runner: asyncio.Runner, log: AuditLog, redis_url: str):
        self.runner, self.log, self.redis_url = runner, log, redis_url

    async def feed(self, batch: list[event_pb2.Event]) -> None:
        stream = f"gatehouse:fuzz:{uuid.uuid4().hex[:10]}"
        normal = build_event()
        entry_ids = await xadd_events(self.redis_url, stream, [*batch, normal])
        c = Consumer(self.redis_url, stream, GROUP, "fuzz", self.log, verifier=eventkeys.VERIFIER, batch_size=3, block_ms=20,
                     claim_idle_ms=1, max_deliveries=2)
        client = aioredis.Redis.from_url(self.redis_url)
        try:
            await c.ensure_group()
            deadline = asyncio.get_running_loop().time() + 20
            while not await settled(client, stream, entry_ids[-1]):
                assert asyncio.get_running_loop().time() < deadline, "entries never settled"
                await c.consume_once(block_ms=0)  # raises what would stall run_forever
                await asyncio.sleep(0.01)
            dead = await dead_letters(client, c.dead_letter_stream)
            await client.delete(stream, c.dead_letter_stream)
        finally:
            await c.close()
            await client.aclose()
        storable = [e.event_id for e in batch if 0 < len(e.event_id) <= 64 and e.event_id.isprintable()]
        stored = await stored_among(self.log, [*storable, normal.event_id])
        assert normal.event_id in stored
        for entry_id, event in zip(entry_ids, batch):
            assert event.event_id in stored or entry_id in dead, (entry_id, event.event_id[:80])
        assert all(fields[b"dlq_reason"] for fields in dead.values())


async def _open_log(url: str) -> AuditLog:
    return AuditLog(make_session_factory(make_engine(url)), clock=FakeClock(NOW))


@pytest.fixture
def fuzz_rig(audit_db_url, redis_server):
    with asyncio.Runner() as runner:
        log = runner.run(_open_log(audit_db_url))
        yield FuzzRig(runner, log, redis_server.url)
        runner.run(log.db.kw["bind"].dispose())


@settings(max_examples=40, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(batch=st.lists(extreme_events(), min_size=1, max_size=5))
def test_extreme_valid_events_never_stop_the_consumer(fuzz_rig, batch):
    """Every entry ends stored or dead-lettered (with a reason), and a normal event after them is stored."""
    fuzz_rig.runner.run(fuzz_rig.feed(batch))


# -- dead consumers leave the group ------------------------------------------------------------


async def _group_consumers(client, stream) -> dict[bytes, int]:
    return {c["name"]: c["pending"] for c in await client.xinfo_consumers(stream, GROUP)}


async def test_consumers_that_died_leave_the_group_and_live_ones_stay(redis_server, stream_name, audit_log):
    """Guards issue 19: every dead process's consumer name stayed in the group for good."""
    evs = [build_event(details={"n": str(i)}) for i in range(6)]
    await xadd_events(redis_server.url, stream_name, evs)
    client = aioredis.Redis.from_url(redis_server.url)
    # One consumer stored and acknowledged its share, then its process went away...
    finished = Consumer(redis_server.url, stream_name, GROUP, "dead-finished", audit_log, verifier=eventkeys.VERIFIER, batch_size=2,
                        block_ms=20)
    assert await finished.consume_once(block_ms=0) == 2
    await finished.close()
    # ...another read its share and died before storing it.
    await client.xreadgroup(GROUP, "dead-reader", {stream_name: ">"}, count=2)
    live = [Consumer(redis_server.url, stream_name, GROUP, name, audit_log, verifier=eventkeys.VERIFIER, block_ms=50, claim_idle_ms=200,
                     consumer_expiry_ms=400) for name in ("live-a", "live-b")]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run_forever(stop)) for c in live]
    try:
        await wait_for(lambda: _only(client, stream_name, {b"live-a", b"live-b"}), timeout=10)
        await asyncio.sleep(1.0)  # live consumers on a quiet stream are not removed
        assert set(await _group_consumers(client, stream_name)) == {b"live-a", b"live-b"}
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await client.aclose()
    # The dead reader's entries were claimed and stored before it was removed, not dropped.
    assert await stored_among(audit_log, [e.event_id for e in evs]) == {e.event_id for e in evs}


async def _only(client, stream, names) -> bool:
    return set(await _group_consumers(client, stream)) == names


async def test_a_dead_consumer_whose_entries_cannot_be_claimed_yet_is_kept(redis_server, stream_name, audit_log):
    """Removing a consumer drops its pending entries: one that still has some is never removed."""
    await xadd_events(redis_server.url, stream_name, [build_event() for _ in range(4)])
    client = aioredis.Redis.from_url(redis_server.url)
    await client.xgroup_create(stream_name, GROUP, id="0")
    await client.xreadgroup(GROUP, "dead-reader", {stream_name: ">"}, count=2)
    await client.xgroup_createconsumer(stream_name, GROUP, "dead-idle")  # joined, read nothing
    c = Consumer(redis_server.url, stream_name, GROUP, "live", audit_log, verifier=eventkeys.VERIFIER, block_ms=20,
                 claim_idle_ms=3_600_000, consumer_expiry_ms=100)
    try:
        await asyncio.sleep(0.2)
        removed = await c.remove_dead_consumers()
        consumers = await _group_consumers(client, stream_name)
    finally:
        await c.close()
        await client.aclose()
    assert b"dead-reader" in consumers and consumers[b"dead-reader"] == 2
    assert removed == ["dead-idle"] and b"dead-idle" not in consumers
