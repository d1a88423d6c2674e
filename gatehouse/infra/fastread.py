"""Hot point reads on SQLite without a thread hand-off.

aiosqlite (and a worker thread) hand every read to another thread and back; under load that
hand-off costs more than the read, which takes tens of microseconds. A `SqliteReader` runs one
statement, compiled once by SQLAlchemy, on the event loop with the stdlib driver, on a read-only
connection that never waits for a lock (busy timeout 0; in WAL mode readers do not wait for
writers). In the rare case SQLite answers "busy" (WAL recovery, a checkpoint resetting the log)
`fetchall` returns None and the caller reads through its usual path, which waits as usual.

Values come back as SQLite stores them (no SQLAlchemy result processing): datetimes as text,
booleans as 0/1.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql import Executable


class SqliteReader:
    def __init__(self, database_url: str, statement: Executable):
        database = make_url(database_url).database
        if not database or database == ":memory:":
            raise ValueError("a SqliteReader needs a SQLite file, not an in-memory database")
        self._path = database
        compiled = statement.compile(dialect=sqlite_dialect.dialect(paramstyle="named"))
        self._sql = str(compiled)
        self._defaults = dict(compiled.params)  # literal values bound in the statement itself
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
            self._conn = conn
        return self._conn

    def fetchall(self, params: Mapping[str, object]) -> list[tuple] | None:
        """The rows, or None when SQLite is busy (read through the usual path instead)."""
        try:
            return self._connect().execute(self._sql, {**self._defaults, **params}).fetchall()  # ends the read
        except sqlite3.OperationalError:
            return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
