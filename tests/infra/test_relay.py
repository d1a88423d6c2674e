"""The outbox relay against real Redis processes and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import time

import pytest
import redis.asyncio as aioredis
from sqlalchemy import event as sqla_event, func, insert, select

from gatehouse.events.v1 import event_pb2
from gatehouse.infra.clock import FakeClock
from gatehouse.infra.db import make_engine, make_session_factory
from gatehouse.infra.outbox import ActorRef, EventEmitter
from gatehouse.infra.relay import OutboxRelay
from gatehouse.infra.transactions import Transactions
from tests.infra.outbox_support import outbox, produce, producer_db, widgets

@pytest.fixture
def producer_url(make_database_url):
    return make_database_url("producer")


@pytest.fixture
async def producer(producer_url):
    engine, db = await producer_db(producer_url)
    yield db
    await engine.dispose()


@pytest.fixture
def emitter():
    return EventEmitter(outbox, source="testsvc", clock=FakeClock())


async def stream_event_ids(redis_url: str, stream: str) -> list[str]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        entries = await client.xrange(stream)
    finally:
        await client.aclose()
    ids = []
    for _id, fields in entries:
        event = event_pb2.Event.FromString(fields[b"event"])
        assert fields[b"event_id"].decode() == event.event_id
        ids.append(event.event_id)
    return ids


async def unpublished(db) -> int:
    async with db() as session:
        return (await session.execute(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)))).scalar_one()


async def wait_for(predicate, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_publishes_committed_rows_once_then_marks_them(producer, emitter, redis_server, stream_name):
    committed = await produce(producer, emitter, 7)
    await produce(producer, emitter, 3, rollback=True)  # never committed: never published
    relay = OutboxRelay(producer, outbox, redis_server.url, stream_name, batch_size=5)
    try:
        assert await relay.publish_once() == 5
        assert await relay.publish_once() == 2
        assert await relay.publish_once() == 0
    finally:
        await relay.close()
    assert await stream_event_ids(redis_server.url, stream_name) == committed
    async with producer() as session:
        rows = (await session.execute(select(outbox.c.published_at, outbox.c.attempts))).all()
    assert len(rows) == 7 and all(r.published_at is not None and r.attempts == 1 for r in rows)


async def test_redis_outage_events_wait_then_land_exactly_once(producer, emitter, own_redis, stream_name, caplog):
    caplog.set_level(logging.INFO, logger="gatehouse.infra.relay")
    relay = OutboxRelay(producer, outbox, own_redis.url, stream_name, poll_interval=0.05,
                        backoff_initial=0.05, backoff_max=0.2)
    relay.start()
    try:
        before = await produce(producer, emitter, 5)
        await wait_for(lambda: _equals(unpublished(producer), 0))
        own_redis.kill()
        during = await produce(producer, emitter, 20)
        await asyncio.sleep(0.8)  # several failed attempts while Redis is away
        assert await unpublished(producer) == 20
        async with producer() as session:
            attempts = (await session.execute(select(func.max(outbox.c.attempts)).where(
                outbox.c.published_at.is_(None)))).scalar_one()
        assert attempts >= 1  # failed attempts are counted on the rows
        assert relay.failures >= 3  # retried, with back-off, without crashing
        own_redis.start()
        await wait_for(lambda: _equals(unpublished(producer), 0))
        after = await produce(producer, emitter, 3)
        await wait_for(lambda: _equals(unpublished(producer), 0))
    finally:
        await relay.stop()
    ids = await stream_event_ids(own_redis.url, stream_name)
    assert sorted(ids) == sorted(before + during + after)
    assert len(ids) == len(set(ids)) == 28
    messages = [r.getMessage() for r in caplog.records if r.name == "gatehouse.infra.relay"]
    assert messages.count("outbox relay cannot publish; events wait in the outbox") == 1
    assert messages.count("outbox relay publishing again") == 1


async def _equals(awaitable, expected) -> bool:
    return (await awaitable) == expected


async def test_notify_publishes_without_waiting_for_the_poll(producer, emitter, redis_server, stream_name):
    relay = OutboxRelay(producer, outbox, redis_server.url, stream_name, poll_interval=60)
    relay.start()
    try:
        await asyncio.sleep(0.1)  # the relay is now waiting for its (long) poll interval
        [event_id] = await produce(producer, emitter, 1)
        relay.notify()
        await wait_for(lambda: stream_event_ids(redis_server.url, stream_name), timeout=2.0)
    finally:
        await relay.stop()
    assert await stream_event_ids(redis_server.url, stream_name) == [event_id]


async def test_notify_on_commit_wakes_the_relay_after_each_commit(producer, emitter, redis_server, stream_name):
    relay = OutboxRelay(producer, outbox, redis_server.url, stream_name, poll_interval=60)
    relay.notify_on_commit(producer)
    relay.start()
    try:
        await asyncio.sleep(0.1)
        ids = await produce(producer, emitter, 2)  # no explicit notify()
        await wait_for(lambda: _equals(_count(redis_server.url, stream_name), 2), timeout=2.0)
    finally:
        await relay.stop()
    assert await stream_event_ids(redis_server.url, stream_name) == ids


async def _count(redis_url, stream) -> int:
    return len(await stream_event_ids(redis_url, stream))


async def test_two_relays_at_once_publish_each_row_once(producer_url, producer, emitter, redis_server, stream_name):
    produced = await produce(producer, emitter, 400)
    other_engine = make_engine(producer_url)  # a second relay process has its own connections
    first = OutboxRelay(producer, outbox, redis_server.url, stream_name, batch_size=10, name="a")
    second = OutboxRelay(make_session_factory(other_engine), outbox, redis_server.url, stream_name,
                         batch_size=10, name="b")
    first.start()
    second.start()
    try:
        await wait_for(lambda: _equals(unpublished(producer), 0), timeout=30)
    finally:
        await first.stop()
        await second.stop()
        await other_engine.dispose()
    ids = await stream_event_ids(redis_server.url, stream_name)
    assert len(ids) == len(set(ids)) == 400
    assert set(ids) == set(produced)
    assert first.published + second.published == 400
    if producer_url.startswith("postgresql"):
        # SKIP LOCKED lets both work side by side (SQLite has one writer: one may starve, harmlessly).
        assert first.published > 0 and second.published > 0


async def test_prune_removes_old_published_rows_only(producer, emitter, redis_server, stream_name):
    clock = FakeClock(dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    await produce(producer, emitter, 4)
    relay = OutboxRelay(producer, outbox, redis_server.url, stream_name, clock=clock,
                        retention=dt.timedelta(hours=1))
    try:
        assert await relay.publish_once() == 4
        await produce(producer, emitter, 2)  # not yet published
        assert await relay.prune_once() == 0
        clock.advance(hours=2)
        assert await relay.prune_once() == 4
    finally:
        await relay.close()
    assert await unpublished(producer) == 2
    async with producer() as session:
        assert (await session.execute(select(func.count()).select_from(outbox))).scalar_one() == 2


def test_relay_needs_a_redis_target(producer_url):
    with pytest.raises(ValueError):
        OutboxRelay(None, outbox, "", "s")


def _commit_change(emitter: EventEmitter):
    """A producer's change and its event, as one `Transactions.run` function."""
    def change(session) -> str:
        session.execute(insert(widgets).values(name="w"))
        user = ("u1", "alice")
        return emitter.emit_sync(session, "widget:create", actor=ActorRef.user(*user), user=user).event_id
    return change


