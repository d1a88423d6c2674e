"""Short write transactions in one call, whatever the backend.

With aiosqlite every statement is several round trips to the connection's worker thread (cursor,
execute, fetch, close; about 0.1 ms each on a quiet machine, more under load), so a transaction of
half a dozen statements costs milliseconds in hand-offs alone. `Transactions.run(fn)` runs a
synchronous `fn(session)` as one unit: on SQLite in a single worker-thread call with the stdlib
driver (same database file, same pragmas), on PostgreSQL through the async session's `run_sync`
(asyncpg, no threads). The caller writes one function for both. The gateway's upload and the auth
service's hot writes (the second login step, a project created by its first upload) use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from gatehouse.infra.db import is_sqlite, sqlite_pragmas
from gatehouse.infra.fastread import SqliteReader

T = TypeVar("T")


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url).set(drivername="sqlite+pysqlite")
    engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False},
                           pool_size=4, max_overflow=4)
    event.listen(engine, "connect", sqlite_pragmas)
    return engine


class Transactions:
    def __init__(self, url: str, sessions: async_sessionmaker):
        self._url = url
        self._sessions = sessions
        self._sync = _sqlite_engine(url) if is_sqlite(url) else None
        self._readers: list[SqliteReader] = []
        # Called (on the event loop) after each commit, e.g. to wake the outbox relay.
        self.after_commit: Callable[[], None] | None = None

    async def run(self, fn: Callable[[Session], T], *, before: Callable[[], object] | None = None) -> T:
        """Run `fn(session)` in one transaction: committed when it returns, rolled back if it raises.

        `before` is blocking work to do first (file I/O); on SQLite it shares the worker thread."""
        if self._sync is not None:
            result = await asyncio.to_thread(self._run_sqlite, fn, before)
        else:
            if before is not None:
                await asyncio.to_thread(before)
            async with self._sessions() as session, session.begin():
                result = await session.run_sync(fn)
        if self.after_commit is not None:
            self.after_commit()
        return result

    def _run_sqlite(self, fn: Callable[[Session], T], before: Callable[[], object] | None) -> T:
        if before is not None:
            before()
        with Session(self._sync, expire_on_commit=False) as session, session.begin():
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
        if self._sync is not None:
            self._sync.dispose()
