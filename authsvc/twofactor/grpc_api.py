"""TwoFactorService over gRPC: translates protobuf to TwoFactorService calls and back."""

from __future__ import annotations

from authsvc.accounts.grpc_api import user_pb
from authsvc.grpc_common import origin, ts
from authsvc.twofactor.login import Proof
from authsvc.twofactor.service import KeyView, TwoFactorService
from gatehouse.auth.v1 import twofactor_pb2, twofactor_pb2_grpc


def _key_pb(key: KeyView) -> twofactor_pb2.WebAuthnKey:
    return twofactor_pb2.WebAuthnKey(id=key.id, label=key.label, created_at=ts(key.created_at),
                                     last_used_at=ts(key.last_used_at), passkey=key.passkey)


class TwoFactorServicer(twofactor_pb2_grpc.TwoFactorServiceServicer):
    def __init__(self, twofactor: TwoFactorService):
        self.twofactor = twofactor

    async def GetTwoFactorStatus(self, request, context):
        status = await self.twofactor.status(request.session_token)
        return twofactor_pb2.GetTwoFactorStatusResponse(
            two_factor_enabled=status.enabled,
            totp=(twofactor_pb2.TotpInfo(created_at=ts(status.totp_created_at),
                                         last_used_at=ts(status.totp_last_used_at))
                  if status.totp_created_at else None),
            webauthn_keys=[_key_pb(k) for k in status.keys],
            recovery_codes_remaining=status.recovery_codes_remaining,
            required_by=status.required_by,
            methods=list(status.methods),
        )

    async def BeginTotpSetup(self, request, context):
        setup = await self.twofactor.begin_totp_setup(request.session_token, origin(request.client))
        return twofactor_pb2.BeginTotpSetupResponse(
            provisioning_uri=setup.provisioning_uri, secret=setup.secret, qr_code_svg=setup.qr_code_svg,
            expires_at=ts(setup.expires_at))

    async def ConfirmTotpSetup(self, request, context):
        codes = await self.twofactor.confirm_totp_setup(request.session_token, request.code, origin(request.client))
        return twofactor_pb2.ConfirmTotpSetupResponse(recovery_codes=codes)

    async def RemoveTotp(self, request, context):
        remains = await self.twofactor.remove_totp(request.session_token, request.password, origin(request.client))
        return twofactor_pb2.RemoveTotpResponse(two_factor_enabled=remains)

    async def BeginWebAuthnRegistration(self, request, context):
        options = await self.twofactor.begin_webauthn_registration(request.session_token, origin(request.client),
                                                                   passkey=request.passkey)
        return twofactor_pb2.BeginWebAuthnRegistrationResponse(options_json=options)

    async def CompleteWebAuthnRegistration(self, request, context):
        key, codes = await self.twofactor.complete_webauthn_registration(
            request.session_token, request.label, request.credential_json, origin(request.client),
            passkey=request.passkey)
        return twofactor_pb2.CompleteWebAuthnRegistrationResponse(key=_key_pb(key), recovery_codes=codes)

    async def RenameWebAuthnKey(self, request, context):
        key = await self.twofactor.rename_webauthn_key(request.session_token, request.key_id, request.label,
                                                       origin(request.client))
        return twofactor_pb2.RenameWebAuthnKeyResponse(key=_key_pb(key))

    async def RemoveWebAuthnKey(self, request, context):
        remains = await self.twofactor.remove_webauthn_key(request.session_token, request.key_id, request.password,
                                                           origin(request.client))
        return twofactor_pb2.RemoveWebAuthnKeyResponse(two_factor_enabled=remains)

    async def RegenerateRecoveryCodes(self, request, context):
        codes = await self.twofactor.regenerate_recovery_codes(request.session_token, request.password,
                                                               origin(request.client))
        return twofactor_pb2.RegenerateRecoveryCodesResponse(recovery_codes=codes)

    async def BeginWebAuthnLogin(self, request, context):
        options = await self.twofactor.begin_webauthn_login(request.pending_login_token, origin(request.client))
        return twofactor_pb2.BeginWebAuthnLoginResponse(options_json=options)

    async def CompleteLogin(self, request, context):
        which = request.WhichOneof("second_factor") or ""
        method = {"totp_code": "totp", "webauthn_assertion_json": "webauthn",
                  "recovery_code": "recovery_code"}.get(which, "")
        proof = Proof(method=method, value=getattr(request, which) if which else "",
                      device_token=request.device_token)
        done = await self.twofactor.complete_login(request.pending_login_token, proof, origin(request.client))
        if done.held_browser_token:
            return twofactor_pb2.CompleteLoginResponse(user=user_pb(done.user, two_factor_enabled=True),
                                                       method=done.method,
                                                       confirmation_browser_token=done.held_browser_token)
        return twofactor_pb2.CompleteLoginResponse(
            session_token=done.session_token, expires_at=ts(done.session.expires_at),
            user=user_pb(done.user, two_factor_enabled=True), method=done.method,
            recovery_codes_remaining=(done.recovery_codes_remaining if done.recovery_codes_remaining >= 0
                                      else None))

    async def BeginPasskeyLogin(self, request, context):
        options = await self.twofactor.begin_passkey_login(origin(request.client))
        return twofactor_pb2.BeginPasskeyLoginResponse(options_json=options)

    async def CompletePasskeyLogin(self, request, context):
        done = await self.twofactor.complete_passkey_login(request.assertion_json, origin(request.client))
        return twofactor_pb2.CompletePasskeyLoginResponse(
            session_token=done.session_token, expires_at=ts(done.session.expires_at),
            user=user_pb(done.user, two_factor_enabled=True))
