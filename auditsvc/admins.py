"""Who may read the full log from a browser: a live session of an active admin, as authsvc says.

auditsvc asks authsvc (AccountService.ValidateSession, with auditsvc's own credential for
authsvc, AUTHSVC_AUDIT_KEY, which is good for that call only) on every ListAllEvents call; it
never believes a user id or an admin flag passed by the gateway, so a gateway credential alone
cannot read the full log. Anything short of a clear "yes, an active admin" from authsvc refuses
the call.
"""

from __future__ import annotations

import dataclasses
import logging

import grpc

from auditsvc.errors import PermissionDenied, Unauthenticated, Unavailable
from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc
from gatehouse.infra.grpcserver import CREDENTIAL_REASONS
from gatehouse.infra.rpcstatus import ErrorStatus

log = logging.getLogger(__name__)
MAX_SESSION_TOKEN = 512


@dataclasses.dataclass(frozen=True)
class AdminUser:
    user_id: str
    username: str


class AdminSessions:
    """Resolves a session token to an admin through authsvc (None channel: not configured)."""

    def __init__(self, channel: grpc.aio.Channel | None, *, timeout: float = 5.0):
        self._stub = accounts_pb2_grpc.AccountServiceStub(channel) if channel is not None else None
        self.timeout = timeout

    async def require_admin(self, session_token: str) -> AdminUser:
        """The admin behind the session, or Unauthenticated / PermissionDenied / Unavailable."""
        if self._stub is None:
            raise Unavailable("The full log is not available: the audit service is not connected to the "
                              "account service (AUDITSVC_AUTHSVC_TARGET).", reason="authsvc_not_configured")
        if not session_token or len(session_token) > MAX_SESSION_TOKEN:
            raise Unauthenticated("Log in to see the full log.", reason="session_invalid")
        try:
            reply = await self._stub.ValidateSession(
                accounts_pb2.ValidateSessionRequest(session_token=session_token), timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise _refusal(err) from None
        user = reply.user
        if not user.id or not user.is_active or not user.is_admin:
            raise PermissionDenied("Only administrators may read the full audit log.", reason="not_admin")
        return AdminUser(user_id=user.id, username=user.username)


def _refusal(err: grpc.aio.AioRpcError) -> Exception:
    """By the refusal's reason: authsvc's interceptor refusing auditsvc's own credential is a
    configuration fault of auditsvc (Unavailable), not the user's."""
    status = ErrorStatus.of_rpc(err)
    code, details = status.code, " ".join(status.message.split())
    ours = status.reason in CREDENTIAL_REASONS
    if code == grpc.StatusCode.UNAUTHENTICATED and not ours:
        return Unauthenticated("Your session has expired. Log in again.", reason="session_invalid")
    if code == grpc.StatusCode.PERMISSION_DENIED and not ours:
        return PermissionDenied(details or "Only administrators may read the full audit log.",
                                reason="account_refused")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        log.error("authsvc refused the audit service's credential (AUDITSVC_AUTHSVC_KEY)",
                  extra={"grpc_code": code.name})
    else:
        log.warning("authsvc did not answer a session check", extra={"grpc_code": code.name})
    return Unavailable("The account service is not answering, so the full log cannot be shown. Try again "
                       "in a minute.", reason="authsvc_unavailable")
