"""Fixtures shared by every test: real Redis processes, real databases, a real SMTP listener.

The database backend comes from GATEHOUSE_TEST_DB: `sqlite` (default: a file per test) or a
PostgreSQL server URL such as `postgresql://postgres@127.0.0.1:5432/test`, in which case every
test gets a fresh database on that server, dropped afterwards.
"""

from __future__ import annotations

from gatehouse.infra.grpccore import apply_grpc_defaults

apply_grpc_defaults()  # the services' gRPC configuration, for in-process servers and clients too

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import secrets  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402

from gatehouse.infra.redis_embed import EmbeddedRedis  # noqa: E402
from tests.smtp import smtp_listener  # noqa: E402

TEST_DB = os.environ.get("GATEHOUSE_TEST_DB", "sqlite")


def _pg_admin_url() -> str:
    return TEST_DB.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_admin_url())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run_sync(coro) -> None:
    """Run `coro` to completion even when called from inside a running event loop (async fixtures)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


class Databases:
    """Fresh, empty databases: SQLite files under `directory`, or PostgreSQL databases on the
    GATEHOUSE_TEST_DB server, dropped at `drop_all`."""

    def __init__(self, directory, prefix: str = "gh"):
        self.directory = directory
        self.prefix = prefix
        self.created: list[str] = []

    def make(self, label: str = "db") -> str:
        if TEST_DB == "sqlite":
            return f"sqlite:///{self.directory / label}-{uuid.uuid4().hex[:8]}.sqlite3"
        name = f"{self.prefix}_{label}_{uuid.uuid4().hex[:10]}"
        _run_sync(_pg_exec(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return f"{_pg_admin_url().rsplit('/', 1)[0]}/{name}"

    def drop_all(self) -> None:
        for name in self.created:
            with contextlib.suppress(Exception):  # best effort cleanup
                _run_sync(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def make_database_url(tmp_path):
    """A factory of fresh, empty databases: `make_database_url("authsvc")` -> URL."""
    databases = Databases(tmp_path)
    yield databases.make
    databases.drop_all()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server process for the whole session (tests use distinct stream names)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server process of the test's own, which the test may stop, kill and restart."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
def stream_name():
    return f"gatehouse:test:{uuid.uuid4().hex[:10]}"


@pytest.fixture
def smtp_server():
    """A real SMTP listener (aiosmtpd) on loopback. Yields (url, mailbox)."""
    with smtp_listener() as (url, mailbox):
        yield url, mailbox


@pytest.fixture
def secret_key():
    return lambda: secrets.token_urlsafe(32)


def pytest_report_header(config):
    return f"gatehouse test database: {TEST_DB}"


@pytest.fixture
def repo_root() -> pathlib.Path:
    return pathlib.Path(__file__).resolve().parent.parent
