"""Projects for the pages: roles through authsvc, releases through the gateway's ReleaseService.

authsvc decides who may do what (CheckPermission, and the role RPCs check Owners themselves);
the gateway acts on its own tables only after authsvc said yes, and its events name the user.
"""

from __future__ import annotations

import grpc
from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from gatehouse.auth.v1 import projects_pb2, projects_pb2_grpc
from gatehouse.infra.errors import GatehouseError
from gatehouse.infra.outbox import ActorRef, Origin
from uploadgw.errors import http_status_for
from uploadgw.models import File, Release
from uploadgw.pages.services.errors import NotAllowed, PageError, ReauthRequired
from uploadgw.pages.services.rpc import Caller, client_info
from uploadgw.pages.services.views import (
    ROLE_NAMES,
    ROLE_VALUES,
    Access,
    Collaborator,
    FileRow,
    MyProject,
    Project,
    ReleaseRow,
)
from uploadgw.releases.service import ReleaseService

PERMISSIONS = {"upload": projects_pb2.PERMISSION_UPLOAD, "manage": projects_pb2.PERMISSION_MANAGE,
               "view_log": projects_pb2.PERMISSION_VIEW_LOG}
ROLE_FIELDS = ("username", "role")  # that may show a refusal, by its reason


def _role(value: str) -> int:
    try:
        return ROLE_VALUES[value]
    except KeyError:
        raise PageError("Choose a role: Owner or Maintainer.", field="role") from None


def _version_key(row: ReleaseRow):
    try:
        return (1, Version(row.version))
    except InvalidVersion:
        return (0, Version("0"))


