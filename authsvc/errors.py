"""The auth service's exceptions; the gRPC interceptor maps them to status codes with the message, and
their reason to the status details' ErrorInfo (in UPPER_SNAKE_CASE, under DOMAIN)."""

from gatehouse.infra.errors import (  # noqa: F401  (re-exported for the service's modules)
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

DOMAIN = "gatehouse.authsvc"


class InvalidCredentials(Unauthenticated):
    """Unknown user or wrong password: one answer for both."""

    def __init__(self):
        super().__init__("The username or password is incorrect.", reason="invalid_credentials")


class AccountDisabled(PermissionDenied):
    def __init__(self):
        super().__init__("This account is disabled. Contact the index operators.", reason="account_disabled")


class SessionInvalid(Unauthenticated):
    def __init__(self, message: str = "Your session has expired. Log in again."):
        super().__init__(message, reason="session_invalid")


class RateLimited(ResourceExhausted):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message, reason="rate_limited", retry_after=retry_after)


class TokenDenied(PermissionDenied):
    """A valid token that may not do this (scope, role, expiry…); the message says why."""


class TokenInvalid(Unauthenticated):
    """Not a token of ours, tampered with, deleted, or its user is gone or disabled."""


class ExchangeRefused(GatehouseError):
    """A trusted-publishing exchange refused. `reason` is PyPI's error code with "_" for "-"
    (invalid_token, invalid_publisher, …), which the gateway returns as the code; the message
    tells the CI user what to fix."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message, reason=reason)
        self.code = _EXCHANGE_CODES[reason]


_EXCHANGE_CODES = {
    "not_enabled": FailedPrecondition.code,
    "invalid_payload": InvalidArgument.code,
    "invalid_token": Unauthenticated.code,
    "invalid_reuse_token": Unauthenticated.code,
    "invalid_publisher": PermissionDenied.code,
    "invalid_pending_publisher": PermissionDenied.code,
}
