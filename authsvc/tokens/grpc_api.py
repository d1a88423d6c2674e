"""TokenService over gRPC: translates protobuf to TokensService / TokenVerifier calls and back."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Protocol, TypedDict

import grpc

from authsvc.accounts.service import AccountsService
from authsvc.errors import DOMAIN
from authsvc.grpc_common import from_ts, origin, ts
from authsvc.projects.grpc_api import role_pb
from authsvc.tokens.owners import ProjectTokens, ReachingToken
from authsvc.tokens.service import TokensService, TokenView
from authsvc.tokens.verification import TokenVerifier
from gatehouse.auth.v1 import common_pb2, tokens_pb2, tokens_pb2_grpc
from gatehouse.infra.metrics import GrpcMetrics
from gatehouse.infra.outbox import ActorRef
from gatehouse.infra.streamcalls import StreamedCalls

VERIFY_UPLOAD = "/gatehouse.auth.v1.TokenService/VerifyUploadToken"
_Context = grpc.aio.ServicerContext


def token_info_pb(view: TokenView) -> common_pb2.TokenInfo:
    return common_pb2.TokenInfo(
        id=view.id, description=view.description,
        scope=common_pb2.TokenScope(all_projects=view.all_projects, project_names=list(view.project_names),
                                    allowed_networks=list(view.networks), release_version=view.release_version),
        created_at=ts(view.created_at), last_used_at=ts(view.last_used_at), expires_at=ts(view.expires_at),
        username=view.username)


_REACH = {"account": tokens_pb2.ProjectToken.REACH_ACCOUNT, "project": tokens_pb2.ProjectToken.REACH_PROJECT,
          "projects": tokens_pb2.ProjectToken.REACH_PROJECTS}


def project_token_pb(reaching: ReachingToken, project_name: str) -> tokens_pb2.ProjectToken:
    """A token as a project's Owners see it: of its projects, this one only."""
    info = token_info_pb(reaching.token)
    if not info.scope.all_projects:
        info.scope.ClearField("project_names")
        info.scope.project_names.append(project_name)
    return tokens_pb2.ProjectToken(info=info, reach=_REACH[reaching.reach], other_projects=reaching.other_projects)


class ScopedRequest(Protocol):
    """A request that asks for a token: CreateTokenRequest, admin's AdminMintTokenRequest."""

    @property
    def scope(self) -> common_pb2.TokenScope: ...
    def HasField(self, field_name: str) -> bool: ...


class ScopeArgs(TypedDict):
    """TokensService.create_token's scope arguments."""

    all_projects: bool
    project_names: list[str]
    expires_at: dt.datetime | None
    networks: list[str]
    release_version: str


def scope_args(request: ScopedRequest) -> ScopeArgs:
    scope = request.scope
    return {"all_projects": scope.all_projects, "project_names": list(scope.project_names),
            "expires_at": from_ts(request, "expires_at"), "networks": list(scope.allowed_networks),
            "release_version": scope.release_version}


