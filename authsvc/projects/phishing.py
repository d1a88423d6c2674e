"""The per-project policy "phishing-resistant second factor only": its collaborators act on the
project (page actions, new tokens that can reach it) only from a session that logged in with a
security key or a passkey; a password + TOTP or recovery-code session is refused with a reason the
pages can explain. The session records how it logged in (`Session.auth_method`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from authsvc.errors import PermissionDenied
from authsvc.projects.models import Project, Role

PHISHING_RESISTANT_METHODS = frozenset({"webauthn", "passkey"})
REASON = "phishing_resistant_login_required"


def phishing_resistant(auth_method: str) -> bool:
    return auth_method in PHISHING_RESISTANT_METHODS


def refusal(project_names: Iterable[str]) -> PermissionDenied:
    named = ", ".join(repr(n) for n in sorted(project_names)[:5])
    return PermissionDenied(f"The project {named} accepts only logins with a security key or a passkey. Log out, "
                            "then log in again with your security key or passkey.", reason=REASON)


def require_for_project(project: Project, auth_method: str) -> None:
    if project.phishing_resistant_only and not phishing_resistant(auth_method):
        raise refusal([project.name])


async def require_for_token(s: AsyncSession, user_id: str, auth_method: str, *, all_projects: bool,
                            project_ids: Iterable[str]) -> None:
    """A token can reach the projects it names, or (all_projects) every project of its user."""
    if phishing_resistant(auth_method):
        return
    query = select(Project.name).where(Project.phishing_resistant_only.is_(True))
    if all_projects:
        query = query.join(Role, Role.project_id == Project.id).where(Role.user_id == user_id)
    else:
        query = query.where(Project.id.in_(list(project_ids)))
    names = list(await s.scalars(query))
    if names:
        raise refusal(names)
