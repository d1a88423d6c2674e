"""Short write transactions in one call, whatever the backend.

With aiosqlite every statement is several round trips to the connection's worker thread (cursor,
execute, fetch, close; about 0.1 ms each on a quiet machine, more under load), so a transaction of
half a dozen statements costs milliseconds in hand-offs alone. `Transactions.run(fn)` runs a
synchronous `fn(session)` as one unit. The caller writes one function for both backends:

- On SQLite it runs on the event loop itself, on a connection that never waits for a lock: it
  opens with `BEGIN IMMEDIATE` and a busy timeout of 0, so it either holds the write lock at once
  or learns that another writer has it, and then the whole transaction goes to a worker thread
  (stdlib driver, same file and pragmas), which waits for the lock as usual. Such a connection
  never checkpoints the WAL on commit (that would fsync on the loop); every `CHECKPOINT_EVERY`
  commits a worker thread does it. The worker's write transactions begin with `BEGIN IMMEDIATE`
  too: what `fn` reads it reads under the write lock, as on the loop (the driver's own deferred
  BEGIN would let it read before the lock, so a check-then-write could act on a stale value).
- On PostgreSQL through the async session's `run_sync` (asyncpg, no threads).

The gateway's upload and the auth service's hot writes (the second login step, a project created
by its first upload) use it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Executable

from gatehouse.infra.db import is_sqlite, sqlite_pragmas
from gatehouse.infra.fastread import SqliteReader
from gatehouse.infra.prepared import translated

T = TypeVar("T")
log = logging.getLogger(__name__)
CHECKPOINT_EVERY = 256
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _worker_pragmas(dbapi_connection, _record=None) -> None:
    sqlite_pragmas(dbapi_connection)
    dbapi_connection.isolation_level = None  # transactions are begun explicitly (below)


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url).set(drivername="sqlite+pysqlite")
    engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False},
                           pool_size=4, max_overflow=4)
    event.listen(engine, "connect", _worker_pragmas)
    # Writers wait for the write lock at BEGIN (busy timeout), then read and write under it.
    event.listen(engine, "begin", lambda conn: conn.connection.driver_connection.execute(
        conn.get_execution_options().get("sqlite_begin", "BEGIN IMMEDIATE")))
    return engine


def _loop_pragmas(dbapi_connection, _record=None) -> None:
    sqlite_pragmas(dbapi_connection)
    dbapi_connection.isolation_level = None  # transactions are begun explicitly (below)
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def _loop_engine(url: str) -> Engine:
    """One connection, used only on the event loop and by one transaction at a time."""
    parsed = make_url(url).set(drivername="sqlite+pysqlite")
    engine = create_engine(parsed, poolclass=StaticPool, connect_args={"timeout": 0, "check_same_thread": False})
    event.listen(engine, "connect", _loop_pragmas)
    # Writers take the write lock at BEGIN (or hear "busy" at once); readers (`read`) never wait in WAL mode.
    event.listen(engine, "begin", lambda conn: conn.connection.driver_connection.execute(
        conn.get_execution_options().get("sqlite_begin", "BEGIN IMMEDIATE")))
    return engine


def _is_busy(exc: Exception) -> bool:
    return getattr(getattr(exc, "orig", exc), "sqlite_errorcode", None) in _BUSY_CODES


class _Busy(Exception):
    """The loop connection could not take the write lock at once."""


class _DriverUnit:
    """What a Core-only transaction function (`Prepared` statements) uses of a Connection."""

    __slots__ = ("fairy", "connection", "dialect")

    def __init__(self, fairy, dialect):
        self.fairy = fairy
        self.connection = fairy.driver_connection  # the sqlite3.Connection
        self.dialect = dialect


class Transactions:
    def __init__(self, url: str, sessions: async_sessionmaker):
        self._url = url
        self._sessions = sessions
        sqlite = is_sqlite(url)
        self._sync = _sqlite_engine(url) if sqlite else None
        self._sync_reads = self._sync.execution_options(sqlite_begin="BEGIN") if self._sync is not None else None
        self._loop = _loop_engine(url) if sqlite and make_url(url).database not in (None, "", ":memory:") else None
        self._loop_reads = self._loop.execution_options(sqlite_begin="BEGIN") if self._loop is not None else None
        self._loop_commits = 0
        self._checkpoint: asyncio.Future | None = None
        self._readers: list[SqliteReader] = []
        self._driver: _DriverUnit | None = None
        # Called (on the event loop) after each commit, e.g. to wake the outbox relay.
        self.after_commit: Callable[[], None] | None = None

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in one transaction: committed when it returns, rolled back if it raises."""
        return await self._write(fn, core=False)

    async def run_core(self, fn: Callable[[Connection], T]) -> T:
        """`run` for Core statements only: `fn(connection)`, without an ORM session (cheaper)."""
        return await self._write(fn, core=True)

    async def _write(self, fn, *, core: bool):
        result = await self._transact(fn, core=core, write=True)
        if self.after_commit is not None:
            try:
                self.after_commit()
            except Exception:  # noqa: BLE001 - the transaction committed: its caller must hear so
                log.exception("after-commit hook failed")
        return result

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a read-only transaction (on SQLite on the event loop; it never waits)."""
        return await self._transact(fn, core=False, write=False)

    async def _transact(self, fn, *, core: bool, write: bool):
        if self._sync is None:
            async with self._sessions() as session, session.begin():
                return await session.run_sync((lambda s: fn(s.connection())) if core else fn)
        try:
            return self._run_on_loop(fn, core=core, write=write)
        except _Busy:
            return await asyncio.to_thread(self._run_sqlite, fn, core, write)

    def _run_on_loop(self, fn, *, core: bool, write: bool):
        """Synchronous from BEGIN to COMMIT: no other task can use the loop connection meanwhile."""
        if self._loop is None:
            raise _Busy
        if core:  # Core writes (`run_core`); reads and ORM writes go through a Session
            result = self._run_on_driver(fn)
        else:
            with Session(self._loop if write else self._loop_reads, expire_on_commit=False) as unit:
                try:
                    unit.connection()  # BEGIN IMMEDIATE: the lock now, or "busy"
                except (OperationalError, sqlite3.OperationalError) as exc:  # the driver's, from BEGIN
                    if _is_busy(exc):
                        raise _Busy from None
                    raise
                result = fn(unit)
                unit.commit()
        if not write:
            return result
        self._loop_commits += 1
        if self._loop_commits % CHECKPOINT_EVERY == 0 and (self._checkpoint is None or self._checkpoint.done()):
            self._checkpoint = asyncio.ensure_future(asyncio.to_thread(self._wal_checkpoint))
        return result

    def _run_on_driver(self, fn):
        """A Core write on the loop connection's sqlite3 connection itself: BEGIN IMMEDIATE, `fn`,
        COMMIT, without SQLAlchemy's per-transaction objects (Connection, Transaction, pool
        checkout: about 50 µs of Python warm, several times that when the caches are cold, as they
        are for a request that arrives every few milliseconds). `fn` gets what `Prepared` uses of a
        Connection: `.connection` (the driver's) and `.dialect`; its driver errors arrive translated
        (IntegrityError, ...), and so do these."""
        if self._driver is None:
            fairy = self._loop.raw_connection()  # StaticPool: the one connection, kept checked out
            self._driver = _DriverUnit(fairy, self._loop.dialect)
        raw = self._driver.connection
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise _Busy from None
            raise translated("BEGIN IMMEDIATE", (), exc, self._driver.dialect) from exc
        try:
            result = fn(self._driver)
            try:
                raw.execute("COMMIT")
            except sqlite3.Error as exc:
                raise translated("COMMIT", (), exc, self._driver.dialect) from exc
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
        return result

    def _wal_checkpoint(self) -> None:
        raw = self._sync.raw_connection()  # outside any transaction (a checkpoint cannot run in one)
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            raw.close()

    def _run_sqlite(self, fn, core: bool, write: bool = True):
        engine = self._sync if write else self._sync_reads
        if core:
            with engine.begin() as conn:
                return fn(conn)
        with Session(engine, expire_on_commit=False) as session, session.begin():
            return fn(session)

    def reader(self, statement: Executable) -> SqliteReader | None:
        """On SQLite, a reader that runs `statement` on the event loop (see fastread); else None."""
        if self._sync is None:
            return None
        reader = SqliteReader(self._url, statement)
        self._readers.append(reader)
        return reader

    def dispose(self) -> None:
        for reader in self._readers:
            reader.close()
        if self._driver is not None:
            self._driver.fairy.close()
            self._driver = None
        if self._loop is not None:
            self._loop.dispose()
        if self._sync is not None:
            self._sync.dispose()
