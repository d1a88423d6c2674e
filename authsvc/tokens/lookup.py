"""The verification read: one query for a token, its user, primary email, whether the user has a
second factor, the project and the user's role on it.

It runs through the service's `Transactions.read` like every other read (on SQLite on the event
loop, on PostgreSQL on the service's engine).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import and_, bindparam, select, true
from sqlalchemy.engine import Connection

from authsvc.accounts.models import Email, User
from authsvc.projects.models import Project, Role
from authsvc.tokens.models import ApiToken
from authsvc.twofactor.pending import has_factor_clause
from gatehouse.infra.clock import as_utc

LOOKUP = (
    select(ApiToken.user_id, ApiToken.key_version, ApiToken.scope_all_projects, ApiToken.expires_at,
           ApiToken.last_used_at, User.username, User.is_active, Email.verified,
           has_factor_clause(User.id).label("has_second_factor"),
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
    has_second_factor: bool  # a confirmed authenticator app or a security key
    project_id: str | None
    project_name: str | None
    project_two_factor_required: bool
    role_name: str | None


def fetch_token(conn: Connection, token_id: str, normalized_project: str) -> TokenRow | None:
    """The token's stored state with `normalized_project`, or None when there is no such token."""
    row = conn.execute(LOOKUP, {"token_id": token_id, "project": normalized_project}).first()
    if row is None:
        return None
    return TokenRow(
        user_id=row.user_id, key_version=int(row.key_version), scope_all_projects=bool(row.scope_all_projects),
        expires_at=as_utc(row.expires_at), last_used_at=as_utc(row.last_used_at), username=row.username,
        is_active=bool(row.is_active), verified=bool(row.verified), has_second_factor=bool(row.has_second_factor),
        project_id=row.project_id, project_name=row.project_name,
        project_two_factor_required=bool(row.project_two_factor_required), role_name=row.role_name)
