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
                 metrics: GrpcMetrics | None = None) -> None:
        self.accounts = accounts
        self.tokens = tokens
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