async def test_commits_never_wait_for_a_hung_redis(producer_url, producer, emitter, own_redis, stream_name):
    """Guards issue 19: on SQLite the relay held the write lock while its XADD waited for a stopped
    Redis (up to the 10 s socket timeout), so every commit with an event waited too."""
    transactions = Transactions(producer_url, producer)
    relay = OutboxRelay(producer, outbox, own_redis.url, stream_name, poll_interval=0.02)
    transactions.after_commit = relay.notify
    relay.start()
    change = _commit_change(emitter)
    latencies: list[float] = []
    try:
        ids = [await transactions.run(change)]
        await wait_for(lambda: _equals(unpublished(producer), 0))
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            for _ in range(12):  # the first wakes the relay, whose XADD then hangs
                started = time.monotonic()
                ids.append(await transactions.run(change))
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.1)
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        await wait_for(lambda: _equals(unpublished(producer), 0), timeout=15)
    finally:
        await relay.stop()
        transactions.dispose()
    assert max(latencies) < 0.25, f"slowest commit {max(latencies):.3f} s"
    assert await stream_event_ids(own_redis.url, stream_name) == ids  # each once, in order


async def test_a_large_new_backlog_is_claimed_in_index_order_without_sorting_it(
        producer_url, producer, emitter, redis_server, stream_name):
    """Guards issue 19's relay cost: on a new outbox (no planner statistics yet) PostgreSQL read
    and sorted every unpublished row to claim each batch. The statements the relay sent for a
    batch are replayed here with EXPLAIN: the batch comes straight from the (published_at, id)
    index, without sorting the backlog."""
    user = ("u1", "alice")
    async with producer() as session:
        await session.execute(insert(outbox), [
            {"event_id": built.event_id, "tag": built.tag, "payload": emitter.serialize(built),
             "created_at": dt.datetime.now(dt.timezone.utc), "attempts": 0}
            for built in (emitter.build("widget:create", actor=ActorRef.user(*user), user=user)
                          for _ in range(5000))])
        await session.commit()
    sent: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _executemany):
        sent.append((statement, parameters))

    engine = producer.kw["bind"]
    sqla_event.listen(engine.sync_engine, "before_cursor_execute", record)
    relay = OutboxRelay(producer, outbox, redis_server.url, stream_name, batch_size=100)
    try:
        assert await relay.publish_once() == 100
    finally:
        await relay.close()
        sqla_event.remove(engine.sync_engine, "before_cursor_execute", record)
    claim = next(i for i, (statement, _) in enumerate(sent) if statement.lstrip().upper().startswith("SELECT"))
    postgresql = producer_url.startswith("postgresql")
    async with engine.connect() as conn:
        for statement, parameters in sent[:claim]:
            await conn.exec_driver_sql(statement, parameters)
        statement, parameters = sent[claim]
        explain = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
        plan = "\n".join(str(row[-1]) for row in await conn.exec_driver_sql(explain + statement, parameters))
        await conn.rollback()
    assert "ix_outbox_unpublished" in plan, plan
    assert ("Sort" not in plan) if postgresql else ("TEMP B-TREE" not in plan), plan
