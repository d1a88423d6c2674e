"""Deleting tokens and their audit events, shared by token deletion and project deletion.

The user's log gets one `account:api_token:*` event with the whole scope; each project in a
project-scoped token's scope gets its own `project:api_token:*` event that names only that project
and carries no subject user, so a project's log never reveals a token's other projects and the
user's log is not flooded with one line per project.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from authsvc.accounts.models import User
from authsvc.tokens.models import ApiToken, ApiTokenProject
from gatehouse.infra.clock import as_utc
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin


def scope_text(token: ApiToken) -> str:
    if token.scope_all_projects:
        return "all projects"
    return "projects: " + ", ".join(sorted(p.project_name for p in token.projects))


async def emit_token_events(s: AsyncSession, events: EventEmitter, verb: str, token: ApiToken,
                            owner: tuple[str, str], *, actor: ActorRef, origin: Origin | None,
                            reason: str = "", reached: tuple[str, str] | None = None) -> None:
    """`account:api_token:<verb>` for the owner's log, `project:api_token:<verb>` per project in the
    token's scope, and for `reached` (the project an Owner revoked it from: an account-wide token
    names no project) when not among them."""
    details = {"token_id": token.id, "description": token.description, "scope": scope_text(token)}
    if verb == "added":
        expires = as_utc(token.expires_at)
        details["expires_at"] = expires.isoformat() if expires else ""
        if token.allowed_networks:
            details["networks"] = token.allowed_networks
        if token.release_version:
            details["release_version"] = token.release_version
    if reason:
        details["reason"] = reason
    await events.emit(s, f"account:api_token:{verb}", actor=actor, user=owner, origin=origin, details=details)
    projects = [(p.project_id, p.project_name) for p in token.projects]
    if reached is not None and reached[0] not in {p[0] for p in projects}:
        projects.append(reached)
    for project in projects:
        await events.emit(s, f"project:api_token:{verb}", actor=actor, project=project, origin=origin,
                          details={"token_id": token.id, "description": token.description,
                                   "username": owner[1], **({"reason": reason} if reason else {})})


async def delete_token(s: AsyncSession, events: EventEmitter, token: ApiToken, owner: tuple[str, str], *,
                       actor: ActorRef, origin: Origin | None, reason: str = "",
                       reached: tuple[str, str] | None = None) -> bool:
    """Delete a token read earlier in `s`, then record it; False (nothing recorded) when a concurrent
    transaction deleted it first. The DELETE waits for that one's row lock (PostgreSQL) or write
    lock (SQLite), so of many revocations of one token exactly one records events."""
    await s.execute(delete(ApiTokenProject).where(ApiTokenProject.token_id == token.id))
    gone = await s.execute(delete(ApiToken).where(ApiToken.id == token.id))
    if gone.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await emit_token_events(s, events, "removed", token, owner, actor=actor, origin=origin, reason=reason,
                            reached=reached)
    return True


async def revoke_for_deleted_project(s: AsyncSession, events: EventEmitter, project: tuple[str, str], *,
                                     actor: ActorRef, origin: Origin | None) -> list[str]:
    """Delete the tokens scoped only to `project`; tokens scoped to more keep their other projects.
    Returns the ids of the deleted tokens."""
    scope_size = (select(ApiTokenProject.token_id, func.count().label("n"))
                  .group_by(ApiTokenProject.token_id).subquery())
    rows = (await s.execute(
        select(ApiToken, User.username, scope_size.c.n)
        .join(ApiTokenProject, ApiTokenProject.token_id == ApiToken.id)
        .join(User, User.id == ApiToken.user_id)
        .join(scope_size, scope_size.c.token_id == ApiToken.id)
        .where(ApiTokenProject.project_id == project[0])
    )).all()
    deleted = []
    for token, username, size in rows:
        if size <= 1:
            await delete_token(s, events, token, (token.user_id, username), actor=actor, origin=origin,
                               reason="project_deleted")
            deleted.append(token.id)
    await s.execute(delete(ApiTokenProject).where(ApiTokenProject.project_id == project[0]))
    return deleted
