"""The verification read: one query for a token, its user, primary email, project and role.

It bypasses the general engine's per-call costs, which are several times the query itself:
- PostgreSQL: the statement, compiled once by SQLAlchemy, runs on a small asyncpg pool of its own
  (prepared, autocommit, read-only sessions): one round trip instead of ping, BEGIN, SELECT and
  ROLLBACK plus the ORM layers. A connection found dead is retried once on a fresh one.
- SQLite: the point read runs on the event loop (`gatehouse.infra.fastread.SqliteReader`); in
  the rare case SQLite answers "busy" it goes through the service's async engine instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import asyncpg
from sqlalchemy import and_, bindparam, select, true
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.accounts.models import Email, User
from authsvc.projects.models import Project, Role
from authsvc.tokens.models import ApiToken
from gatehouse.infra.clock import as_utc
from gatehouse.infra.fastread import SqliteReader

LOOKUP = (
    select(ApiToken.user_id, ApiToken.key_version, ApiToken.scope_all_projects, ApiToken.expires_at,
           ApiToken.last_used_at, User.username, User.is_active, Email.verified,
           Project.id.label("project_id"), Project.name.label("project_name"),
           Project.two_factor_required.label("project_two_factor_required"), Role.role_name)
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
    project_id: str | None
    project_name: str | None
    project_two_factor_required: bool
    role_name: str | None


def _row(values) -> TokenRow:
    (user_id, key_version, all_projects, expires_at, last_used_at, username, active, verified,
     project_id, project_name, project_2fa, role_name) = values
    return TokenRow(user_id, int(key_version), bool(all_projects), _when(expires_at), _when(last_used_at),
                    username, bool(active), bool(verified), project_id, project_name, bool(project_2fa), role_name)


def _when(value) -> dt.datetime | None:
    if isinstance(value, str):  # SQLite's stored form, read without SQLAlchemy's type processing
        value = dt.datetime.fromisoformat(value)
    return as_utc(value)


class PostgresLookup:
    _RETRY = (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.InterfaceError,
              asyncpg.exceptions.PostgresConnectionError, ConnectionError)

    def __init__(self, database_url: str, *, pool_size: int = 10):
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool_size = pool_size
        compiled = LOOKUP.compile(dialect=postgresql_dialect.asyncpg.dialect())
        self._sql = str(compiled)
        self._order = compiled.positiontup
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
                return None if row is None else _row(row)
            except self._RETRY:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class SqliteLookup:
    def __init__(self, database_url: str, engine: AsyncEngine):
        self._reader = SqliteReader(database_url, LOOKUP)
        self._engine = engine

    async def fetch(self, token_id: str, normalized_project: str) -> TokenRow | None:
        params = {"token_id": token_id, "project": normalized_project}
        rows = self._reader.fetchall(params)
        if rows is None:  # busy: wait through the engine
            async with self._engine.connect() as conn:
                rows = (await conn.execute(LOOKUP, params)).all()
        return _row(rows[0]) if rows else None

    async def close(self) -> None:
        self._reader.close()


def make_lookup(database_url: str, engine: AsyncEngine) -> PostgresLookup | SqliteLookup:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("the auth service needs a SQLite file, not an in-memory database")
        return SqliteLookup(database_url, engine)
    return PostgresLookup(database_url)
