"""The verification read: one query for a token, its user, primary email, whether the user has a
second factor, the project (with its trusted-publishing setting and whether it has a publisher) and
the user's role on it.

Every other query of the verifier runs through the service's `Transactions`; this one, run on every
upload and index read, keeps a shorter way, because the benchmark tells it apart (bench_verify: the
figures are in the commit message that kept it):
- PostgreSQL: the statement, compiled once by SQLAlchemy, runs on a small asyncpg pool of its own
  (prepared, autocommit, read-only sessions): one round trip instead of ping, BEGIN, SELECT and
  COMMIT plus the ORM layers. A connection found dead is retried once on a fresh one.
- SQLite: the statement runs on the event loop on a read-only stdlib connection that never waits
  (busy timeout 0; WAL readers do not wait for writers). In the rare case SQLite answers "busy"
  (WAL recovery) it is read through `Transactions.read`, which waits in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy import and_, bindparam, column, exists, select, table, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

from authsvc.accounts.models import Email, User
from authsvc.projects.models import Project, Role
from authsvc.tokens.models import ApiToken
from authsvc.twofactor.pending import has_factor_clause
from gatehouse.infra.clock import as_utc
from gatehouse.infra.transactions import Transactions

# Trusted publishers belong to authsvc/publishing, which sits above tokens in the import order
# (authsvc/__init__.py): the lookup names their table instead of importing the model.
_PUBLISHERS = table("trusted_publishers", column("project_id"))

LOOKUP = (
    select(ApiToken.user_id, ApiToken.key_version, ApiToken.scope_all_projects, ApiToken.expires_at,
           ApiToken.last_used_at, User.username, User.is_active, Email.verified,
           has_factor_clause(User.id).label("has_second_factor"),
           Project.id.label("project_id"), Project.name.label("project_name"),
           Project.two_factor_required.label("project_two_factor_required"), Role.role_name,
           Project.trusted_publishing_only.label("project_trusted_publishing_only"),
           exists().where(_PUBLISHERS.c.project_id == Project.id).label("project_has_publisher"))
    .select_from(ApiToken)
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(Email, and_(Email.user_id == User.id, Email.primary == true()))
    .outerjoin(Project, Project.normalized_name == bindparam("project"))
    .outerjoin(Role, and_(Role.project_id == Project.id, Role.user_id == User.id))
    .where(ApiToken.id == bindparam("token_id"))
    .limit(1)
)


@dataclasses.dataclass(frozen=True, slots=True)
class TokenRow:
    """The stored state a verification needs (project fields are None when no such project)."""

    user_id: str
    key_version: int
    scope_all_projects: bool
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    username: str
    is_active: bool
    verified: bool  # the primary email address
    has_second_factor: bool  # a confirmed authenticator app or a security key
    project_id: str | None
    project_name: str | None
    project_two_factor_required: bool
    role_name: str | None
    project_trusted_publishing_only: bool  # uploads only from the project's trusted publishers
    project_has_publisher: bool


def _row(values: Sequence[Any]) -> TokenRow:
    (user_id, key_version, all_projects, expires_at, last_used_at, username, active, verified, has_factor,
     project_id, project_name, project_2fa, role_name, publishing_only, has_publisher) = values
    return TokenRow(user_id, int(key_version), bool(all_projects), _when(expires_at), _when(last_used_at),
                    username, bool(active), bool(verified), bool(has_factor), project_id, project_name,
                    bool(project_2fa), role_name, bool(publishing_only), bool(has_publisher))


def _when(value: str | dt.datetime | None) -> dt.datetime | None:
    if isinstance(value, str):  # SQLite's stored form, read without SQLAlchemy's type processing
        value = dt.datetime.fromisoformat(value)
    return as_utc(value)


def fetch_token(conn: Connection, token_id: str, normalized_project: str) -> TokenRow | None:
    """The lookup on a SQLAlchemy connection (inside a `Transactions.read`)."""
    row = conn.execute(LOOKUP, {"token_id": token_id, "project": normalized_project}).first()
    return None if row is None else _row(tuple(row))


class PostgresLookup:
    _RETRY = (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.InterfaceError,
              asyncpg.exceptions.PostgresConnectionError, ConnectionError)

    def __init__(self, database_url: str, *, pool_size: int = 10) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool_size = pool_size
        compiled = LOOKUP.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
        self._sql = str(compiled)
        self._order: list[str] = list(compiled.positiontup or ())
        self._constants = dict(compiled.params)
        self._pool: asyncpg.Pool | None = None
        self._starting = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._starting:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._pool_size, max_inactive_connection_lifetime=300,
                        server_settings={"default_transaction_read_only": "on"})
        return self._pool

    async def fetch(self, token_id: str, normalized_project: str) -> TokenRow | None:
        values = {**self._constants, "token_id": token_id, "project": normalized_project}
        args = [values[name] for name in self._order]
        pool = await self._get_pool()
        for attempt in (1, 2):
            try:
                row = await pool.fetchrow(self._sql, *args)
                return None if row is None else _row(tuple(row))
            except self._RETRY:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class SqliteLookup:
    def __init__(self, database_url: str, tx: Transactions) -> None:
        database = make_url(database_url).database
        if not database or database == ":memory:":
            raise ValueError("the auth service needs a SQLite file, not an in-memory database")
        self._path = database
        compiled = LOOKUP.compile(dialect=sqlite.dialect(paramstyle="named"))
        self._sql = str(compiled)
        self._constants = dict(compiled.params)  # literal values bound in the statement itself
        self._conn: sqlite3.Connection | None = None
        self._tx = tx

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
            self._conn = conn
        return self._conn

    async def fetch(self, token_id: str, normalized_project: str) -> TokenRow | None:
        params = {**self._constants, "token_id": token_id, "project": normalized_project}
        try:
            rows = self._connect().execute(self._sql, params).fetchall()  # one statement: ends the read
        except sqlite3.OperationalError:  # busy: read through Transactions, which waits for it
            return await self._tx.read(lambda s: fetch_token(s.connection(), token_id, normalized_project))
        return _row(rows[0]) if rows else None

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def make_lookup(database_url: str, tx: Transactions) -> PostgresLookup | SqliteLookup:
    if make_url(database_url).get_backend_name() == "sqlite":
        return SqliteLookup(database_url, tx)
    return PostgresLookup(database_url)
