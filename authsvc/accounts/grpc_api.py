"""AccountService over gRPC: translates protobuf to AccountsService calls and back."""

from __future__ import annotations

from authsvc.accounts.models import Email, Session, User
from authsvc.accounts.service import AccountsService
from authsvc.grpc_common import origin, ts
from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc, common_pb2


def user_pb(user: User, *, two_factor_enabled: bool = False) -> common_pb2.User:
    """The account as the gRPC `User` message every service answers with."""
    primary = next((e for e in user.emails if e.primary), None)
    return common_pb2.User(
        id=user.id,
        username=user.username,
        name=user.name or "",
        primary_email=primary.address if primary else "",
        email_verified=bool(primary and primary.verified),
        is_active=user.is_active,
        is_admin=user.is_admin,
        created_at=ts(user.created_at),
        two_factor_enabled=two_factor_enabled,
    )


def email_pb(email: Email) -> accounts_pb2.Email:
    return accounts_pb2.Email(address=email.address, verified=email.verified, primary=email.primary)


def session_pb(row: Session, *, current: bool) -> accounts_pb2.Session:
    return accounts_pb2.Session(
        id=row.id, created_at=ts(row.created_at), last_seen_at=ts(row.last_seen_at),
        expires_at=ts(row.expires_at), authenticated_at=ts(row.authenticated_at),
        ip_address=row.ip_address, user_agent=row.user_agent, current=current,
    )


def _client(request):
    return origin(request.client) if request.HasField("client") else origin(None)


def _login_response(result) -> accounts_pb2.LoginResponse:
    """A completed login's answer, or a held one's (new-device confirmation)."""
    if result.held_browser_token:
        return accounts_pb2.LoginResponse(user=user_pb(result.user), device_token=result.device_token,
                                          confirmation_browser_token=result.held_browser_token)
    return accounts_pb2.LoginResponse(session_token=result.session_token, expires_at=ts(result.session.expires_at),
                                      user=user_pb(result.user), device_token=result.device_token)


class AccountServicer(accounts_pb2_grpc.AccountServiceServicer):
    def __init__(self, accounts: AccountsService):
        self.accounts = accounts

    async def Register(self, request, context):
        user = await self.accounts.register(request.username, request.email, request.password,
                                            name=request.name, origin=_client(request))
        return accounts_pb2.RegisterResponse(user=user_pb(user))

    async def VerifyEmail(self, request, context):
        user, address = await self.accounts.verify_email(request.token, _client(request))
        return accounts_pb2.VerifyEmailResponse(user=user_pb(user), email=address)

    async def ResendVerification(self, request, context):
        await self.accounts.resend_verification(request.session_token, request.email, _client(request))
        return accounts_pb2.ResendVerificationResponse()

    async def AddEmail(self, request, context):
        emails = await self.accounts.add_email(request.session_token, request.email, _client(request))
        return accounts_pb2.AddEmailResponse(emails=[email_pb(e) for e in emails])

    async def SetPrimaryEmail(self, request, context):
        emails = await self.accounts.set_primary_email(request.session_token, request.email, _client(request))
        return accounts_pb2.SetPrimaryEmailResponse(emails=[email_pb(e) for e in emails])

    async def GetAccount(self, request, context):
        user, emails, methods = await self.accounts.get_account(request.session_token)
        return accounts_pb2.GetAccountResponse(user=user_pb(user, two_factor_enabled=bool(methods)),
                                               emails=[email_pb(e) for e in emails])

    async def Login(self, request, context):
        result = await self.accounts.login(request.username, request.password, _client(request),
                                           device_token=request.device_token)
        if result.second_factor_required:
            return accounts_pb2.LoginResponse(
                user=user_pb(result.user, two_factor_enabled=True), second_factor_required=True,
                pending_login_token=result.pending_login_token,
                second_factor_methods=list(result.second_factor_methods), device_token=result.device_token,
            )
        return _login_response(result)

    async def ConfirmLogin(self, request, context):
        return _login_response(await self.accounts.confirm_login(request.link_token, request.browser_token,
                                                                 _client(request)))

    async def ValidateSession(self, request, context):
        _client(request)  # not recorded, but a caller's invalid client IP is refused on every call
        auth = await self.accounts.authenticate_session(request.session_token)
        return accounts_pb2.ValidateSessionResponse(user=user_pb(auth.user),
                                                    session=session_pb(auth.session, current=True),
                                                    reauth_required=await self.accounts.reauth_required(auth))

    async def Reauthenticate(self, request, context):
        auth = await self.accounts.reauthenticate(request.session_token, request.password, _client(request))
        return accounts_pb2.ReauthenticateResponse(session=session_pb(auth.session, current=True))

    async def ListSessions(self, request, context):
        auth, rows = await self.accounts.list_sessions(request.session_token)
        return accounts_pb2.ListSessionsResponse(
            sessions=[session_pb(row, current=row.id == auth.session.id) for row in rows])

    async def RevokeSession(self, request, context):
        await self.accounts.revoke_session(request.session_token, request.session_id, _client(request))
        return accounts_pb2.RevokeSessionResponse()

    async def Logout(self, request, context):
        await self.accounts.logout(request.session_token, _client(request))
        return accounts_pb2.LogoutResponse()

    async def ChangePassword(self, request, context):
        await self.accounts.change_password(request.session_token, request.old_password,
                                            request.new_password, _client(request))
        return accounts_pb2.ChangePasswordResponse()

    async def RequestPasswordReset(self, request, context):
        await self.accounts.request_password_reset(request.username_or_email, _client(request))
        return accounts_pb2.RequestPasswordResetResponse()

    async def ResetPassword(self, request, context):
        result = await self.accounts.reset_password(request.token, request.new_password, _client(request))
        return accounts_pb2.ResetPasswordResponse(second_factor_required=result.second_factor_required)
