"""API tokens for the pages: list, create (the secret comes back once), delete; and a project's
Owners' view of the tokens that can reach it, with their revocation (authsvc checks the Owner)."""

from __future__ import annotations

import datetime as dt

import grpc

from gatehouse.auth.v1 import common_pb2, tokens_pb2, tokens_pb2_grpc
from gatehouse.infra.outbox import Origin
from uploadgw.pages.services.errors import NotFoundError
from uploadgw.pages.services.rpc import Caller, client_info
from uploadgw.pages.services.views import NewToken, ProjectToken, Token

_REACH = {tokens_pb2.ProjectToken.REACH_ACCOUNT: "account", tokens_pb2.ProjectToken.REACH_PROJECT: "project",
          tokens_pb2.ProjectToken.REACH_PROJECTS: "projects"}

# The fields that may show a refusal, by its reason.
CREATE_FIELDS = ("description", "expires", "scope", "projects", "networks", "release_version")


class TokenPages:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float):
        self._stub = tokens_pb2_grpc.TokenServiceStub(channel)
        self._call = Caller(timeout)

    async def list(self, session_token: str) -> list[Token]:
        reply = await self._call(self._stub.ListTokens, tokens_pb2.ListTokensRequest(session_token=session_token))
        return [Token.of(t) for t in reply.tokens]

    async def get(self, session_token: str, token_id: str) -> Token:
        for token in await self.list(session_token):
            if token.id == token_id:
                return token
        raise NotFoundError("You have no API token with that id.")

    async def create(self, session_token: str, description: str, *, all_projects: bool, project_names: list[str],
                     expires_at: dt.datetime | None, origin: Origin | None, networks: list[str] | None = None,
                     release_version: str = "") -> NewToken:
        request = tokens_pb2.CreateTokenRequest(
            session_token=session_token, description=description,
            scope=common_pb2.TokenScope(all_projects=all_projects, project_names=project_names,
                                        allowed_networks=networks or [], release_version=release_version),
            client=client_info(origin))
        if expires_at is not None:
            request.expires_at.FromDatetime(expires_at.astimezone(dt.timezone.utc).replace(tzinfo=None))
        reply = await self._call(self._stub.CreateToken, request, fields=CREATE_FIELDS)
        return NewToken(secret=reply.token, info=Token.of(reply.info))

    async def delete(self, session_token: str, token_id: str, origin: Origin | None) -> None:
        await self._call(self._stub.DeleteToken, tokens_pb2.DeleteTokenRequest(
            session_token=session_token, token_id=token_id, client=client_info(origin)))

    async def for_project(self, session_token: str, project_name: str) -> tuple[list[ProjectToken], bool]:
        """Owners: the tokens that can reach the project, and whether it has a trusted publisher."""
        reply = await self._call(self._stub.ListProjectTokens, tokens_pb2.ListProjectTokensRequest(
            session_token=session_token, project_name=project_name))
        return [ProjectToken(token=Token.of(t.info), username=t.info.username, reach=_REACH.get(t.reach, "project"),
                             other_projects=t.other_projects) for t in reply.tokens], reply.has_publisher

    async def revoke_for_project(self, session_token: str, project_name: str, token_id: str,
                                 origin: Origin | None) -> Token:
        reply = await self._call(self._stub.RevokeProjectToken, tokens_pb2.RevokeProjectTokenRequest(
            session_token=session_token, project_name=project_name, token_id=token_id, client=client_info(origin)),
            field="token")
        return Token.of(reply.info)

    async def revoke_long_lived(self, session_token: str, project_name: str, include_account_wide: bool,
                                origin: Origin | None) -> int:
        """Owners of a project with a trusted publisher; returns how many tokens were revoked."""
        reply = await self._call(self._stub.RevokeLongLivedTokens, tokens_pb2.RevokeLongLivedTokensRequest(
            session_token=session_token, project_name=project_name, include_account_wide=include_account_wide,
            client=client_info(origin)), field="bulk")
        return len(reply.revoked)
