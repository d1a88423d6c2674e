"""Database plumbing shared by the services: URLs, engines, sessions, Alembic.

Each service owns its own tables and its own Alembic history; this module only knows how to
connect. SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) is the production one.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from alembic.config import Config

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def async_url(url: str) -> str:
    """Accept plain `sqlite:///…` / `postgresql://…` URLs and pick the async driver."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database URL scheme: {parsed.drivername}")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry | None = None) -> None:
    """The pragmas every SQLite connection gets (a "connect" event listener): foreign keys on,
    WAL journal, normal sync, and a 30 s wait for a busy database."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    url = async_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            pathlib.Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(url: str, script_location: pathlib.Path) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, script_location: pathlib.Path, revision: str = "head") -> None:
    """Run the service's migrations (blocking; call from a thread inside an event loop)."""
    from alembic import command

    command.upgrade(_alembic_config(url, script_location), revision)


async def upgrade_async(url: str, script_location: pathlib.Path, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, url, script_location, revision)


def schema_drift(url: str, script_location: pathlib.Path, metadata: MetaData) -> list[Any]:
    """Differences between a database migrated to head and the models (empty means none)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(url, script_location)

    def compare(connection: Connection) -> list[Any]:
        ctx = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs: list[Any] = compare_metadata(ctx, metadata)
        return diffs

    async def main() -> list[Any]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def call_after_commit(session_factory: async_sessionmaker[AsyncSession], hook: Callable[[], None]) -> None:
    """Call `hook()` after every commit of a session from `session_factory`, through a Session
    subclass of that factory's own (other factories in the same process are not affected)."""
    base = session_factory.kw.get("sync_session_class", Session)
    hooked = type(f"{base.__name__}AfterCommit", (base,), {})
    event.listen(hooked, "after_commit", lambda _session: hook())
    session_factory.configure(sync_session_class=hooked)