class ProjectPages:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float, releases: ReleaseService,
                 db: async_sessionmaker):
        self._stub = projects_pb2_grpc.ProjectServiceStub(channel)
        self._call = Caller(timeout)
        self._releases = releases
        self._db = db

    # -- who may do what -------------------------------------------------------------------------
    async def mine(self, session_token: str) -> list[MyProject]:
        reply = await self._call(self._stub.ListMyProjects, projects_pb2.ListMyProjectsRequest(
            session_token=session_token))
        found = [MyProject(project=Project.of(p.project), role=ROLE_NAMES.get(p.role, "")) for p in reply.projects]
        return sorted(found, key=lambda m: m.project.normalized_name)

    async def access(self, session_token: str, project_name: str, permission: str = "upload") -> Access:
        """The user's standing on the project; NotAllowed unless authsvc allows `permission`."""
        reply = await self._call(self._stub.CheckPermission, projects_pb2.CheckPermissionRequest(
            session_token=session_token, project_name=project_name, permission=PERMISSIONS[permission]))
        access = Access(project=Project.of(reply.project), role=ROLE_NAMES.get(reply.role, ""),
                        allowed=reply.allowed, reason=reply.reason, reauth_required=reply.reauth_required,
                        user_id=reply.user_id, username=reply.username)
        if not access.allowed:
            raise NotAllowed(access.reason or f"You may not do this on '{project_name}'.")
        return access

    async def manage(self, session_token: str, project_name: str) -> Access:
        """For Owners' actions: also refuses when the password must be confirmed first."""
        access = await self.access(session_token, project_name, "manage")
        if access.reauth_required:
            raise ReauthRequired()
        return access

    # -- collaborators ---------------------------------------------------------------------------
    async def collaborators(self, session_token: str, project_name: str) -> list[Collaborator]:
        reply = await self._call(self._stub.ListRoles, projects_pb2.ListRolesRequest(
            session_token=session_token, project_name=project_name))
        people = [Collaborator(username=r.username, role=ROLE_NAMES.get(r.role, "")) for r in reply.roles]
        return sorted(people, key=lambda c: (c.role != "Owner", c.username.lower()))

    async def add_role(self, session_token: str, project_name: str, username: str, role: str,
                       origin: Origin | None) -> None:
        if not username:
            raise PageError("Enter the username of the person to add.", field="username")
        await self._call(self._stub.AddRole, projects_pb2.AddRoleRequest(
            session_token=session_token, project_name=project_name, username=username, role=_role(role),
            client=client_info(origin)), fields=ROLE_FIELDS)

    async def change_role(self, session_token: str, project_name: str, username: str, role: str,
                          origin: Origin | None) -> None:
        await self._call(self._stub.ChangeRole, projects_pb2.ChangeRoleRequest(
            session_token=session_token, project_name=project_name, username=username, role=_role(role),
            client=client_info(origin)), fields=ROLE_FIELDS)

    async def remove_role(self, session_token: str, project_name: str, username: str, origin: Origin | None) -> None:
        await self._call(self._stub.RemoveRole, projects_pb2.RemoveRoleRequest(
            session_token=session_token, project_name=project_name, username=username, client=client_info(origin)))

    async def set_two_factor_required(self, session_token: str, project_name: str, required: bool,
                                      origin: Origin | None) -> list[str]:
        """Owners require a second factor of every collaborator (or stop); returns who has none yet."""
        reply = await self._call(self._stub.SetTwoFactorRequired, projects_pb2.SetTwoFactorRequiredRequest(
            session_token=session_token, project_name=project_name, required=required, client=client_info(origin)),
            field="required")
        return list(reply.usernames_without_two_factor)

    async def set_phishing_resistant_only(self, session_token: str, project_name: str, enabled: bool,
                                          origin: Origin | None) -> None:
        """Owners accept collaborators' actions only from security-key or passkey logins (or stop)."""
        await self._call(self._stub.SetPhishingResistantOnly, projects_pb2.SetPhishingResistantOnlyRequest(
            session_token=session_token, project_name=project_name, enabled=enabled, client=client_info(origin)),
            field="enabled")

    async def delete_project(self, session_token: str, access: Access, confirm_name: str,
                             origin: Origin | None) -> None:
        """authsvc deletes the project (and revokes tokens scoped only to it); then its files go here."""
        if confirm_name.strip() != access.project.name:
            raise PageError(f"Type the project's name '{access.project.name}' exactly to confirm.",
                            field="confirm_name")
        reply = await self._call(self._stub.DeleteProject, projects_pb2.DeleteProjectRequest(
            session_token=session_token, project_name=access.project.name, confirm_name=confirm_name.strip(),
            client=client_info(origin)), field="confirm_name")
        await self._gateway(self._releases.purge_project(reply.project_id or access.project.id,
                                                         reason="project deleted"))

    # -- releases (the gateway's own tables) -------------------------------------------------------
    async def releases(self, project_id: str) -> list[ReleaseRow]:
        async with self._db() as session:
            releases = (await session.execute(select(Release).where(
                Release.project_id == project_id, Release.deleted_at.is_(None)))).scalars().all()
            files = (await session.execute(select(File).where(
                File.project_id == project_id, File.deleted_at.is_(None)).order_by(File.filename))).scalars().all()
        by_release: dict[str, list[FileRow]] = {}
        for f in files:
            by_release.setdefault(f.release_id, []).append(FileRow(
                filename=f.filename, packagetype=f.packagetype, size=f.size, uploaded_at=f.uploaded_at,
                uploader=f.uploader_name))
        rows = [ReleaseRow(version=r.version, yanked=r.yanked, yanked_reason=r.yanked_reason or "",
                           created_at=r.created_at, files=by_release.get(r.id, [])) for r in releases]
        return sorted(rows, key=_version_key, reverse=True)

    async def set_yanked(self, access: Access, version: str, yanked: bool, reason: str, origin: Origin | None) -> None:
        await self._gateway(self._releases.set_yanked(
            access.project.name, version, yanked=yanked, reason=reason,
            actor=ActorRef.user(access.user_id, access.username), origin=origin))

    async def delete_release(self, access: Access, version: str, origin: Origin | None) -> None:
        await self._gateway(self._releases.delete_release(
            access.project.name, version, actor=ActorRef.user(access.user_id, access.username), origin=origin))

    @staticmethod
    async def _gateway(action):
        try:
            return await action
        except GatehouseError as exc:
            raise PageError(exc.message, status=http_status_for(exc)) from None

