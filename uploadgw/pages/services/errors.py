"""What can go wrong behind a page, as one exception type the page middleware knows how to show.

gRPC answers from authsvc and auditsvc become `PageError`s with an HTTP status and the service's
message (written for users). `field` ties the message to a form control when the message names
one, so the page can point at it (aria-describedby). Nothing here ever carries a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc

from gatehouse.infra.grpcserver import retry_after as _retry_after

log = logging.getLogger(__name__)

UNAVAILABLE = "The account service is not answering at the moment. Try again in a minute."


class PageError(Exception):
    """A refusal or failure to show on the page (status is the HTTP status)."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None, field: str = "", retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.field = field
        self.retry_after = retry_after


class SessionExpired(Exception):
    """No valid session: the visitor must log in (again). Not a PageError: forms never show it."""

    status = 401

    def __init__(self, message: str = "Your session has ended. Log in again."):
        super().__init__(message)
        self.message = message


class ReauthRequired(Exception):
    """A sensitive action and the last password entry is older than the re-authentication window."""

    status = 403

    def __init__(self, message: str = "Confirm your password to continue."):
        super().__init__(message)
        self.message = message
        self.back = ""

    def back_to(self, path: str) -> "ReauthRequired":
        """The page to return to once the password is confirmed."""
        self.back = path
        return self


class NotAllowed(PageError):
    status = 403


class NotFoundError(PageError):
    status = 404


_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}


def field_for(message: str, fields: Sequence[tuple[str, str]]) -> str:
    """The first form field whose keyword appears in the message ("" when none does)."""
    lowered = message.lower()
    for keyword, field in fields:
        if keyword in lowered:
            return field
    return ""


def from_rpc(err: grpc.aio.AioRpcError, *, fields: Sequence[tuple[str, str]] = (),
             session_call: bool = True) -> Exception:
    """The PageError for a failed call (SessionExpired when the session ended, ReauthRequired when
    the password must be confirmed). `session_call`: UNAUTHENTICATED means the session ended."""
    code = err.code()
    message = " ".join((err.details() or "").split())
    status = _STATUS.get(code)
    if status is None:
        log.warning("backend call failed", extra={"grpc_status": code.name})
        return PageError(UNAVAILABLE, status=503)
    if code == grpc.StatusCode.UNAUTHENTICATED and session_call:
        return SessionExpired()
    if code == grpc.StatusCode.PERMISSION_DENIED and "confirm your password" in message.lower():
        return ReauthRequired(message)
    kind = {404: NotFoundError, 403: NotAllowed}.get(status, PageError)
    return kind(message or "The request was refused.", status=status, field=field_for(message, fields),
                retry_after=_retry_after(err) if status == 429 else None)