class TokenServicer(tokens_pb2_grpc.TokenServiceServicer):
    def __init__(self, accounts: AccountsService, tokens: TokensService, verifier: TokenVerifier, *,
                 project_tokens: ProjectTokens, metrics: GrpcMetrics | None = None) -> None:
        self.accounts = accounts
        self.tokens = tokens
        self.project_tokens = project_tokens
        self.verifier = verifier
        # VerifyUploadTokens: VerifyUploadToken's calls over the gateway's stream (counted as such).
        self._upload_calls = StreamedCalls(VERIFY_UPLOAD, self._verify_upload, tokens_pb2.VerifyUploadTokenResult,
                                           metrics=metrics, domain=DOMAIN)

    async def CreateToken(self, request: tokens_pb2.CreateTokenRequest,
                          context: _Context[tokens_pb2.CreateTokenRequest, tokens_pb2.CreateTokenResponse]
                          ) -> tokens_pb2.CreateTokenResponse:
        where = origin(request.client)
        auth = await self.accounts.authenticate_session(request.session_token)
        secret, view = await self.tokens.create_token(
            auth.user, request.description, **scope_args(request),
            actor=ActorRef.user(auth.user.id, auth.user.username), origin=where,
            auth_method=auth.session.auth_method)
        return tokens_pb2.CreateTokenResponse(token=secret, info=token_info_pb(view))

    async def ListTokens(self, request: tokens_pb2.ListTokensRequest,
                         context: _Context[tokens_pb2.ListTokensRequest, tokens_pb2.ListTokensResponse]
                         ) -> tokens_pb2.ListTokensResponse:
        auth = await self.accounts.authenticate_session(request.session_token)
        views = await self.tokens.list_tokens(auth.user.id)
        return tokens_pb2.ListTokensResponse(tokens=[token_info_pb(v) for v in views])

    async def DeleteToken(self, request: tokens_pb2.DeleteTokenRequest,
                          context: _Context[tokens_pb2.DeleteTokenRequest, tokens_pb2.DeleteTokenResponse]
                          ) -> tokens_pb2.DeleteTokenResponse:
        where = origin(request.client)
        auth = await self.accounts.authenticate_session(request.session_token)
        await self.tokens.delete_token(request.token_id, owner_id=auth.user.id,
                                       actor=ActorRef.user(auth.user.id, auth.user.username), origin=where)
        return tokens_pb2.DeleteTokenResponse()

    async def ListProjectTokens(
            self, request: tokens_pb2.ListProjectTokensRequest,
            context: _Context[tokens_pb2.ListProjectTokensRequest, tokens_pb2.ListProjectTokensResponse],
    ) -> tokens_pb2.ListProjectTokensResponse:
        auth = await self.accounts.authenticate_session(request.session_token)
        project, has_publisher, reaching = await self.project_tokens.listing(request.project_name, as_user=auth.user)
        return tokens_pb2.ListProjectTokensResponse(
            tokens=[project_token_pb(r, project.name) for r in reaching], has_publisher=has_publisher)

    async def RevokeProjectToken(
            self, request: tokens_pb2.RevokeProjectTokenRequest,
            context: _Context[tokens_pb2.RevokeProjectTokenRequest, tokens_pb2.RevokeProjectTokenResponse],
    ) -> tokens_pb2.RevokeProjectTokenResponse:
        where = origin(request.client)
        auth = await self.accounts.authenticate_session(request.session_token)
        view = await self.project_tokens.revoke(request.project_name, request.token_id, as_user=auth.user,
                                                actor=ActorRef.user(auth.user.id, auth.user.username), origin=where)
        return tokens_pb2.RevokeProjectTokenResponse(info=token_info_pb(view))

    async def RevokeLongLivedTokens(
            self, request: tokens_pb2.RevokeLongLivedTokensRequest,
            context: _Context[tokens_pb2.RevokeLongLivedTokensRequest, tokens_pb2.RevokeLongLivedTokensResponse],
    ) -> tokens_pb2.RevokeLongLivedTokensResponse:
        where = origin(request.client)
        auth = await self.accounts.authenticate_session(request.session_token)
        views = await self.project_tokens.revoke_long_lived(
            request.project_name, include_account_wide=request.include_account_wide, as_user=auth.user,
            actor=ActorRef.user(auth.user.id, auth.user.username), origin=where)
        return tokens_pb2.RevokeLongLivedTokensResponse(revoked=[token_info_pb(v) for v in views])

    async def VerifyUploadToken(
            self, request: tokens_pb2.VerifyUploadTokenRequest,
            context: _Context[tokens_pb2.VerifyUploadTokenRequest, tokens_pb2.VerifyUploadTokenResponse],
    ) -> tokens_pb2.VerifyUploadTokenResponse:
        return await self._verify_upload(request)

    async def VerifyUploadTokens(
            self, request_iterator: AsyncIterator[tokens_pb2.VerifyUploadTokenCall],
            context: _Context[tokens_pb2.VerifyUploadTokenCall, tokens_pb2.VerifyUploadTokenResult],
    ) -> None:
        await self._upload_calls.serve(request_iterator, context)

    async def _verify_upload(self, request: tokens_pb2.VerifyUploadTokenRequest
                             ) -> tokens_pb2.VerifyUploadTokenResponse:
        if request.token_only:  # the gateway's check at the headers: what the token alone decides
            authentic = await self.verifier.verify_upload_token(request.token, origin(request.client))
            return tokens_pb2.VerifyUploadTokenResponse(token_id=authentic.token_id)
        grant = await self.verifier.verify_upload(request.token, request.project_name, origin(request.client),
                                                  request.version)
        publisher = None
        if grant.publisher is not None:
            publisher = common_pb2.PublisherRef(
                id=grant.publisher.id, kind=grant.publisher.kind, display=grant.publisher.display,
                issuer_url=grant.publisher.issuer_url, run_claims=grant.publisher.run_claims)
        return tokens_pb2.VerifyUploadTokenResponse(
            user_id=grant.user_id, username=grant.username, project_id=grant.project_id,
            project_name=grant.project_name, token_id=grant.token_id, project_created=grant.project_created,
            role=role_pb(grant.role), publisher=publisher)

    async def VerifyIndexToken(
            self, request: tokens_pb2.VerifyIndexTokenRequest,
            context: _Context[tokens_pb2.VerifyIndexTokenRequest, tokens_pb2.VerifyIndexTokenResponse],
    ) -> tokens_pb2.VerifyIndexTokenResponse:
        # Not recorded; checked against a token's network restriction (an invalid client IP is refused).
        grant = await self.verifier.verify_index(request.token, origin(request.client))
        return tokens_pb2.VerifyIndexTokenResponse(user_id=grant.user_id, username=grant.username,
                                                   token_id=grant.token_id)
