"""Registering trusted publishers (the domain layer; no protobuf here).

Owners add and remove a project's publishers (operators: any project's). A user registers a
pending publisher for a project name that does not exist yet; its first exchange creates the project
with that user as Owner (publishing/exchange.py). Every change is an event in the same transaction:
`project:publisher:add|remove` in the project's log, `account:pending_publisher:add|remove` in the
user's. Deleting a project removes its publishers with their events too (`remove_for_deleted_project`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.accounts.models import User
from authsvc.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from authsvc.projects.models import OWNER, Project, Role
from authsvc.projects.names import check_project_name
from authsvc.publishing.kinds import Spec, binds_ids, make_spec
from authsvc.publishing.models import PendingPublisher, Publisher
from authsvc.publishing.notices import OwnerNotices
from authsvc.settings import OidcIssuer
from gatehouse.infra.clock import Clock, as_utc
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin

MAX_PUBLISHERS_PER_PROJECT = 20
MAX_PENDING_PER_USER = 5


@dataclasses.dataclass(frozen=True)
class SpecInput:
    """What a form or the CLI entered for a publisher (see PublisherSpec in publishing.proto)."""

    issuer_url: str
    owner: str = ""
    repository: str = ""
    workflow: str = ""
    environment: str = ""
    email: str = ""
    subject: str = ""
    claims: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # A project's publisher only, both or neither: the provider's immutable ids, bound at once.
    repository_id: str = ""
    owner_id: str = ""


@dataclasses.dataclass(frozen=True)
class PublisherView:
    id: str
    spec: Spec
    display: str
    project_id: str
    project_name: str
    bound_repository_id: str
    bound_owner_id: str
    created_at: dt.datetime
    created_by: str


@dataclasses.dataclass(frozen=True)
class PendingView:
    id: str
    spec: Spec
    display: str
    project_name: str
    username: str
    created_at: dt.datetime


def spec_of(row: Publisher | PendingPublisher) -> Spec:
    claims = tuple(sorted(json.loads(row.claims or "{}").items()))
    return Spec(issuer_url=row.issuer_url, kind=row.kind, owner=row.owner, repository=row.repository,
                workflow=row.workflow, environment=row.environment, email=row.email, subject=row.subject,
                claims=claims)


def spec_columns(spec: Spec) -> dict[str, str]:
    return dict(issuer_url=spec.issuer_url, kind=spec.kind, lookup=spec.lookup, spec_key=spec.key,
                owner=spec.owner, repository=spec.repository, workflow=spec.workflow,
                environment=spec.environment, email=spec.email, subject=spec.subject, claims=spec.claims_json)


def publisher_view(row: Publisher, project_name: str) -> PublisherView:
    spec = spec_of(row)
    return PublisherView(id=row.id, spec=spec, display=spec.display(), project_id=row.project_id,
                         project_name=project_name, bound_repository_id=row.bound_repository_id,
                         bound_owner_id=row.bound_owner_id, created_at=as_utc(row.created_at),
                         created_by=row.created_by)


def pending_view(row: PendingPublisher, username: str) -> PendingView:
    spec = spec_of(row)
    return PendingView(id=row.id, spec=spec, display=spec.display(), project_name=row.project_name,
                       username=username, created_at=as_utc(row.created_at))


def publisher_details(view: PublisherView | PendingView) -> dict[str, str]:
    return {"publisher_id": view.id, "publisher": view.display, "issuer": view.spec.issuer_url,
            "kind": view.spec.kind}


async def remove_for_deleted_project(s: AsyncSession, events: EventEmitter, project: tuple[str, str], *,
                                     actor: ActorRef, origin: Origin | None) -> list[str]:
    """Remove the publishers of `project`, being deleted, each with its event (the projects area calls
    this in the deletion's transaction). Returns their ids."""
    rows = list(await s.scalars(select(Publisher).where(Publisher.project_id == project[0])
                                .order_by(Publisher.created_at, Publisher.id)))
    for row in rows:
        await events.emit(s, "project:publisher:remove", actor=actor, project=project, origin=origin,
                          details={**publisher_details(publisher_view(row, project[1])), "reason": "project_deleted"})
    await s.execute(delete(Publisher).where(Publisher.project_id == project[0]))
    return [row.id for row in rows]


class PublishersService:
    def __init__(self, *, db: async_sessionmaker[AsyncSession], clock: Clock, events: EventEmitter,
                 issuers: tuple[OidcIssuer, ...], notices: OwnerNotices | None = None) -> None:
        self.db = db
        self.clock = clock
        self.events = events
        self.issuers = issuers
        self.notices = notices  # mails the project's Owners about each change, once committed

    @property
    def enabled(self) -> bool:
        return bool(self.issuers)

    def spec(self, given: SpecInput) -> Spec:
        issuer = next((i for i in self.issuers if i.url == given.issuer_url), None)
        if issuer is None:
            raise InvalidArgument(f"'{given.issuer_url[:200]}' is not an issuer this index trusts; choose one of "
                                  f"{', '.join(i.url for i in self.issuers) or '(none configured)'}.",
                                  reason="issuer_unknown")
        return make_spec(issuer, owner=given.owner, repository=given.repository, workflow=given.workflow,
                         environment=given.environment, email=given.email, subject=given.subject,
                         claims=given.claims)

    # -- a project's publishers ------------------------------------------------------------------

    async def _project(self, s: AsyncSession, name: str, as_user: User | None) -> Project:
        project = await s.scalar(select(Project).where(Project.normalized_name == check_project_name(name)))
        if project is None:
            raise NotFound(f"There is no project named '{name}'.", reason="project_not_found")
        if as_user is not None:
            role = await s.scalar(select(Role.role_name).where(Role.project_id == project.id,
                                                               Role.user_id == as_user.id))
            if role != OWNER:
                raise PermissionDenied(f"Only Owners of '{project.name}' can manage its trusted publishers.",
                                       reason="not_an_owner")
        return project

    async def list_publishers(self, project_name: str, *, as_user: User | None) -> list[PublisherView]:
        async with self.db() as s:
            project = await self._project(s, project_name, as_user)
            rows = await s.scalars(select(Publisher).where(Publisher.project_id == project.id)
                                   .order_by(Publisher.created_at, Publisher.id))
            return [publisher_view(row, project.name) for row in rows]

    async def add_publisher(self, project_name: str, given: SpecInput, *, as_user: User | None, actor: ActorRef,
                            origin: Origin | None = None) -> PublisherView:
        """Add a publisher; with the provider's ids given, bound to them at once (else on first use)."""
        spec = self.spec(given)
        ids = _upfront_ids(spec, given)
        try:
            async with self.db() as s, s.begin():
                project = await self._project(s, project_name, as_user)
                count = await s.scalar(select(func.count()).select_from(Publisher)
                                       .where(Publisher.project_id == project.id))
                if (count or 0) >= MAX_PUBLISHERS_PER_PROJECT:
                    raise FailedPrecondition(f"'{project.name}' has {MAX_PUBLISHERS_PER_PROJECT} trusted publishers, "
                                             "the most a project may have: remove one first.",
                                             reason="too_many_publishers")
                row = Publisher(project_id=project.id, created_at=self.clock.now(), created_by=actor.username,
                                bound_repository_id=ids[0], bound_owner_id=ids[1], **spec_columns(spec))
                s.add(row)
                await s.flush()
                view = publisher_view(row, project.name)
                await self.events.emit(s, "project:publisher:add", actor=actor, project=(project.id, project.name),
                                       origin=origin, details={**publisher_details(view),
                                                               "bound_repository_id": ids[0],
                                                               "bound_owner_id": ids[1]})
        except IntegrityError:
            raise AlreadyExists(f"'{project_name}' already has this trusted publisher.",
                                reason="publisher_exists") from None
        self._tell_owners(view, added=True, actor=actor)
        return view

    async def remove_publisher(self, project_name: str, publisher_id: str, *, as_user: User | None,
                               actor: ActorRef, origin: Origin | None = None) -> PublisherView:
        """Remove a publisher; tokens it minted lose that project at once (their scope rows cascade)."""
        async with self.db() as s, s.begin():
            project = await self._project(s, project_name, as_user)
            row = await s.scalar(select(Publisher).where(Publisher.id == (publisher_id or "")[:36],
                                                         Publisher.project_id == project.id))
            if row is None:
                raise NotFound(f"'{project.name}' has no trusted publisher with id '{(publisher_id or '')[:36]}'.",
                               reason="publisher_not_found")
            view = publisher_view(row, project.name)
            await self.events.emit(s, "project:publisher:remove", actor=actor, project=(project.id, project.name),
                                   origin=origin, details=publisher_details(view))
            await s.execute(delete(Publisher).where(Publisher.id == row.id))
        self._tell_owners(view, added=False, actor=actor)
        return view

    def _tell_owners(self, view: PublisherView, *, added: bool, actor: ActorRef) -> None:
        if self.notices is not None:
            self.notices.publisher_changed(view.project_id, view.project_name, view.display, added=added,
                                           by=actor.username or "An operator")

    async def set_trusted_publishing_only(self, project_name: str, enabled: bool, *, as_user: User | None,
                                          actor: ActorRef, origin: Origin | None = None) -> Project:
        """Owners (or an operator) refuse uploads with long-lived API tokens, or stop refusing them.
        Turning it on needs a publisher, so that the project can still publish."""
        async with self.db() as s, s.begin():
            project = await self._project(s, project_name, as_user)
            if enabled and not await s.scalar(select(func.count()).select_from(Publisher)
                                              .where(Publisher.project_id == project.id)):
                raise FailedPrecondition(f"Add a trusted publisher to '{project.name}' first: with trusted "
                                         "publishing only and no publisher, nothing could upload.",
                                         reason="no_publisher")
            if project.trusted_publishing_only != enabled:
                project.trusted_publishing_only = enabled
                await s.flush()
                await self.events.emit(s, f"project:trusted_publishing_only:{'enabled' if enabled else 'disabled'}",
                                       actor=actor, project=(project.id, project.name), origin=origin,
                                       details={"changed_by": actor.username})
            return project

    # -- pending publishers ----------------------------------------------------------------------

    async def list_pending(self, user_id: str | None) -> list[PendingView]:
        """A user's pending publishers (None: everyone's, for operators)."""
        async with self.db() as s:
            query = (select(PendingPublisher, User.username).join(User, User.id == PendingPublisher.user_id)
                     .order_by(PendingPublisher.created_at, PendingPublisher.id))
            if user_id is not None:
                query = query.where(PendingPublisher.user_id == user_id)
            return [pending_view(row, username) for row, username in await s.execute(query)]

    async def add_pending(self, project_name: str, given: SpecInput, *, user: User, actor: ActorRef,
                          origin: Origin | None = None) -> PendingView:
        spec = self.spec(given)
        if given.repository_id or given.owner_id:
            raise InvalidArgument("A pending publisher is bound to its repository's ids by the exchange that "
                                  "creates its project; leave the ids empty.", reason="ids_not_accepted")
        normalized = check_project_name(project_name)
        try:
            async with self.db() as s, s.begin():
                owner = await s.get(User, user.id)
                if owner is None or not owner.is_active:
                    raise FailedPrecondition("This account is disabled.", reason="account_disabled")
                primary = next((e for e in owner.emails if e.primary), None)
                if primary is None or not primary.verified:
                    raise FailedPrecondition("Verify your primary email address before registering a pending "
                                             "publisher.", reason="email_unverified")
                if await s.scalar(select(Project.id).where(Project.normalized_name == normalized)):
                    raise AlreadyExists(f"The project '{project_name}' exists already: its Owners add publishers "
                                        "on its page.", reason="project_exists")
                count = await s.scalar(select(func.count()).select_from(PendingPublisher)
                                       .where(PendingPublisher.user_id == owner.id))
                if (count or 0) >= MAX_PENDING_PER_USER:
                    raise FailedPrecondition(f"You have {MAX_PENDING_PER_USER} pending publishers, the most an "
                                             "account may have: remove one first.", reason="too_many_pending")
                row = PendingPublisher(project_name=project_name.strip(), normalized_name=normalized,
                                       user_id=owner.id, created_at=self.clock.now(), created_by=actor.username,
                                       **spec_columns(spec))
                s.add(row)
                await s.flush()
                view = pending_view(row, owner.username)
                await self.events.emit(s, "account:pending_publisher:add", actor=actor,
                                       user=(owner.id, owner.username), origin=origin,
                                       details={**publisher_details(view), "project_name": view.project_name})
                return view
        except IntegrityError:
            raise AlreadyExists(f"This pending publisher for '{project_name}' is registered already.",
                                reason="pending_publisher_exists") from None

    async def remove_pending(self, pending_id: str, *, owner_id: str | None, actor: ActorRef,
                             origin: Origin | None = None) -> PendingView:
        """Remove a pending publisher of `owner_id` (None: anyone's, for operators); another user's is
        reported as not found."""
        async with self.db() as s, s.begin():
            query = (select(PendingPublisher, User.username).join(User, User.id == PendingPublisher.user_id)
                     .where(PendingPublisher.id == (pending_id or "")[:36]))
            if owner_id is not None:
                query = query.where(PendingPublisher.user_id == owner_id)
            found = (await s.execute(query)).first()
            if found is None:
                raise NotFound(f"There is no pending publisher with id '{(pending_id or '')[:36]}'.",
                               reason="pending_publisher_not_found")
            row, username = found
            view = pending_view(row, username)
            await self.events.emit(s, "account:pending_publisher:remove", actor=actor, user=(row.user_id, username),
                                   origin=origin,
                                   details={**publisher_details(view), "project_name": view.project_name})
            await s.execute(delete(PendingPublisher).where(PendingPublisher.id == row.id))
            return view


MAX_ID_LENGTH = 20  # the providers' ids are 64-bit integers


def _upfront_ids(spec: Spec, given: SpecInput) -> tuple[str, str]:
    """The immutable ids an Owner gave at registration, checked, or ("", "") to bind on first use."""
    repository_id, owner_id = given.repository_id.strip(), given.owner_id.strip()
    if not repository_id and not owner_id:
        return "", ""
    names = binds_ids(spec.kind)
    if names is None:
        raise InvalidArgument(f"A {spec.kind} publisher has no repository and owner ids to bind; leave them empty.",
                              reason="ids_not_accepted")
    for value, name in ((repository_id, names[0]), (owner_id, names[1])):
        if not (value.isascii() and value.isdigit() and len(value) <= MAX_ID_LENGTH):
            raise InvalidArgument(f"Give both ids as the numbers the provider shows ({names[0]} and {names[1]} "
                                  f"in its identity tokens); '{value[:40]}' is not one for {name}.",
                                  reason="ids_invalid")
    return repository_id, owner_id
