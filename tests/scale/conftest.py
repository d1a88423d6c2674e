"""Fixtures of the scale-out test: three fresh PostgreSQL databases, whatever GATEHOUSE_TEST_DB says."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import TEST_DB
from tests.scale.cluster import PG_SERVER, SERVICES


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG_SERVER}/test", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def pg_database_urls(make_database_url):
    """{"authsvc": url, "uploadgw": url, "auditsvc": url}, each a fresh PostgreSQL database, dropped after.

    The scale-out test needs a server shared by separate processes: SQLite is never used here.
    """
    if TEST_DB.startswith("postgresql"):
        yield {service: make_database_url(service) for service in SERVICES}
        return
    try:
        await _pg_exec("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure: say so
        pytest.fail(f"the scale-out test needs PostgreSQL at {PG_SERVER} (user postgres, trust): {exc!r}")
    created = {service: f"gh_scale_{service}_{uuid.uuid4().hex[:12]}" for service in SERVICES}
    try:
        for name in created.values():
            await _pg_exec(f'CREATE DATABASE "{name}"')
        yield {service: f"{PG_SERVER}/{name}" for service, name in created.items()}
    finally:
        for name in created.values():
            try:
                await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:  # pragma: no cover - best effort cleanup
                pass
