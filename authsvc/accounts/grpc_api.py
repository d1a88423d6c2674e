"""AccountService over gRPC: translates protobuf to AccountsService calls and back."""

from __future__ import annotations

from authsvc.accounts.service import AccountsService
from authsvc.grpc_common import origin, ts, user_pb
from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc


class AccountServicer(accounts_pb2_grpc.AccountServiceServicer):
    def __init__(self, accounts: AccountsService):
        self.accounts = accounts

    async def Register(self, request, context):
        user = await self.accounts.create_user(
            request.username, request.email, request.password, name=request.name,
            origin=origin(request.client),
        )
        return accounts_pb2.RegisterResponse(user=user_pb(user))

    async def Login(self, request, context):
        result = await self.accounts.login(request.username, request.password, origin(request.client))
        return accounts_pb2.LoginResponse(
            session_token=result.session_token or "",
            expires_at=ts(result.session.expires_at) if result.session else None,
            user=user_pb(result.user),
        )

    async def ValidateSession(self, request, context):
        auth = await self.accounts.authenticate_session(request.session_token)
        return accounts_pb2.ValidateSessionResponse(
            user=user_pb(auth.user),
            session=accounts_pb2.Session(
                id=auth.session.id, created_at=ts(auth.session.created_at),
                last_seen_at=ts(auth.session.last_seen_at), expires_at=ts(auth.session.expires_at),
                authenticated_at=ts(auth.session.authenticated_at),
                ip_address=auth.session.ip_address, user_agent=auth.session.user_agent, current=True,
            ),
        )

    async def GetAccount(self, request, context):
        auth = await self.accounts.authenticate_session(request.session_token)
        return accounts_pb2.GetAccountResponse(
            user=user_pb(auth.user),
            emails=[accounts_pb2.Email(address=e.address, verified=e.verified, primary=e.primary)
                    for e in auth.user.emails],
        )
