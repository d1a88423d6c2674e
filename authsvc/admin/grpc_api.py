"""AdminService over gRPC: operator actions (the interceptor admits only the operator credential).

Every change is recorded with actor kind "operator". The operator acts on users by username and
is not bound by Owner checks, but the rules that protect data still hold: the last Owner cannot
be removed, a new project starts with an Owner, and a minted token needs a verified primary
email (create the user with `email_verified` to mint for it straight away).
"""

from __future__ import annotations

from authsvc.accounts.grpc_api import user_pb
from authsvc.accounts.service import AccountsService
from authsvc.projects.grpc_api import assignment_pb, project_pb, role_from_pb, two_factor_required_pb
from authsvc.projects.service import ProjectsService
from authsvc.publishing.grpc_api import pending_pb, publisher_pb, spec_input
from authsvc.publishing.service import PublishersService
from authsvc.tokens.grpc_api import scope_args, token_info_pb
from authsvc.tokens.owners import ProjectTokens
from authsvc.tokens.service import TokensService
from gatehouse.auth.v1 import admin_pb2, admin_pb2_grpc, publishing_pb2, tokens_pb2
from gatehouse.infra.outbox import ActorRef

OPERATOR = ActorRef.operator()


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, accounts: AccountsService, projects: ProjectsService, tokens: TokensService,
                 publishers: PublishersService, project_tokens: ProjectTokens):
        self.accounts = accounts
        self.project_tokens = project_tokens
        self.projects = projects
        self.tokens = tokens
        self.publishers = publishers

    async def CreateUser(self, request, context):
        user = await self.accounts.create_user(
            request.username, request.email, request.password or None, name=request.name,
            email_verified=request.email_verified, is_admin=request.is_admin, actor=OPERATOR)
        return admin_pb2.AdminUserResponse(user=user_pb(user))

    async def GetUser(self, request, context):
        return admin_pb2.AdminUserResponse(user=user_pb(await self.accounts.get_user(request.username)))

    async def SetUserActive(self, request, context):
        user = await self.accounts.set_active(request.username, request.active, reason=request.reason,
                                              actor=OPERATOR)
        return admin_pb2.AdminUserResponse(user=user_pb(user))

    async def SetAdmin(self, request, context):
        user = await self.accounts.set_admin(request.username, request.is_admin, actor=OPERATOR)
        return admin_pb2.AdminUserResponse(user=user_pb(user))

    async def MintToken(self, request, context):
        user = await self.accounts.get_user(request.username)
        secret, view = await self.tokens.create_token(user, request.description, **scope_args(request),
                                                      actor=OPERATOR)
        return admin_pb2.AdminMintTokenResponse(token=secret, info=token_info_pb(view))

    async def ListTokens(self, request, context):
        user = await self.accounts.get_user(request.username)
        views = await self.tokens.list_tokens(user.id)
        return admin_pb2.AdminListTokensResponse(tokens=[token_info_pb(v) for v in views])

    async def RevokeToken(self, request, context):
        await self.tokens.delete_token(request.token_id, owner_id=None, actor=OPERATOR)
        return admin_pb2.AdminRevokeTokenResponse()

    async def RevokeLongLivedTokens(self, request, context):
        views = await self.project_tokens.revoke_long_lived(
            request.project_name, include_account_wide=request.include_account_wide, as_user=None, actor=OPERATOR)
        return tokens_pb2.RevokeLongLivedTokensResponse(revoked=[token_info_pb(v) for v in views])

    async def AddRole(self, request, context):
        project, view = await self.projects.add_role(
            request.project_name, request.username, role_from_pb(request.role), as_user=None, actor=OPERATOR,
            create_project=request.create_project, replace=True)
        return admin_pb2.AdminAddRoleResponse(role=assignment_pb(view), project=project_pb(project))

    async def RemoveRole(self, request, context):
        await self.projects.remove_role(request.project_name, request.username, as_user=None, actor=OPERATOR)
        return admin_pb2.AdminRemoveRoleResponse()

    async def DeleteProject(self, request, context):
        project_id = await self.projects.delete_project(request.project_name, as_user=None, actor=OPERATOR)
        return admin_pb2.AdminDeleteProjectResponse(project_id=project_id)

    async def SetProjectTwoFactorRequired(self, request, context):
        project, missing = await self.projects.set_two_factor_required(
            request.project_name, request.required, as_user=None, actor=OPERATOR)
        return two_factor_required_pb(project, missing)

    async def ListPublishers(self, request, context):
        views = await self.publishers.list_publishers(request.project_name, as_user=None)
        return publishing_pb2.ListPublishersResponse(publishers=[publisher_pb(v) for v in views])

    async def AddPublisher(self, request, context):
        view = await self.publishers.add_publisher(request.project_name, spec_input(request.spec), as_user=None,
                                                   actor=OPERATOR)
        return publishing_pb2.AddPublisherResponse(publisher=publisher_pb(view))

    async def RemovePublisher(self, request, context):
        await self.publishers.remove_publisher(request.project_name, request.publisher_id, as_user=None,
                                               actor=OPERATOR)
        return publishing_pb2.RemovePublisherResponse()

    async def ListPendingPublishers(self, request, context):
        user_id = (await self.accounts.get_user(request.username)).id if request.username else None
        views = await self.publishers.list_pending(user_id)
        return publishing_pb2.ListPendingPublishersResponse(pending_publishers=[pending_pb(v) for v in views])

    async def AddPendingPublisher(self, request, context):
        user = await self.accounts.get_user(request.username)
        view = await self.publishers.add_pending(request.project_name, spec_input(request.spec), user=user,
                                                 actor=OPERATOR)
        return publishing_pb2.AddPendingPublisherResponse(pending_publisher=pending_pb(view))

    async def RemovePendingPublisher(self, request, context):
        await self.publishers.remove_pending(request.pending_publisher_id, owner_id=None, actor=OPERATOR)
        return publishing_pb2.RemovePendingPublisherResponse()

    async def SetProjectTrustedPublishingOnly(self, request, context):
        project = await self.publishers.set_trusted_publishing_only(request.project_name, request.enabled,
                                                                    as_user=None, actor=OPERATOR)
        return publishing_pb2.SetTrustedPublishingOnlyResponse(project=project_pb(project))
