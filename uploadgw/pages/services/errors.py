"""What can go wrong behind a page, as one exception type the page middleware knows how to show.

gRPC answers from authsvc and auditsvc become `PageError`s with an HTTP status and the service's
message (written for users). `field` ties the message to a form control by the refusal's reason,
so the page can point at it (aria-describedby). Nothing here ever carries a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import grpc

from uploadgw.refusals import REAUTH_REQUIRED, Refusal, Surface

log = logging.getLogger(__name__)

UNAVAILABLE = "The account service is not answering at the moment. Try again in a minute."


class PageError(Exception):
    """A refusal or failure to show on the page (status is the HTTP status)."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None, field: str = "", retry_after: int | None = None,
                 reason: str = ""):
        super().__init__(message)
        self.message = message
        self.reason = reason  # the service's machine-readable reason ("expiry_too_far"), when it gave one
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


def from_rpc(err: grpc.aio.AioRpcError, *, fields: Collection[str] = (), field: str = "",
             session_call: bool = True) -> Exception:
    """The PageError for a failed call (SessionExpired when the session ended, ReauthRequired when
    the password must be confirmed), by status and reason (`uploadgw.refusals`). `fields`: the
    fields of the page's form, one of which may show the refusal by its reason; `field`: the form's
    one input, which shows any refusal. `session_call`: UNAUTHENTICATED means the session ended."""
    refusal = Refusal.of(err, Surface.PAGE)
    if refusal.unavailable:
        log.warning("backend call failed", extra={"grpc_status": refusal.code.name, "reason": refusal.label})
        return PageError(UNAVAILABLE, status=503)
    if refusal.code == grpc.StatusCode.UNAUTHENTICATED and session_call:
        return SessionExpired()
    if refusal.reason == REAUTH_REQUIRED:
        return ReauthRequired(refusal.message)
    kind = {404: NotFoundError, 403: NotAllowed}.get(refusal.http_status, PageError)
    return kind(refusal.message or "The request was refused.", status=refusal.http_status,
                field=field or refusal.field(fields), retry_after=refusal.retry_after, reason=refusal.reason.lower())
