"""The body of every service's Alembic `env.py`: online migrations through the async engine.

On PostgreSQL the migration transaction first takes an advisory lock named after the service and
its version table, so that pods starting together (and the migration Job) migrate one after the
other: the later ones wait, then find the schema at head and do nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import pathlib

from alembic import context
from sqlalchemy import Connection, MetaData, pool, text
from sqlalchemy.ext.asyncio import create_async_engine


def run(target_metadata: MetaData, version_table: str = "alembic_version") -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    script_location = config.get_main_option("script_location")
    if url is None or script_location is None:  # both set by gatehouse.infra.db's Alembic config
        raise RuntimeError("the Alembic config needs sqlalchemy.url and script_location")

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,
            compare_type=True,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": lock_key(script_location, version_table)})
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                          version_table=version_table)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def main() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(main())


def lock_key(script_location: str, version_table: str) -> int:
    """A stable signed 64-bit advisory-lock key for one service's migrations."""
    service = pathlib.PurePath(script_location).parent.name  # …/authsvc/migrations -> authsvc
    digest = hashlib.sha256(f"gatehouse-migrations:{service}:{version_table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
