"""Accounts for the pages: registration, email, login (both steps), logout, passwords, re-authentication.

Every call names the user by the session token from the visitor's cookie (or the pending-login
token during a login), never by a bare user id, so authsvc decides who it is.
"""

from __future__ import annotations

import grpc

from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc, twofactor_pb2, twofactor_pb2_grpc
from gatehouse.infra.outbox import Origin
from uploadgw.pages.services.errors import PageError, SessionExpired
from uploadgw.pages.services.rpc import Caller, client_info
from uploadgw.pages.services.views import Account, CurrentSession, Email, LoginOutcome, User, when

# The fields of each form that may show a refusal (which one: by its reason, `uploadgw.refusals`).
REGISTER_FIELDS = ("username", "email", "password", "name")
LOGIN_FIELDS = ("username", "password")
PASSWORD_FIELDS = ("current_password", "new_password")
EMAIL_FIELDS = ("email",)


def _outcome(reply) -> LoginOutcome:
    return LoginOutcome(session_token=reply.session_token, device_token=reply.device_token,
                        held_token=reply.confirmation_browser_token)


class AccountPages:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float):
        self._accounts = accounts_pb2_grpc.AccountServiceStub(channel)
        self._twofactor = twofactor_pb2_grpc.TwoFactorServiceStub(channel)
        self._call = Caller(timeout)

    # -- sessions ------------------------------------------------------------------------------
    async def session(self, session_token: str, origin: Origin | None = None) -> CurrentSession:
        if not session_token:
            raise SessionExpired("Log in to see this page.")
        reply = await self._call(self._accounts.ValidateSession, accounts_pb2.ValidateSessionRequest(
            session_token=session_token, client=client_info(origin)))
        # authsvc decides the re-authentication window; an answer without it asks for the password.
        reauth = reply.reauth_required if reply.HasField("reauth_required") else True
        return CurrentSession(user=User.of(reply.user), authenticated_at=when(reply.session, "authenticated_at"),
                              reauth_required=reauth)

    async def login(self, username: str, password: str, origin: Origin | None,
                    device_token: str = "") -> LoginOutcome:
        """`device_token`: the one this browser was given at its last login (its own failed-login
        budget in authsvc, so that someone else's guessing does not lock its owner out)."""
        reply = await self._call(self._accounts.Login, accounts_pb2.LoginRequest(
            username=username, password=password, client=client_info(origin), device_token=device_token),
            fields=LOGIN_FIELDS, session_call=False)
        if reply.second_factor_required:
            return LoginOutcome(pending_token=reply.pending_login_token,
                                methods=tuple(reply.second_factor_methods), device_token=reply.device_token)
        if not reply.session_token and not reply.confirmation_browser_token:
            raise PageError("The login could not be completed. Try again.", status=503)
        return _outcome(reply)

    async def confirm_login(self, link_token: str, held_token: str, origin: Origin | None) -> LoginOutcome:
        """Follow the link mailed for a held login, with this browser's held-login cookie."""
        reply = await self._call(self._accounts.ConfirmLogin, accounts_pb2.ConfirmLoginRequest(
            link_token=link_token, browser_token=held_token, client=client_info(origin)), session_call=False)
        return _outcome(reply)

    async def complete_login(self, pending_token: str, method: str, value: str,
                             origin: Origin | None, device_token: str = "") -> LoginOutcome:
        """The second step: method is "totp", "webauthn" or "recovery_code"."""
        if not pending_token:
            raise PageError("Your login has expired. Log in again with your password.", status=401)
        request = twofactor_pb2.CompleteLoginRequest(pending_login_token=pending_token, client=client_info(origin),
                                                     device_token=device_token)
        if method == "totp":
            request.totp_code = value
        elif method == "webauthn":
            request.webauthn_assertion_json = value
        elif method == "recovery_code":
            request.recovery_code = value
        else:
            raise PageError("Choose how to confirm it is you.")
        field = {"totp": "code", "recovery_code": "recovery_code"}.get(method, "")
        reply = await self._call(self._twofactor.CompleteLogin, request, session_call=False, field=field)
        remaining = reply.recovery_codes_remaining if reply.HasField("recovery_codes_remaining") else None
        return LoginOutcome(session_token=reply.session_token, recovery_codes_remaining=remaining,
                            held_token=reply.confirmation_browser_token)

    async def webauthn_login_options(self, pending_token: str, origin: Origin | None) -> str:
        if not pending_token:
            raise PageError("Your login has expired. Log in again with your password.", status=401)
        reply = await self._call(self._twofactor.BeginWebAuthnLogin, twofactor_pb2.BeginWebAuthnLoginRequest(
            pending_login_token=pending_token, client=client_info(origin)), session_call=False)
        return reply.options_json

    async def passkey_login_options(self, origin: Origin | None) -> str:
        reply = await self._call(self._twofactor.BeginPasskeyLogin, twofactor_pb2.BeginPasskeyLoginRequest(
            client=client_info(origin)), session_call=False)
        return reply.options_json

    async def complete_passkey_login(self, assertion_json: str, origin: Origin | None) -> LoginOutcome:
        """Passwordless login: the browser's answer to `passkey_login_options`."""
        reply = await self._call(self._twofactor.CompletePasskeyLogin, twofactor_pb2.CompletePasskeyLoginRequest(
            assertion_json=assertion_json, client=client_info(origin)), session_call=False)
        return LoginOutcome(session_token=reply.session_token)

    async def logout(self, session_token: str, origin: Origin | None) -> None:
        if session_token:
            try:
                await self._call(self._accounts.Logout, accounts_pb2.LogoutRequest(
                    session_token=session_token, client=client_info(origin)))
            except SessionExpired:
                pass

    async def reauthenticate(self, session_token: str, password: str, origin: Origin | None) -> None:
        """Confirm the password for a sensitive action: authsvc refreshes the current session's
        authentication time (same session, no second step). A wrong password counts like a failed login."""
        if not password:
            raise PageError("Enter your password.", field="password")
        try:
            await self._call(self._accounts.Reauthenticate, accounts_pb2.ReauthenticateRequest(
                session_token=session_token, password=password, client=client_info(origin)))
        except PageError as exc:
            exc.field = "password"
            raise

    # -- registration and email -----------------------------------------------------------------
    async def register(self, username: str, name: str, email: str, password: str, origin: Origin | None) -> User:
        reply = await self._call(self._accounts.Register, accounts_pb2.RegisterRequest(
            username=username, name=name, email=email, password=password, client=client_info(origin)),
            fields=REGISTER_FIELDS, session_call=False)
        return User.of(reply.user)

    async def verify_email(self, token: str, origin: Origin | None) -> str:
        reply = await self._call(self._accounts.VerifyEmail, accounts_pb2.VerifyEmailRequest(
            token=token, client=client_info(origin)), session_call=False)
        return reply.email

    async def account(self, session_token: str) -> Account:
        reply = await self._call(self._accounts.GetAccount, accounts_pb2.GetAccountRequest(session_token=session_token))
        return Account(user=User.of(reply.user),
                       emails=[Email(address=e.address, verified=e.verified, primary=e.primary) for e in reply.emails])

    async def add_email(self, session_token: str, email: str, origin: Origin | None) -> None:
        await self._call(self._accounts.AddEmail, accounts_pb2.AddEmailRequest(
            session_token=session_token, email=email, client=client_info(origin)), fields=EMAIL_FIELDS)

    async def set_primary_email(self, session_token: str, email: str, origin: Origin | None) -> None:
        await self._call(self._accounts.SetPrimaryEmail, accounts_pb2.SetPrimaryEmailRequest(
            session_token=session_token, email=email, client=client_info(origin)))

    async def resend_verification(self, session_token: str, email: str, origin: Origin | None) -> None:
        await self._call(self._accounts.ResendVerification, accounts_pb2.ResendVerificationRequest(
            session_token=session_token, email=email, client=client_info(origin)))

    # -- passwords -----------------------------------------------------------------------------------
    async def change_password(self, session_token: str, current: str, new: str, origin: Origin | None) -> None:
        await self._call(self._accounts.ChangePassword, accounts_pb2.ChangePasswordRequest(
            session_token=session_token, old_password=current, new_password=new, client=client_info(origin)),
            fields=PASSWORD_FIELDS)

    async def request_reset(self, username_or_email: str, origin: Origin | None) -> None:
        await self._call(self._accounts.RequestPasswordReset, accounts_pb2.RequestPasswordResetRequest(
            username_or_email=username_or_email, client=client_info(origin)),
            field="username_or_email", session_call=False)

    async def reset_password(self, token: str, new_password: str, origin: Origin | None) -> bool:
        """Sets the new password; True when the account has a second factor (logging in needs it)."""
        reply = await self._call(self._accounts.ResetPassword, accounts_pb2.ResetPasswordRequest(
            token=token, new_password=new_password, client=client_info(origin)),
            fields=("new_password",), session_call=False)
        return reply.second_factor_required
