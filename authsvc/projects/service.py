"""Projects and their Owner/Maintainer roles (the domain layer; no protobuf here).

Every project keeps at least one Owner: the last Owner can be neither removed nor demoted. Role
changes lock the project first and count Owners after the change, so two Owners removing each
other at once cannot leave a project without one, nor can a just-removed Owner still act. Role events carry both the
project and the target user, so one event shows in the project's log and in that user's log.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Protocol

from packaging.utils import canonicalize_name
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.accounts.models import User
from authsvc.accounts.service import canonical_username
from authsvc.db import new_id
from authsvc.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from authsvc.mail import Message
from authsvc.notices import Notifier, notice_address
from authsvc.projects.models import MAINTAINER, OWNER, Project, Role
from authsvc.projects.names import check_project_name
from authsvc.projects.phishing import REASON, phishing_resistant, refusal, require_for_project
from authsvc.twofactor.pending import has_second_factor, users_with_second_factor
from gatehouse.infra.clock import Clock
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin
from gatehouse.infra.prepared import Prepared, insert_of

ROLES = (OWNER, MAINTAINER)
_INSERT_PROJECT = Prepared(insert_of(Project.__table__))
_INSERT_ROLE = Prepared(insert_of(Role.__table__))


class Permission(enum.Enum):
    UPLOAD = "upload"      # Owner or Maintainer
    MANAGE = "manage"      # Owner
    VIEW_LOG = "view_log"  # Owner


_NEEDS = {Permission.UPLOAD: ROLES, Permission.MANAGE: (OWNER,), Permission.VIEW_LOG: (OWNER,)}
_ACTION = {Permission.UPLOAD: "upload to", Permission.MANAGE: "manage", Permission.VIEW_LOG: "view the log of"}


@dataclasses.dataclass(frozen=True)
class RoleView:
    username: str
    user_id: str
    role: str


@dataclasses.dataclass(frozen=True)
class PermissionCheck:
    allowed: bool
    reason: str
    role: str | None
    project: Project


class DeletionStep(Protocol):
    """Another area's part of deleting a project, with its events, in the deletion's transaction
    (revoking the tokens scoped to it, removing its trusted publishers; passed in, so that this
    package does not import the ones above it)."""

    async def __call__(self, s: AsyncSession, events: EventEmitter, project: tuple[str, str], *,
                       actor: ActorRef, origin: Origin | None) -> object: ...


async def projects_requiring_second_factor(s: AsyncSession, user_id: str) -> list[str]:
    """The names of the projects with the user as a collaborator that require a second factor of
    their collaborators, sorted (the two-factor policy's question)."""
    names = await s.scalars(
        select(Project.name).join(Role, Role.project_id == Project.id)
        .where(Role.user_id == user_id, Project.two_factor_required.is_(True)).order_by(Project.name)
    )
    return list(names)


class ProjectsService:
    def __init__(self, *, db: async_sessionmaker, clock: Clock, events: EventEmitter,
                 deletion_steps: tuple[DeletionStep, ...], notifier: Notifier | None = None):
        self.db = db
        self.clock = clock
        self.events = events
        self.deletion_steps = deletion_steps
        self.notifier = notifier

    # -- notices (built in the transaction, sent after it committed) ---------------------------

    async def _owners(self, s: AsyncSession, project_id: str) -> list[User]:
        return list(await s.scalars(select(User).join(Role, Role.user_id == User.id)
                                    .where(Role.project_id == project_id, Role.role_name == OWNER)))

    async def _role_notices(self, s: AsyncSession, project: Project, target: User, role: str, actor: ActorRef,
                            *, added: bool) -> list[Message]:
        """To the collaborator, and to every other Owner of the project (as PyPI does)."""
        if self.notifier is None:
            return []
        people = [target, *(o for o in await self._owners(s, project.id) if o.id != target.id)]
        return [self.notifier.role_changed(to=notice_address(p.emails), recipient=p.username,
                                           username=target.username, project=project.name, role=role,
                                           by=actor_phrase(actor), added=added) for p in people]

    def _send(self, messages: list[Message], purpose: str) -> None:
        if self.notifier is not None:
            self.notifier.send_later(messages, purpose=purpose)

    # -- reading -----------------------------------------------------------------------------

    async def get_project(self, name: str) -> Project:
        async with self.db() as s:
            return await self._project(s, name)

    async def _project(self, s: AsyncSession, name: str, *, lock: bool = False) -> Project:
        """The project, or NotFound. `lock` serialises changes to one project's roles: a no-op
        UPDATE takes the row lock on PostgreSQL and the write lock on SQLite before anything is
        read, so permission checks and the owner count see every earlier change."""
        normalized = check_project_name(name)
        if lock:
            await s.execute(update(Project).where(Project.normalized_name == normalized)
                            .values(normalized_name=Project.normalized_name))
        project = await s.scalar(select(Project).where(Project.normalized_name == normalized))
        if project is None:
            raise NotFound(f"There is no project named '{name}'.", reason="project_not_found")
        return project

    async def _user(self, s: AsyncSession, username: str) -> User:
        user = await s.scalar(select(User).where(User.username_canonical == canonical_username(username or "")))
        if user is None:
            raise NotFound(f"There is no user named '{username}'.", reason="user_not_found")
        return user

    @staticmethod
    async def role_of(s: AsyncSession, project_id: str, user_id: str) -> str | None:
        return await s.scalar(select(Role.role_name).where(Role.project_id == project_id, Role.user_id == user_id))

    async def list_for_user(self, user_id: str) -> list[tuple[Project, str]]:
        async with self.db() as s:
            rows = await s.execute(select(Project, Role.role_name).join(Role, Role.project_id == Project.id)
                                   .where(Role.user_id == user_id).order_by(Project.normalized_name))
            return [(p, r) for p, r in rows]

    async def list_roles(self, project_name: str, *, as_user: User | None) -> tuple[Project, list[RoleView]]:
        """Owners and Maintainers (or an operator, as_user=None) see who has which role."""
        async with self.db() as s:
            project = await self._project(s, project_name)
            if as_user is not None and await self.role_of(s, project.id, as_user.id) is None:
                raise PermissionDenied(f"Only collaborators of '{project.name}' can see its roles.",
                                       reason="not_a_collaborator")
            rows = await s.execute(select(User.username, User.id, Role.role_name).join(Role, Role.user_id == User.id)
                                   .where(Role.project_id == project.id).order_by(Role.role_name.desc(), User.username))
            return project, [RoleView(u, i, r) for u, i, r in rows]

    async def check_permission(self, user: User, project_name: str, permission: Permission,
                               auth_method: str | None = None) -> PermissionCheck:
        """`auth_method`: how the asking session logged in (None when no session asks)."""
        async with self.db() as s:
            project = await self._project(s, project_name)
            role = await self.role_of(s, project.id, user.id)
        if role in _NEEDS[permission]:
            if auth_method is not None and project.phishing_resistant_only and not phishing_resistant(auth_method):
                return PermissionCheck(False, refusal([project.name]).message, role, project)
            return PermissionCheck(True, "", role, project)
        if role is None:
            reason = f"You have no role on project '{project.name}'."
        else:
            reason = f"You are a {role} of '{project.name}'; only Owners may {_ACTION[permission]} it."
        return PermissionCheck(False, reason, role, project)

    # -- changing ----------------------------------------------------------------------------

    async def _require_owner(self, s: AsyncSession, project: Project, as_user: User | None) -> None:
        if as_user is None:  # an operator
            return
        if await self.role_of(s, project.id, as_user.id) != OWNER:
            raise PermissionDenied(f"Only Owners of '{project.name}' can do this.", reason="not_an_owner")

    async def owned_project(self, s: AsyncSession, name: str, as_user: User | None, *, lock: bool = True
                            ) -> Project:
        """For an Owner's action in the caller's transaction: the project, locked (see `_project`),
        or PermissionDenied unless `as_user` is its Owner (None: an operator)."""
        project = await self._project(s, name, lock=lock)
        await self._require_owner(s, project, as_user)
        return project

    def create_with_owner(self, conn: Connection, name: str, owner: tuple[str, str], *,
                          actor: ActorRef, origin: Origin | None) -> dict:
        """Create a project with `owner` (id, username) as its Owner, in the caller's (synchronous)
        transaction: Core statements, as this runs inside the first upload of every project. Returns
        the project's row as written (its columns' values). A concurrent creation of the same name
        raises IntegrityError."""
        normalized = check_project_name(name)
        now = self.clock.now()
        values = dict(id=new_id(), name=name, normalized_name=normalized, created_at=now, two_factor_required=False,
                      trusted_publishing_only=False, phishing_resistant_only=False)
        _INSERT_PROJECT.execute(conn, values)
        _INSERT_ROLE.execute(conn, dict(id=new_id(), project_id=values["id"], user_id=owner[0], role_name=OWNER,
                                        created_at=now))
        ref = (values["id"], name)
        self.events.write(conn, [
            self.events.build("project:create", actor=actor, user=owner, project=ref, origin=origin,
                              details={"created_by": actor.username}),
            self.events.build("project:role:add", actor=actor, user=owner, project=ref, origin=origin,
                              details={"role": OWNER, "target_username": owner[1]})])
        return values

    async def add_role(self, project_name: str, username: str, role: str, *, as_user: User | None,
                       actor: ActorRef, origin: Origin | None = None, create_project: bool = False,
                       replace: bool = False) -> tuple[Project, RoleView]:
        """Give `username` a role. Operators may create the project (with an Owner) and, with
        `replace`, change an existing role instead of failing."""
        _check_role(role)
        sent: list[Message] = []
        try:
            async with self.db() as s, s.begin():
                result = await self._add_role(s, project_name, username, role, as_user=as_user, actor=actor,
                                              origin=origin, create_project=create_project, replace=replace,
                                              sent=sent)
            self._send(sent, "role_added")
            return result
        except IntegrityError:  # a concurrent request created the same project or role first
            raise AlreadyExists(f"'{project_name}' or its role for '{username}' was just changed by another "
                                "request; check and try again.", reason="concurrent_change") from None

    async def _add_role(self, s, project_name, username, role, *, as_user, actor, origin, create_project,
                        replace, sent: list[Message]) -> tuple[Project, RoleView]:
        try:
            project = await self._project(s, project_name, lock=True)
        except NotFound:
            if not create_project:
                raise
            if role != OWNER:
                raise InvalidArgument("A new project needs an Owner: create it with the Owner role.",
                                      reason="new_project_needs_owner") from None
            target = await self._user(s, username)
            project = Project(**await s.run_sync(lambda sync: self.create_with_owner(  # not attached to the session
                sync.connection(), project_name, (target.id, target.username), actor=actor, origin=origin)))
            return project, RoleView(target.username, target.id, OWNER)
        await self._require_owner(s, project, as_user)
        target = await self._user(s, username)
        current = await self.role_of(s, project.id, target.id)
        if current is not None:
            if replace and current != role:
                return project, await self._change(s, project, target, role, current, actor, origin)
            if replace:
                return project, RoleView(target.username, target.id, current)
            raise AlreadyExists(f"'{target.username}' is already a {current} of '{project.name}'.",
                                reason="role_exists")
        s.add(Role(project_id=project.id, user_id=target.id, role_name=role, created_at=self.clock.now()))
        await s.flush()
        await self.events.emit(s, "project:role:add", actor=actor, user=(target.id, target.username),
                               project=(project.id, project.name), origin=origin,
                               details={"role": role, "target_username": target.username})
        sent += await self._role_notices(s, project, target, role, actor, added=True)
        return project, RoleView(target.username, target.id, role)

    async def change_role(self, project_name: str, username: str, role: str, *, as_user: User | None,
                          actor: ActorRef, origin: Origin | None = None) -> RoleView:
        _check_role(role)
        async with self.db() as s, s.begin():
            project, target, current = await self._existing_role(s, project_name, username, as_user)
            if current == role:
                return RoleView(target.username, target.id, role)
            return await self._change(s, project, target, role, current, actor, origin)

    async def _existing_role(self, s: AsyncSession, project_name: str, username: str,
                             as_user: User | None) -> tuple[Project, User, str]:
        """For an Owner's change to a role that must exist: the project (locked), the user, the role."""
        project = await self._project(s, project_name, lock=True)
        await self._require_owner(s, project, as_user)
        target = await self._user(s, username)
        current = await self.role_of(s, project.id, target.id)
        if current is None:
            raise NotFound(f"'{target.username}' has no role on '{project.name}'.", reason="role_not_found")
        return project, target, current

    async def _change(self, s, project, target, role, current, actor, origin) -> RoleView:
        row = await s.scalar(select(Role).where(Role.project_id == project.id, Role.user_id == target.id))
        row.role_name = role
        await s.flush()
        await self._ensure_an_owner(s, project, target, "demoted")
        await self.events.emit(s, "project:role:change", actor=actor, user=(target.id, target.username),
                               project=(project.id, project.name), origin=origin,
                               details={"role": role, "previous_role": current, "target_username": target.username})
        return RoleView(target.username, target.id, role)

    async def remove_role(self, project_name: str, username: str, *, as_user: User | None,
                          actor: ActorRef, origin: Origin | None = None) -> None:
        async with self.db() as s, s.begin():
            project, target, current = await self._existing_role(s, project_name, username, as_user)
            await s.execute(delete(Role).where(Role.project_id == project.id, Role.user_id == target.id))
            await self._ensure_an_owner(s, project, target, "removed")
            await self.events.emit(s, "project:role:remove", actor=actor, user=(target.id, target.username),
                                   project=(project.id, project.name), origin=origin,
                                   details={"role": current, "target_username": target.username})
            sent = await self._role_notices(s, project, target, current, actor, added=False)
        self._send(sent, "role_removed")

    async def set_two_factor_required(self, project_name: str, required: bool, *, as_user: User | None,
                                      actor: ActorRef, origin: Origin | None = None) -> tuple[Project, list[str]]:
        """Owners (or an operator) require a second factor of every collaborator, or stop. An Owner
        turning it on must have one. Returns the project and the collaborators still without one."""
        async with self.db() as s, s.begin():
            project = await self._project(s, project_name, lock=True)
            await self._require_owner(s, project, as_user)
            if required and as_user is not None and not await has_second_factor(s, as_user.id):
                raise FailedPrecondition(
                    "Add an authenticator app or a security key to your own account before requiring "
                    "two-factor authentication of this project's collaborators.", reason="two_factor_missing")
            if project.two_factor_required != required:
                project.two_factor_required = required
                await s.flush()
                await self.events.emit(
                    s, f"project:owners_require_2fa:{'enabled' if required else 'disabled'}", actor=actor,
                    user=(as_user.id, as_user.username) if as_user else None, project=(project.id, project.name),
                    origin=origin, details={"changed_by": actor.username})
            people = dict((await s.execute(select(User.id, User.username).join(Role, Role.user_id == User.id)
                                           .where(Role.project_id == project.id))).all())
            with_factor = await users_with_second_factor(s, people)
            return project, sorted(name for uid, name in people.items() if uid not in with_factor)

    async def require_login_strength(self, project_name: str, auth_method: str) -> None:
        """PermissionDenied when the project accepts only phishing-resistant logins and the
        session's was not one (before any Owner action on it)."""
        async with self.db() as s:
            require_for_project(await self._project(s, project_name), auth_method)

    async def set_phishing_resistant_only(self, project_name: str, enabled: bool, *, as_user: User,
                                          auth_method: str, actor: ActorRef, origin: Origin | None = None) -> Project:
        """Owners accept collaborators' actions only from security-key or passkey logins, or stop.
        An Owner turning it on must be logged in so, or the switch would lock them out at once."""
        if enabled and not phishing_resistant(auth_method):
            raise FailedPrecondition("Log in with a security key or a passkey before turning this on: your "
                                     "current login would no longer be accepted.", reason=REASON)
        async with self.db() as s, s.begin():
            project = await self._project(s, project_name, lock=True)
            await self._require_owner(s, project, as_user)
            if project.phishing_resistant_only != enabled:
                project.phishing_resistant_only = enabled
                await s.flush()
                await self.events.emit(
                    s, f"project:phishing_resistant_only:{'enabled' if enabled else 'disabled'}", actor=actor,
                    user=(as_user.id, as_user.username), project=(project.id, project.name), origin=origin,
                    details={"changed_by": actor.username})
            return project

    async def _ensure_an_owner(self, s: AsyncSession, project: Project, target: User, verb: str) -> None:
        """Counted after the change, inside its transaction: raising rolls the change back."""
        owners = await s.scalar(select(func.count()).select_from(Role)
                                .where(Role.project_id == project.id, Role.role_name == OWNER))
        if not owners:
            raise FailedPrecondition(
                f"'{target.username}' is the last Owner of '{project.name}' and cannot be {verb}: "
                "add another Owner first, or delete the project.", reason="last_owner")

    async def delete_project(self, project_name: str, *, as_user: User | None, actor: ActorRef,
                             confirm_name: str | None = None, origin: Origin | None = None) -> str:
        """Delete a project, its roles, the tokens scoped only to it (others lose it from scope) and its
        trusted publishers."""
        async with self.db() as s, s.begin():
            project = await self._project(s, project_name, lock=True)
            await self._require_owner(s, project, as_user)
            if confirm_name is not None and canonicalize_name(confirm_name or "-") != project.normalized_name:
                raise InvalidArgument(f"Type the project's name '{project.name}' to confirm its deletion.",
                                      reason="confirm_name_mismatch")
            ref = (project.id, project.name)
            by = actor_phrase(actor)
            sent = [self.notifier.project_deleted(to=notice_address(o.emails), recipient=o.username,
                                                  project=project.name, by=by)
                    for o in await self._owners(s, project.id)] if self.notifier is not None else []
            for step in self.deletion_steps:
                await step(s, self.events, ref, actor=actor, origin=origin)
            await self.events.emit(s, "project:delete", actor=actor,
                                   user=(as_user.id, as_user.username) if as_user else None,
                                   project=ref, origin=origin, details={"deleted_by": actor.username})
            await s.execute(delete(Role).where(Role.project_id == project.id))
            await s.delete(project)
        self._send(sent, "project_deleted")
        return project.id


def actor_phrase(actor: ActorRef) -> str:
    return repr(actor.username) if actor.kind == "user" else "an administrator of this index"


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidArgument("Choose a role: Owner or Maintainer.", reason="role_invalid")
