"""Throwaway PostgreSQL databases for the benchmarks: each run gets a fresh database on the
server named by a URL (created through that URL's database, dropped afterwards), so that runs
never meet each other's rows."""

from __future__ import annotations

import contextlib
import uuid

from sqlalchemy.engine import make_url


async def _execute(admin_url: str, sql: str) -> None:
    import asyncpg

    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def reachable(admin_url: str) -> None:
    """Raises when the server cannot be reached (the exception says why)."""
    await _execute(admin_url, "SELECT 1")


async def create_database(admin_url: str, label: str) -> str:
    """A new empty database beside `admin_url`'s; returns its URL."""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    await _execute(admin_url, f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(admin_url: str, url: str) -> None:
    with contextlib.suppress(Exception):
        await _execute(admin_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def fresh_database(url: str, label: str):
    """`url` itself for SQLite; for PostgreSQL a fresh database on the same server."""
    if not url.startswith("postgres"):
        yield url
        return
    fresh = await create_database(url, label)
    try:
        yield fresh
    finally:
        await drop_database(url, fresh)
