"""A project's Owners and the API tokens that can reach it (PyPI #6263, #20079).

A token reaches a project when its user is a collaborator of it and it is either account-wide or
scoped to the project. Owners see all of them, their collaborators' included, and may revoke any:
an account-wide token of a collaborator also reaches the collaborator's other projects, and
revoking it here ends it there too (the page says so). It is allowed because the token can upload
to this project, and the Owner's only other remedy, removing the collaborator, is harsher.

A project-scoped token that also names other projects is shown as "this project and N others",
never with their names: an Owner of one project learns nothing of a collaborator's others.

Revocation deletes the token and records `account:api_token:removed` (the token owner's log) and
`project:api_token:removed` (this project's log, and each other project in its scope), and mails
the token owner when someone else revoked it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.accounts.models import User
from authsvc.errors import FailedPrecondition, NotFound
from authsvc.mail import Message
from authsvc.notices import Notifier, notice_address
from authsvc.projects.models import Project, Role
from authsvc.projects.service import ProjectsService, actor_phrase
from authsvc.tokens.models import ApiToken, ApiTokenProject
from authsvc.tokens.revocation import delete_token
from authsvc.tokens.service import TokenView
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin

# Whether a project has a trusted publisher (publishing's; passed in, as that package imports this one).
HasPublisher = Callable[[AsyncSession, str], Awaitable[bool]]
OWNER_REVOKED = "owner_revoked"
TRUSTED_PUBLISHING = "trusted_publishing"


@dataclasses.dataclass(frozen=True)
class ReachingToken:
    """A token that can reach the project, as its Owners see it."""

    token: TokenView
    # "account": account-wide; "project": scoped to this project only; "projects": to this one
    # and `other_projects` more.
    reach: str
    other_projects: int = 0


def _reach(token: ApiToken) -> tuple[str, int]:
    if token.scope_all_projects:
        return "account", 0
    others = len(token.projects) - 1
    return ("projects", others) if others else ("project", 0)


class ProjectTokens:
    def __init__(self, *, db: async_sessionmaker[AsyncSession], events: EventEmitter, projects: ProjectsService,
                 has_publisher: HasPublisher, notifier: Notifier | None = None) -> None:
        self.db = db
        self.has_publisher = has_publisher
        self.events = events
        self.projects = projects
        self.notifier = notifier

    @staticmethod
    async def _reaching(s: AsyncSession, project: Project) -> list[tuple[ApiToken, User]]:
        scoped_here = exists().where(ApiTokenProject.token_id == ApiToken.id,
                                     ApiTokenProject.project_id == project.id)
        rows = await s.execute(
            select(ApiToken, User).join(User, User.id == ApiToken.user_id)
            .join(Role, (Role.user_id == ApiToken.user_id) & (Role.project_id == project.id))
            .where(or_(ApiToken.scope_all_projects.is_(True), scoped_here))
            .order_by(func.lower(User.username), ApiToken.created_at, ApiToken.id))
        return [(t, u) for t, u in rows]

    async def listing(self, project_name: str, *, as_user: User | None) -> tuple[Project, bool, list[ReachingToken]]:
        """Owners (or an operator): the project, whether it has a trusted publisher, and the tokens."""
        async with self.db() as s:
            project = await self.projects.owned_project(s, project_name, as_user, lock=False)
            reaching = [ReachingToken(TokenView.of(t, u.username), *_reach(t))
                        for t, u in await self._reaching(s, project)]
            return project, await self.has_publisher(s, project.id), reaching

    async def revoke(self, project_name: str, token_id: str, *, as_user: User | None, actor: ActorRef,
                     origin: Origin | None = None) -> TokenView:
        """Revoke one token that reaches the project; NotFound for any other id (or one revoked already)."""
        async with self.db() as s, s.begin():
            project = await self.projects.owned_project(s, project_name, as_user)
            found = [(t, u) for t, u in await self._reaching(s, project) if t.id == (token_id or "")[:64]]
            if not found or not await self._delete(s, project, *found[0], actor, origin, OWNER_REVOKED):
                raise NotFound(f"No API token with id '{(token_id or '')[:64]}' can reach '{project.name}' (it "
                               "may have been revoked already).", reason="token_not_found")
            token, user = found[0]
            sent = self._notices(project, [(token, user)], actor)
        self._send(sent)
        return TokenView.of(token, user.username)

    async def revoke_long_lived(self, project_name: str, *, include_account_wide: bool, as_user: User | None,
                                actor: ActorRef, origin: Origin | None = None) -> list[TokenView]:
        """A project that publishes with trusted publishers no longer needs long-lived tokens: revoke,
        in one transaction, every token scoped to it alone and, when asked, the collaborators'
        account-wide tokens. Tokens scoped to it and other projects stay (listed on the page)."""
        async with self.db() as s, s.begin():
            project = await self.projects.owned_project(s, project_name, as_user)
            if not await self.has_publisher(s, project.id):
                raise FailedPrecondition(f"'{project.name}' has no trusted publisher: add one before revoking its "
                                         "long-lived tokens, or its uploads would stop.", reason="no_publisher")
            revoked = []
            for token, user in await self._reaching(s, project):
                reach, _ = _reach(token)
                if (reach == "project" or (reach == "account" and include_account_wide)) and await self._delete(
                        s, project, token, user, actor, origin, TRUSTED_PUBLISHING):
                    revoked.append((token, user))
            sent = self._notices(project, revoked, actor)
        self._send(sent)
        return [TokenView.of(t, u.username) for t, u in revoked]

    async def _delete(self, s: AsyncSession, project: Project, token: ApiToken, user: User, actor: ActorRef,
                      origin: Origin | None, reason: str) -> bool:
        return await delete_token(s, self.events, token, (user.id, user.username), actor=actor, origin=origin,
                                  reason=reason, reached=(project.id, project.name))

    def _notices(self, project: Project, revoked: list[tuple[ApiToken, User]], actor: ActorRef) -> list[Message]:
        if self.notifier is None:
            return []
        by = actor_phrase(actor)
        return [self.notifier.token_revoked(to=notice_address(u.emails), username=u.username,
                                            description=t.description, project=project.name, by=by)
                for t, u in revoked if u.id != actor.user_id]

    def _send(self, messages: list[Message]) -> None:
        if self.notifier is not None:
            self.notifier.send_later(messages, purpose="token_revoked")
