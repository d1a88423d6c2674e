"""The gateway's exceptions. One aiohttp middleware maps them to HTTP status codes.

Messages are what twine prints to the user: they say exactly what is wrong, on one line, and
never contain a secret.
"""

from __future__ import annotations

from gatehouse.infra.errors import (
    AlreadyExists,
    FailedPrecondition,
    GatehouseError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "GatehouseError", "InvalidUpload", "NotFound", "Forbidden", "AuthenticationRequired",
    "TooLarge", "RateLimited", "DependencyUnavailable", "Gone", "NotAcceptable", "Conflict", "http_status_for",
]


class InvalidUpload(InvalidArgument):
    """400: the request or the distribution is not acceptable."""

    http_status = 400


class Forbidden(PermissionDenied):
    """403: missing/invalid credentials on an upload, or not allowed to act on the project."""

    http_status = 403


class AuthenticationRequired(Unauthenticated):
    """401 with a Basic challenge: private index reads without valid credentials."""

    http_status = 401


class TooLarge(InvalidArgument):
    """413: a file, a project or the form is over its size limit."""

    http_status = 413


class RateLimited(ResourceExhausted):
    http_status = 429


class DependencyUnavailable(Unavailable):
    """503: the auth service (or another dependency) cannot answer; nothing was accepted."""

    http_status = 503


class Gone(InvalidArgument):
    http_status = 410


class NotAcceptable(InvalidArgument):
    http_status = 406


class Conflict(InvalidArgument):
    """400: the project's state does not allow this right now (being deleted, a lost race); retry.

    Not 409: twine < 7 with --skip-existing would take a 409 for "already uploaded" and skip."""

    http_status = 400


def http_status_for(exc: GatehouseError) -> int:
    """The HTTP status for any GatehouseError, including the shared base classes."""
    status = getattr(exc, "http_status", None)
    if status is not None:
        return status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Unauthenticated | PermissionDenied):
        return 403
    if isinstance(exc, ResourceExhausted):
        return 429
    if isinstance(exc, Unavailable):
        return 503
    if isinstance(exc, InvalidArgument | AlreadyExists | FailedPrecondition):
        return 400
    return 500
