"""ProjectService over gRPC: translates protobuf to ProjectsService calls and back."""

from __future__ import annotations

from authsvc.accounts.service import AccountsService
from authsvc.errors import InvalidArgument
from authsvc.grpc_common import origin, ts
from authsvc.projects.models import MAINTAINER, OWNER, Project
from authsvc.projects.service import Permission, ProjectsService, RoleView
from gatehouse.auth.v1 import common_pb2, projects_pb2, projects_pb2_grpc
from gatehouse.infra.outbox import ActorRef

_ROLE_TO_PB = {OWNER: common_pb2.ROLE_OWNER, MAINTAINER: common_pb2.ROLE_MAINTAINER}
_ROLE_FROM_PB = {v: k for k, v in _ROLE_TO_PB.items()}
_PERMISSIONS = {
    projects_pb2.PERMISSION_UPLOAD: Permission.UPLOAD,
    projects_pb2.PERMISSION_MANAGE: Permission.MANAGE,
    projects_pb2.PERMISSION_VIEW_LOG: Permission.VIEW_LOG,
}


def role_pb(role: str | None) -> common_pb2.Role:
    return _ROLE_TO_PB.get(role, common_pb2.ROLE_UNSPECIFIED)


def role_from_pb(value: int) -> str:
    try:
        return _ROLE_FROM_PB[value]
    except KeyError:
        raise InvalidArgument("Choose a role: Owner or Maintainer.", reason="role_invalid") from None


def project_pb(project: Project) -> common_pb2.Project:
    return common_pb2.Project(id=project.id, name=project.name, normalized_name=project.normalized_name,
                              created_at=ts(project.created_at), two_factor_required=project.two_factor_required,
                              trusted_publishing_only=project.trusted_publishing_only,
                              phishing_resistant_only=project.phishing_resistant_only)


def two_factor_required_pb(project: Project, missing: list[str]) -> projects_pb2.SetTwoFactorRequiredResponse:
    return projects_pb2.SetTwoFactorRequiredResponse(project=project_pb(project), usernames_without_two_factor=missing)


def assignment_pb(view: RoleView) -> projects_pb2.RoleAssignment:
    return projects_pb2.RoleAssignment(username=view.username, user_id=view.user_id, role=role_pb(view.role))


class ProjectServicer(projects_pb2_grpc.ProjectServiceServicer):
    def __init__(self, accounts: AccountsService, projects: ProjectsService):
        self.accounts = accounts
        self.projects = projects

    async def _user(self, session_token: str):
        auth = await self.accounts.authenticate_session(session_token)
        return auth, ActorRef.user(auth.user.id, auth.user.username)

    async def _owner_action(self, session_token: str, project_name: str):
        """The session's user and actor, once the project's login policy accepts the session."""
        auth, actor = await self._user(session_token)
        await self.projects.require_login_strength(project_name, auth.session.auth_method)
        return auth, actor

    async def GetProject(self, request, context):
        return projects_pb2.GetProjectResponse(project=project_pb(await self.projects.get_project(request.name)))

    async def ListMyProjects(self, request, context):
        auth, _ = await self._user(request.session_token)
        pairs = await self.projects.list_for_user(auth.user.id)
        return projects_pb2.ListMyProjectsResponse(
            projects=[projects_pb2.ProjectWithRole(project=project_pb(p), role=role_pb(r)) for p, r in pairs])

    async def ListRoles(self, request, context):
        auth, _ = await self._user(request.session_token)
        _, roles = await self.projects.list_roles(request.project_name, as_user=auth.user)
        return projects_pb2.ListRolesResponse(roles=[assignment_pb(r) for r in roles])

    async def AddRole(self, request, context):
        where = origin(request.client)
        auth, actor = await self._owner_action(request.session_token, request.project_name)
        _, view = await self.projects.add_role(request.project_name, request.username, role_from_pb(request.role),
                                               as_user=auth.user, actor=actor, origin=where)
        return projects_pb2.AddRoleResponse(role=assignment_pb(view))

    async def ChangeRole(self, request, context):
        where = origin(request.client)
        auth, actor = await self._owner_action(request.session_token, request.project_name)
        view = await self.projects.change_role(request.project_name, request.username, role_from_pb(request.role),
                                               as_user=auth.user, actor=actor, origin=where)
        return projects_pb2.ChangeRoleResponse(role=assignment_pb(view))

    async def RemoveRole(self, request, context):
        where = origin(request.client)
        auth, actor = await self._owner_action(request.session_token, request.project_name)
        await self.projects.remove_role(request.project_name, request.username, as_user=auth.user, actor=actor,
                                        origin=where)
        return projects_pb2.RemoveRoleResponse()

    async def DeleteProject(self, request, context):
        where = origin(request.client)
        auth, actor = await self._owner_action(request.session_token, request.project_name)
        project_id = await self.projects.delete_project(
            request.project_name, as_user=auth.user, actor=actor, confirm_name=request.confirm_name,
            origin=where)
        return projects_pb2.DeleteProjectResponse(project_id=project_id)

    async def SetTwoFactorRequired(self, request, context):
        where = origin(request.client)
        auth, actor = await self._owner_action(request.session_token, request.project_name)
        project, missing = await self.projects.set_two_factor_required(
            request.project_name, request.required, as_user=auth.user, actor=actor, origin=where)
        return two_factor_required_pb(project, missing)

    async def SetPhishingResistantOnly(self, request, context):
        where = origin(request.client)
        auth, actor = await self._owner_action(request.session_token, request.project_name)
        project = await self.projects.set_phishing_resistant_only(
            request.project_name, request.enabled, as_user=auth.user, auth_method=auth.session.auth_method,
            actor=actor, origin=where)
        return projects_pb2.SetPhishingResistantOnlyResponse(project=project_pb(project))

    async def CheckPermission(self, request, context):
        permission = _PERMISSIONS.get(request.permission)
        if permission is None:
            raise InvalidArgument("Name the permission to check (upload, manage or view_log).",
                                  reason="permission_invalid")
        auth, _ = await self._user(request.session_token)
        check = await self.projects.check_permission(auth.user, request.project_name, permission,
                                                     auth.session.auth_method)
        reauth = False
        if check.allowed and permission is Permission.MANAGE:
            reauth = await self.accounts.reauth_required(auth)
        return projects_pb2.CheckPermissionResponse(
            allowed=check.allowed, reason=check.reason, role=role_pb(check.role), project=project_pb(check.project),
            reauth_required=bool(reauth), user_id=auth.user.id, username=auth.user.username)
