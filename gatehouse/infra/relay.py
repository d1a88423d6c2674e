"""The outbox relay: moves committed outbox rows to the one Redis stream, losing none.

Each producer (authsvc, uploadgw) runs an `OutboxRelay` over its own outbox table. A row is
marked published only after Redis accepted its XADD, so while Redis is down rows wait and the
relay retries with capped exponential back-off. No producer's commit waits for Redis. Several
relays may run at once: on PostgreSQL a batch is claimed with `SELECT … FOR UPDATE SKIP LOCKED`
inside the transaction that marks it (row locks that producers, who insert new rows, never meet);
on SQLite, where any write lock is the whole database, the batch is read without a lock, published,
then marked in a short transaction of its own, and the relays of one file take turns through a
file lock beside it. A duplicate after a crash (XADD done, mark lost) is harmless: the audit
consumer stores each event id once.

Stream entries carry `event_id`, `tag` and `event` (the serialised gatehouse.events.v1.Event).
A batch goes to Redis as one script call (XADD per row, atomic like MULTI/EXEC, one reply).
The relay never trims the stream; consumers call `trim_acknowledged`, which only drops entries
every consumer group has acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from redis.typing import EncodableT
from sqlalchemy import (ColumnElement, CursorResult, Integer, Row, Select, Table, any_, bindparam, delete, select,
                        text, update)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gatehouse.infra.clock import Clock, SystemClock
from gatehouse.infra.db import call_after_commit
# connect_redis and trim_acknowledged (consumer side) live in consumergroup; still importable here.
from gatehouse.infra.consumergroup import Backoff, Outage, connect_redis, trim_acknowledged  # noqa: F401

try:
    import fcntl
except ImportError:  # not POSIX: one relay per SQLite database
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
_Rows = Sequence[Row[Any, Any, Any, Any]]  # outbox rows: id, event_id, tag, payload
# For the claim's transaction only (PostgreSQL): the unpublished rows are read in index order.
_NO_BITMAP_SCAN = text("SET LOCAL enable_bitmapscan = off")

# XADD each (event_id, tag, event) triple of ARGV to KEYS[1]; returns the new entry ids.
XADD_BATCH_SCRIPT = """
local ids = {}
for i = 1, #ARGV, 3 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'event_id', ARGV[i], 'tag', ARGV[i + 1], 'event', ARGV[i + 2])
end
return ids
"""


class OutboxRelay:
    """Publish a service's unpublished outbox rows to `stream`, oldest first, in batches."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        outbox_table: Table,
        redis_url: str | None,
        stream: str,
        *,
        redis: aioredis.Redis | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        retention: dt.timedelta | None = dt.timedelta(days=1),
        prune_interval: float = 60.0,
        clock: Clock | None = None,
        name: str = "relay",
    ) -> None:
        if redis is None and not redis_url:
            raise ValueError("OutboxRelay needs a Redis URL or client")
        self._db = session_factory
        self._table = outbox_table
        self._redis_url = redis_url
        self._client = redis
        self._owns_client = redis is None
        self.stream = stream
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention = retention
        self.prune_interval = prune_interval
        self.clock = clock or SystemClock()
        self.name = name
        self._outage = Outage(log, {"relay": name, "stream": stream},
                              failing="outbox relay cannot publish; events wait in the outbox",
                              recovered="outbox relay publishing again",
                              backoff=Backoff(backoff_initial, backoff_max))
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._xadd_script: AsyncScript | None = None
        self._turn_file: io.BufferedRandom | None = None
        self.published = 0  # rows published by this relay since it started
        self.failures = 0   # rounds that failed (Redis or database unavailable)

    # -- wiring --------------------------------------------------------------------------------

    def notify(self) -> None:
        """Producers may call this after a commit (on the relay's event loop) to publish now."""
        if self._wake is not None:
            self._wake.set()

    def notify_on_commit(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        """Wake the relay after every commit of a session from `session_factory` (low lag).

        Gives that factory its own Session subclass with an `after_commit` listener, so that
        other factories (other services in the same process) are not affected.
        """
        call_after_commit(session_factory, self.notify)

    def start(self) -> asyncio.Task[None]:
        """Run `run_forever` in a background task until `stop()`."""
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self.run_forever(self._stop), name=f"outbox-relay-{self.name}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            if self._stop is not None:  # always: start() sets both
                self._stop.set()
            await self._task
            self._task = None
        await self.close()

    async def close(self) -> None:
        if self._turn_file is not None:
            self._turn_file.close()
            self._turn_file = None
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
            self._xadd_script = None

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            if not self._redis_url:  # never: __init__ refuses a relay with neither a URL nor a client
                raise ValueError("OutboxRelay needs a Redis URL or client")
            self._client = connect_redis(self._redis_url)
        return self._client

    # -- work ----------------------------------------------------------------------------------

    async def publish_once(self) -> int:
        """Publish one batch; returns how many rows Redis accepted. Raises on Redis/DB errors.

        No commit of a producer ever waits for Redis. On PostgreSQL the batch's rows stay locked
        (FOR UPDATE SKIP LOCKED) while Redis is asked, which only keeps other relays off them:
        producers insert other rows. On SQLite a lock is the whole database, so the batch is read
        without one, published, then marked in a short transaction of its own; relays on one
        database file take turns through a file lock beside it.
        """
        if self._dialect() == "postgresql":
            return await self._publish_claimed()
        with self._turn() as mine:
            if not mine:
                return 0  # another relay is publishing from this database
            async with self._db() as session:
                rows = await self._pending(session)
                await session.rollback()  # no transaction stays open while Redis is asked
            if not rows:
                return 0
            try:
                await self._xadd(rows)
            except (RedisError, OSError):
                await self._mark([r.id for r in rows], published=False)
                raise
            await self._mark([r.id for r in rows], published=True)
        self.published += len(rows)
        return len(rows)

    async def _publish_claimed(self) -> int:
        t = self._table
        async with self._db() as session:
            # Without statistics yet (a new outbox, or one that grew fast while Redis was away)
            # the planner would claim every batch with a bitmap scan and a sort of the whole
            # backlog; the index on (published_at, id) gives the batch in order.
            await session.execute(_NO_BITMAP_SCAN)
            rows = (await session.execute(self._unpublished().with_for_update(skip_locked=True))).all()
            if not rows:
                await session.rollback()
                return 0
            claimed = self._ids_clause(session, [r.id for r in rows])
            try:
                await self._xadd(rows)
            except (RedisError, OSError):
                await session.execute(update(t).where(claimed).values(attempts=t.c.attempts + 1))
                await session.commit()
                raise
            await session.execute(
                update(t).where(claimed).values(published_at=self.clock.now(), attempts=t.c.attempts + 1)
            )
            await session.commit()
        self.published += len(rows)
        return len(rows)

    def _bind(self) -> AsyncEngine:
        bind: AsyncEngine = self._db.kw["bind"]
        return bind

    def _dialect(self) -> str:
        return self._bind().dialect.name

    def _unpublished(self) -> Select[Any, Any, Any, Any]:
        """The next batch of unpublished rows, oldest first, in the order of the index on
        (published_at, id): every row here has no published_at, so that is id order, read
        straight from the index with no sort of the backlog."""
        t = self._table
        return (select(t.c.id, t.c.event_id, t.c.tag, t.c.payload).where(t.c.published_at.is_(None))
                .order_by(t.c.published_at, t.c.id).limit(self.batch_size))

    async def _pending(self, session: AsyncSession) -> _Rows:
        return (await session.execute(self._unpublished())).all()

    async def _mark(self, ids: list[int], *, published: bool) -> None:
        t = self._table
        values: dict[str, Any] = {"attempts": t.c.attempts + 1}
        if published:
            values["published_at"] = self.clock.now()
        async with self._db() as session:
            await session.execute(update(t).where(self._ids_clause(session, ids)).values(**values))
            await session.commit()

    @contextlib.contextmanager
    def _turn(self) -> Iterator[bool]:
        """An exclusive, non-blocking turn among the relays of one SQLite file (any process)."""
        if self._turn_file is None:
            database = self._bind().url.database
            if not database or database == ":memory:" or fcntl is None:
                yield True  # no other process can reach this database
                return
            self._turn_file = open(f"{database}.relay-lock", "a+b")  # noqa: SIM115 - kept open
        try:
            fcntl.flock(self._turn_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(self._turn_file, fcntl.LOCK_UN)

    def _ids_clause(self, session: AsyncSession, ids: list[int]) -> ColumnElement[bool]:
        if session.get_bind().dialect.name == "postgresql":
            # One array parameter: no 500-placeholder statement to render for every batch.
            return self._table.c.id == any_(bindparam("claimed_ids", ids, type_=ARRAY(Integer)))
        return self._table.c.id.in_(ids)

    async def _xadd(self, rows: _Rows) -> None:
        # One script call per batch: atomic like MULTI/EXEC, but one command and one reply
        # instead of one per row (redis-py spends most of a pipelined batch packing and parsing).
        if self._xadd_script is None:
            self._xadd_script = self._redis().register_script(XADD_BATCH_SCRIPT)
        args: list[EncodableT] = []
        for r in rows:
            args += (r.event_id, r.tag, r.payload)
        await self._xadd_script(keys=[self.stream], args=args)

    async def prune_once(self) -> int:
        """Delete rows published longer ago than the retention (the stream and auditsvc keep them)."""
        if self.retention is None:
            return 0
        t = self._table
        cutoff = self.clock.now() - self.retention
        removed = 0
        while True:
            async with self._db() as session:
                async with session.begin():
                    batch = (select(t.c.id).where(t.c.published_at.is_not(None), t.c.published_at < cutoff)
                             .limit(5000).scalar_subquery())
                    # a DELETE's result is a CursorResult (the one with rowcount); Session.execute says Result
                    result = cast(CursorResult[Any], await session.execute(delete(t).where(t.c.id.in_(batch))))
            removed += result.rowcount or 0
            if not result.rowcount or result.rowcount < 5000:
                return removed

    async def run_forever(self, stop_event: asyncio.Event) -> None:
        """Publish until `stop_event` is set; never raises for Redis or database outages."""
        self._wake = asyncio.Event()
        next_prune = time.monotonic()
        try:
            while not stop_event.is_set():
                try:
                    if self._outage.started is not None:
                        await self._redis().ping()  # don't hold the claim while Redis is away
                    count = await self.publish_once()
                    if time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + self.prune_interval
                        await self.prune_once()
                except (RedisError, OSError, SQLAlchemyError) as exc:
                    self.failures += 1
                    self._outage.failed(exc)
                    await self._sleep(stop_event, self._outage.backoff.next_delay(), wakeable=False)
                    continue
                except Exception:  # a bug must not stop the outbox forever: log, back off, go on
                    log.exception("outbox relay error", extra={"relay": self.name})
                    await self._sleep(stop_event, self._outage.backoff.next_delay(), wakeable=False)
                    continue
                self._outage.recovered()
                if count < self.batch_size:
                    await self._sleep(stop_event, self.poll_interval)
        finally:
            self._wake = None
            if self._owns_client:
                await self.close()

    async def _sleep(self, stop_event: asyncio.Event, seconds: float, *, wakeable: bool = True) -> None:
        waiters = [asyncio.ensure_future(stop_event.wait())]
        if wakeable and self._wake is not None:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            if wakeable and self._wake is not None:
                self._wake.clear()
