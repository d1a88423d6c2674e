"""`Transactions` (one-call transactions) and `Prepared` (statements on the driver's cursor),
on a real SQLite file and on PostgreSQL (GATEHOUSE_TEST_DB)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import threading
import time

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session

from gatehouse.infra import transactions as tx_module
from gatehouse.infra.db import make_engine, make_session_factory
from gatehouse.infra.prepared import Prepared, insert_of
from gatehouse.infra.transactions import Transactions
from tests.conftest import TEST_DB

metadata = MetaData()
items = Table(
    "items", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False, unique=True),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("blob", LargeBinary, nullable=True),
    Column("hits", Integer, nullable=False),
)
INSERT = insert_of(items, ("name", "seen_at", "flag", "blob", "hits"))
COUNT = select(items.c.name).order_by(items.c.name)
ONLY_SQLITE = pytest.mark.skipif(not TEST_DB.startswith("sqlite"), reason="SQLite's event-loop path")


def _upsert(dialect_insert):
    stmt = dialect_insert(items).values(name=bindparam("name"), seen_at=bindparam("now"), flag=True, blob=None,
                                        hits=1)
    return stmt.on_conflict_do_update(index_elements=[items.c.name],
                                      set_={"hits": items.c.hits + 1}).returning(items.c.hits)


UPSERT = Prepared(_upsert)  # the connection picks sqlite.insert or postgresql.insert


@pytest.fixture
async def store(make_database_url):
    url = make_database_url("tx")
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    transactions = Transactions(url, make_session_factory(engine))
    yield url, engine, transactions
    transactions.dispose()
    await engine.dispose()


def _add(name: str, **extra):
    def fn(session):
        conn = session.connection()
        assert isinstance(session, Session) and isinstance(conn, Connection)  # on every backend
        Prepared(INSERT).execute(conn, {"name": name, "seen_at": dt.datetime(2026, 1, 2, 3, 4, 5, 6, dt.timezone.utc),
                                        "flag": True, "blob": b"\x00\xff", "hits": 0, **extra})
        return name
    return fn


async def _names(transactions) -> list[str]:
    return [row[0] for row in await transactions.read(lambda s: s.connection().execute(COUNT).all())]


async def test_prepared_values_read_back_as_sqlalchemy_wrote_them(store):
    """Prepared applies SQLAlchemy's own type conversions: a row it wrote reads back like one the
    ORM path wrote (SQLite keeps datetimes as text in SQLAlchemy's format)."""
    _url, engine, transactions = store
    when = dt.datetime(2026, 5, 6, 7, 8, 9, 123456, dt.timezone.utc)
    await transactions.run(_add("prepared", seen_at=when, flag=False, blob=b"abc", hits=7))
    async with engine.begin() as conn:
        await conn.execute(insert(items), {"name": "core", "seen_at": when, "flag": False, "blob": b"abc", "hits": 7})
        rows = (await conn.execute(select(items.c.name, items.c.seen_at, items.c.flag, items.c.blob, items.c.hits)
                                   .order_by(items.c.name))).all()
    assert [tuple(row[1:]) for row in rows] == [tuple(rows[0][1:])] * 2
    assert rows[0][1].replace(tzinfo=dt.timezone.utc) == when and rows[0][2] is False and rows[0][4] == 7


async def test_prepared_returning_literals_executemany_and_errors(store):
    _url, engine, transactions = store
    now = dt.datetime.now(dt.timezone.utc)

    def upsert_twice(session):
        conn = session.connection()
        return UPSERT.execute(conn, {"name": "n", "now": now})[0], UPSERT.execute(conn, {"name": "n", "now": now})[0]

    assert await transactions.run(upsert_twice) == (1, 2)  # RETURNING, and the literal hits=1 / +1 bound
    rows = [{"name": f"m{i}", "seen_at": now, "flag": True, "blob": None, "hits": i} for i in range(3)]
    await transactions.run(lambda s: Prepared(INSERT).executemany(s.connection(), rows))
    assert await _names(transactions) == ["m0", "m1", "m2", "n"]
    with pytest.raises(IntegrityError):  # the driver's error, as SQLAlchemy's: callers catch these
        await transactions.run(_add("m1"))
    with pytest.raises(KeyError):  # every value must be given (no silent NULL)
        await transactions.run(lambda s: Prepared(INSERT).execute(s.connection(), {"name": "x"}))
    assert await _names(transactions) == ["m0", "m1", "m2", "n"]


async def test_a_failing_transaction_leaves_nothing(store):
    _url, _engine, transactions = store
    await transactions.run(_add("a"))

    def failing_fn(session):
        _add("b")(session)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await transactions.run(failing_fn)
    assert await _names(transactions) == ["a"]


async def test_prepared_writes_raise_sqlalchemys_errors_and_leave_no_transaction_open(store):
    """Driver errors of `Prepared` statements arrive as SQLAlchemy's, a failure rolls everything
    back, and the next transaction starts clean: a plain `execute` works on the same connection
    after Prepared statements (the regression of issue 20: on SQLite the old Core path handed out
    a driver unit that broke on it)."""
    _url, _engine, transactions = store
    now = dt.datetime.now(dt.timezone.utc)

    def upsert_then(session, name: str):
        hits = UPSERT.execute(session.connection(), {"name": "counter", "now": now})[0]
        _add(name)(session)
        return hits, session.connection().execute(select(items.c.hits).where(items.c.name == "counter")).scalar_one()

    assert await transactions.run(lambda s: upsert_then(s, "one")) == (1, 1)
    with pytest.raises(IntegrityError):  # "one" again: the upsert before it is rolled back too
        await transactions.run(lambda s: upsert_then(s, "one"))
    assert await transactions.run(lambda s: upsert_then(s, "two")) == (2, 2)
    assert await _names(transactions) == ["counter", "one", "two"]


async def test_sql_transactions_get_the_connection_and_commit_or_roll_back_like_the_others(store):
    """`run_sql`/`read_sql` hand `fn` the Connection itself (no Session); what it wrote commits when
    it returns and is rolled back when it raises, and a Session transaction after it sees the same
    data, on every backend."""
    _url, _engine, transactions = store
    now = dt.datetime.now(dt.timezone.utc)
    handed = []

    def upsert(conn):
        handed.append(conn)
        return UPSERT.execute(conn, {"name": "sql", "now": now})[0]

    assert await transactions.run_sql(upsert) == 1
    assert isinstance(handed[0], Connection) and not isinstance(handed[0], Session)

    def upsert_then_fail(conn):
        upsert(conn)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await transactions.run_sql(upsert_then_fail)
    hits = select(items.c.hits).where(items.c.name == "sql")
    assert await transactions.read_sql(lambda conn: conn.execute(hits).scalar_one()) == 1
    await transactions.run(_add("orm"))  # the Session path, after the Connection path
    assert await transactions.run_sql(upsert) == 2
    assert await _names(transactions) == ["orm", "sql"]


@ONLY_SQLITE
async def test_a_locked_database_never_blocks_the_event_loop(store):
    """Another writer holds the lock: the loop path hears "busy" at once and the transaction waits
    in a worker thread; reads go on meanwhile (WAL readers do not wait)."""
    url, _engine, transactions = store
    await transactions.run(_add("first"))
    locker = sqlite3.connect(make_url(url).database, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")
    try:
        pending = asyncio.ensure_future(transactions.run(_add("second")))
        started = time.monotonic()
        for _ in range(10):
            await asyncio.sleep(0.02)
        assert time.monotonic() - started < 1.0  # the loop kept running (no wait for the lock on it)
        assert not pending.done()
        assert await asyncio.wait_for(_names(transactions), 1) == ["first"]
    finally:
        locker.execute("COMMIT")
        locker.close()
    assert await asyncio.wait_for(pending, 10) == "second"
    assert await _names(transactions) == ["first", "second"]


@ONLY_SQLITE
async def test_concurrent_writers_all_commit(store):
    """Transactions that find the write lock taken wait for it in worker threads, the others commit
    on the loop, all at once: nothing is lost, nothing deadlocks."""
    url, _engine, transactions = store
    threaded = []
    on_thread = transactions._in_thread
    transactions._in_thread = lambda *args, **kwargs: (threaded.append(1), on_thread(*args, **kwargs))[1]
    names = [f"w{i:02d}" for i in range(45)]

    def add(i: int):
        return transactions.run(_add(names[i]))

    locker = sqlite3.connect(make_url(url).database, isolation_level=None, check_same_thread=False)
    try:
        locker.execute("BEGIN IMMEDIATE")  # another process is writing
        first = [asyncio.ensure_future(add(i)) for i in range(20)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in first) and threaded  # waiting in worker threads
        second = []
        for i in range(20, 40):
            second.append(asyncio.ensure_future(add(i)))
            await asyncio.sleep(0.001)
            if i == 25:
                locker.execute("COMMIT")
    finally:
        locker.close()
    await asyncio.wait_for(asyncio.gather(*first, *second), 60)
    for i in range(40, 45):  # nobody else writing now: on the loop
        await add(i)
    assert await _names(transactions) == names
    assert 20 <= len(threaded) <= 40


@ONLY_SQLITE
async def test_the_wal_is_checkpointed_off_the_loop(store, monkeypatch):
    """The loop connection never checkpoints on commit; a worker thread does it every few commits,
    so the write-ahead log stays small."""
    monkeypatch.setattr(tx_module, "CHECKPOINT_EVERY", 50)
    url, _engine, transactions = store
    checkpoints = 0
    for i in range(1500):
        await transactions.run(_add(f"x{i:04d}"))
        if i % 50 == 49:
            assert transactions._checkpoint is not None  # started in a worker thread, not run here
            await transactions._checkpoint  # (a busy machine may take longer than the next 50 commits)
            checkpoints += 1
    assert checkpoints == 30
    wal = make_url(url).database + "-wal"
    assert os.path.getsize(wal) < 1024 * 1024  # unchecked it grows past 10 MiB in 1,500 commits
    assert len(await _names(transactions)) == 1500


@ONLY_SQLITE
async def test_a_transaction_in_a_worker_thread_reads_under_the_write_lock(store):
    """Regression ("auth service under attack", item 2): a transaction that waits for the lock in
    a worker thread must read what it then writes under that lock. The driver's own deferred
    BEGIN let its reads run first, so twenty read-then-increment transactions lost updates."""
    url, _engine, transactions = store
    await transactions.run(_add("counter"))

    def increment(session):
        conn = session.connection()
        hits = conn.execute(select(items.c.hits).where(items.c.name == "counter")).scalar_one()
        time.sleep(0.002)  # a check that takes a moment, as a limiter's does
        conn.execute(items.update().where(items.c.name == "counter").values(hits=hits + 1))

    locker = sqlite3.connect(make_url(url).database, isolation_level=None, check_same_thread=False)
    try:
        locker.execute("BEGIN IMMEDIATE")  # another writer: every transaction goes to a worker thread
        pending = [asyncio.ensure_future(transactions.run(increment)) for _ in range(20)]
        await asyncio.sleep(0.05)
    finally:
        locker.execute("COMMIT")
        locker.close()
    await asyncio.wait_for(asyncio.gather(*pending), 60)
    hits = await transactions.read(lambda s: s.connection().execute(
        select(items.c.hits).where(items.c.name == "counter")).scalar_one())
    assert hits == 20
