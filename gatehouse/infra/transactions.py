"""Short transactions in one call, whatever the backend.

`Transactions.run(fn)` runs a synchronous `fn(session)` as one transaction: committed when it
returns, rolled back if it raises; `read(fn)` runs one that only reads. `fn` gets an ORM `Session`
and, through `session.connection()`, a real SQLAlchemy `Connection`, on every backend.
`run_sql(fn)` and `read_sql(fn)` are the same for a function that only runs SQL: it gets the
`Connection` itself (making a Session and joining it to the transaction costs about as much CPU
as a short statement, and the upload path runs three such transactions). It is
synchronous because with aiosqlite every statement is several round trips to the connection's
worker thread, so a transaction of half a dozen statements would cost milliseconds in hand-offs.

Every transaction is one path: a connection, a transaction begun on it, `work(connection)`, the
commit; for `run`/`read` the work is `fn` on a Session that joins that transaction.

- PostgreSQL: on a connection of the async engine, through its `run_sync` (asyncpg, no threads).
- SQLite: on the event loop itself, on one connection that never waits for a lock, held open
  between transactions (checking a connection out and a session's own transaction per call cost
  about as much CPU as a short transaction's statements), the session joining a transaction begun
  on that connection. Writes open
  with `BEGIN IMMEDIATE` and a busy timeout of 0, so they either hold the write lock at once or
  learn that another writer has it; then the same function runs in a worker thread instead (same
  file and pragmas), which waits for the lock as usual. Its writes begin `BEGIN IMMEDIATE` too:
  what `fn` reads it reads under the write lock (the driver's own deferred BEGIN would let it read
  before the lock, so a check-then-write could act on a stale value). Reads never wait in WAL
  mode; in the rare case SQLite answers "busy" to one (WAL recovery) it also goes to a thread.
  The loop connection never checkpoints the WAL on commit (that would fsync on the loop); every
  `CHECKPOINT_EVERY` commits a worker thread does it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from gatehouse.infra.db import is_sqlite, sqlite_pragmas

T = TypeVar("T")
log = logging.getLogger(__name__)
CHECKPOINT_EVERY = 256
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _sqlite_engine(url: str, *, on_loop: bool) -> Engine:
    """The worker threads' pool, or (`on_loop`) the event loop's one connection, used by one
    transaction at a time, that never waits for a lock and never checkpoints on commit."""
    parsed = make_url(url).set(drivername="sqlite+pysqlite")

    def pragmas(dbapi_connection: DBAPIConnection, _record: object = None) -> None:
        sqlite_pragmas(dbapi_connection)
        dbapi_connection.isolation_level = None  # transactions are begun explicitly (`_transaction`)
        if on_loop:
            dbapi_connection.execute("PRAGMA busy_timeout=0")
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    if on_loop:
        engine = create_engine(parsed, poolclass=StaticPool, connect_args={"timeout": 0, "check_same_thread": False})
    else:
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=4, max_overflow=4)
    event.listen(engine, "connect", pragmas)
    return engine


def _is_busy(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", exc), "sqlite_errorcode", None) in _BUSY_CODES


def _in_session(fn: Callable[[Session], T]) -> Callable[[Connection], T]:
    """`fn` as transaction work: on a Session that joins the connection's transaction, its ORM
    changes flushed before the commit."""
    def work(conn: Connection) -> T:
        with Session(bind=conn, expire_on_commit=False, join_transaction_mode="rollback_only") as session:
            result = fn(session)
            session.flush()
        return result
    return work


def _transaction(conn: Connection, work: Callable[[Connection], T], *, write: bool) -> T:
    """`work(conn)` in one SQLite transaction on `conn` (synchronous from BEGIN to COMMIT).

    The BEGIN is SQLite's own, issued here: IMMEDIATE for writes (the write lock now, or "busy" at
    once on the loop connection), deferred for reads."""
    with conn.begin():  # SQLAlchemy's bookkeeping: the driver begins nothing itself (isolation_level None)
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # type: ignore[union-attr]
        return work(conn)


def _in_new_connection(engine: Engine, work: Callable[[Connection], T], write: bool) -> T:
    with engine.connect() as conn:
        return _transaction(conn, work, write=write)


class Transactions:
    """Runs synchronous transaction functions for one database (see the module)."""

    def __init__(self, url: str, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]  # the service's engine (used on PostgreSQL)
        # SQLite: the event loop's one connection (a file only), kept open, and the worker threads' pool.
        self._loop: Engine | None = None
        self._loop_conn: Connection | None = None
        self._threads: Engine | None = None
        if is_sqlite(url):
            self._threads = _sqlite_engine(url, on_loop=False)
            if make_url(url).database not in (None, "", ":memory:"):
                self._loop = _sqlite_engine(url, on_loop=True)
        self._loop_commits = 0
        self._checkpoint: asyncio.Future[None] | None = None
        # Called (on the event loop) after each commit, e.g. to wake the outbox relay.
        self.after_commit: Callable[[], None] | None = None

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in one transaction: committed when it returns, rolled back if it raises."""
        return await self.run_sql(_in_session(fn))

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a read-only transaction (on SQLite on the event loop; it never waits)."""
        return await self._transact(_in_session(fn), write=False)

    async def run_sql(self, fn: Callable[[Connection], T]) -> T:
        """`run` for a function that only runs SQL: `fn(connection)`, no Session."""
        result = await self._transact(fn, write=True)
        if self.after_commit is not None:
            try:
                self.after_commit()
            except Exception:  # noqa: BLE001 - the transaction committed: its caller must hear so
                log.exception("after-commit hook failed")
        return result

    async def read_sql(self, fn: Callable[[Connection], T]) -> T:
        """`read` for a function that only runs SQL: `fn(connection)`, no Session."""
        return await self._transact(fn, write=False)

    async def _transact(self, work: Callable[[Connection], T], *, write: bool) -> T:
        if self._threads is None:
            async with self._engine.begin() as conn:
                return await conn.run_sync(work)
        if self._loop is not None:
            try:
                result = _transaction(self._loop_connection(), work, write=write)
            except (OperationalError, sqlite3.OperationalError) as exc:
                if not _is_busy(exc):  # "busy": rolled back with nothing written; redone in a thread
                    raise
            else:
                if write:
                    self._committed_on_loop()
                return result
        return await self._in_thread(work, write=write)

    def _loop_connection(self) -> Connection:
        """The event loop's connection, opened on first use (its pragmas may find the file busy too)."""
        assert self._loop is not None
        if self._loop_conn is None or self._loop_conn.closed or self._loop_conn.invalidated:
            self._loop_conn = self._loop.connect()
        return self._loop_conn

    async def _in_thread(self, work: Callable[[Connection], T], *, write: bool) -> T:
        """The transaction in a worker thread, which waits for the write lock as usual."""
        assert self._threads is not None
        return await asyncio.to_thread(_in_new_connection, self._threads, work, write)

    def _committed_on_loop(self) -> None:
        self._loop_commits += 1
        if self._loop_commits % CHECKPOINT_EVERY == 0 and (self._checkpoint is None or self._checkpoint.done()):
            self._checkpoint = asyncio.ensure_future(asyncio.to_thread(self._wal_checkpoint))

    def _wal_checkpoint(self) -> None:
        assert self._threads is not None
        raw = self._threads.raw_connection()  # outside any transaction (a checkpoint cannot run in one)
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
        finally:
            raw.close()

    def dispose(self) -> None:
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        for engine in (self._loop, self._threads):
            if engine is not None:
                engine.dispose()

