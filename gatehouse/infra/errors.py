"""The base of every service's exception hierarchy, and its one mapping to gRPC status codes.

Services subclass these in their own `errors.py`; the gRPC interceptor in `grpcserver` turns them
into a status with the message, and the reason as the status details' ErrorInfo (`rpcstatus`), which
callers branch on. Messages are shown to end users (twine prints them), so they must say exactly
what is wrong and never contain a secret.
"""

from __future__ import annotations

import grpc


class GatehouseError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, reason: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        # A short machine-readable reason ("expired", "not_in_scope", …) for metrics and callers; it
        # crosses gRPC in UPPER_SNAKE_CASE ("NOT_IN_SCOPE"). Without one, the class name says it.
        self.reason = reason or type(self).__name__
        self.retry_after = retry_after


class InvalidArgument(GatehouseError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(GatehouseError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(GatehouseError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Unauthenticated(GatehouseError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(GatehouseError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(GatehouseError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(GatehouseError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(GatehouseError):
    code = grpc.StatusCode.UNAVAILABLE
