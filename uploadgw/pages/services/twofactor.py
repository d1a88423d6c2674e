"""Two-factor settings for the pages: authenticator app, security keys, recovery codes."""

from __future__ import annotations

import grpc

from gatehouse.auth.v1 import twofactor_pb2, twofactor_pb2_grpc
from gatehouse.infra.outbox import Origin
from uploadgw.pages.services.errors import PageError, ReauthRequired
from uploadgw.pages.services.rpc import Caller, client_info
from uploadgw.pages.services.views import SecurityKey, TotpSetup, TwoFactorStatus, when

# The fields of each form that may show a refusal (which one: by its reason, `uploadgw.refusals`).
PASSWORD_FIELD = ("password",)
LABEL_FIELD = ("label",)


def _key(pb) -> SecurityKey:
    return SecurityKey(id=pb.id, label=pb.label, created_at=when(pb, "created_at"),
                       last_used_at=when(pb, "last_used_at"), passkey=pb.passkey)


class TwoFactorPages:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float):
        self._stub = twofactor_pb2_grpc.TwoFactorServiceStub(channel)
        self._call = Caller(timeout)

    async def _with_password(self, method, request):
        """Removals and new codes take the password on the same form: a stale session is a field error."""
        try:
            return await self._call(method, request, fields=PASSWORD_FIELD)
        except ReauthRequired as exc:
            raise PageError(exc.message, status=403, field="password") from None

    async def status(self, session_token: str) -> TwoFactorStatus:
        reply = await self._call(self._stub.GetTwoFactorStatus,
                                 twofactor_pb2.GetTwoFactorStatusRequest(session_token=session_token))
        return TwoFactorStatus(
            enabled=reply.two_factor_enabled,
            totp_created_at=when(reply.totp, "created_at") if reply.HasField("totp") else None,
            totp_last_used_at=when(reply.totp, "last_used_at") if reply.HasField("totp") else None,
            keys=[_key(k) for k in reply.webauthn_keys],
            recovery_codes_remaining=reply.recovery_codes_remaining,
            required_by=list(reply.required_by),
        )

    # -- authenticator app -----------------------------------------------------------------------
    async def begin_totp(self, session_token: str, origin: Origin | None) -> TotpSetup:
        reply = await self._call(self._stub.BeginTotpSetup, twofactor_pb2.BeginTotpSetupRequest(
            session_token=session_token, client=client_info(origin)))
        return TotpSetup(secret=reply.secret, provisioning_uri=reply.provisioning_uri,
                         qr_code_svg=reply.qr_code_svg, expires_at=when(reply, "expires_at"))

    async def confirm_totp(self, session_token: str, code: str, origin: Origin | None) -> list[str]:
        """Activates the app; the first second factor also returns the recovery codes (shown once)."""
        reply = await self._call(self._stub.ConfirmTotpSetup, twofactor_pb2.ConfirmTotpSetupRequest(
            session_token=session_token, code=code, client=client_info(origin)), field="code")
        return list(reply.recovery_codes)

    async def remove_totp(self, session_token: str, password: str, origin: Origin | None) -> None:
        await self._with_password(self._stub.RemoveTotp, twofactor_pb2.RemoveTotpRequest(
            session_token=session_token, password=password, client=client_info(origin)))

    # -- security keys ---------------------------------------------------------------------------
    async def begin_key_registration(self, session_token: str, origin: Origin | None, *, passkey: bool = False) -> str:
        reply = await self._call(self._stub.BeginWebAuthnRegistration, twofactor_pb2.BeginWebAuthnRegistrationRequest(
            session_token=session_token, client=client_info(origin), passkey=passkey))
        return reply.options_json

    async def complete_key_registration(self, session_token: str, label: str, credential_json: str,
                                        origin: Origin | None, *, passkey: bool = False) -> tuple[SecurityKey, list[str]]:
        reply = await self._call(
            self._stub.CompleteWebAuthnRegistration, twofactor_pb2.CompleteWebAuthnRegistrationRequest(
                session_token=session_token, label=label, credential_json=credential_json,
                client=client_info(origin), passkey=passkey), fields=LABEL_FIELD)
        return _key(reply.key), list(reply.recovery_codes)

    async def rename_key(self, session_token: str, key_id: str, label: str, origin: Origin | None) -> None:
        await self._call(self._stub.RenameWebAuthnKey, twofactor_pb2.RenameWebAuthnKeyRequest(
            session_token=session_token, key_id=key_id, label=label, client=client_info(origin)), fields=LABEL_FIELD)

    async def remove_key(self, session_token: str, key_id: str, password: str, origin: Origin | None) -> None:
        await self._with_password(self._stub.RemoveWebAuthnKey, twofactor_pb2.RemoveWebAuthnKeyRequest(
            session_token=session_token, key_id=key_id, password=password, client=client_info(origin)))

    # -- recovery codes --------------------------------------------------------------------------
    async def regenerate_codes(self, session_token: str, password: str, origin: Origin | None) -> list[str]:
        reply = await self._with_password(
            self._stub.RegenerateRecoveryCodes, twofactor_pb2.RegenerateRecoveryCodesRequest(
                session_token=session_token, password=password, client=client_info(origin)))
        return list(reply.recovery_codes)
