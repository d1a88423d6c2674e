"""The one error contract across gRPC: every error status carries a machine-readable reason.

The gRPC convention (`grpcio-status`): a `google.rpc.Status` in the `grpc-status-details-bin`
trailer whose details hold a `google.rpc.ErrorInfo` (reason in UPPER_SNAKE_CASE, the domain of
the service that refused, metadata) and, when the refusal says when to try again, a
`google.rpc.RetryInfo`. Servers build it here, the same for a unary call and for a call carried as
a stream message (`streamcalls`); callers read it back with `ErrorStatus.of_rpc`, so they branch on
the reason, never on the message text (which is for people). Any plain gRPC client reads it with
`grpc_status.rpc_status.from_call`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2

from gatehouse.infra.errors import GatehouseError

DETAILS_KEY = "grpc-status-details-bin"
# The plain trailer that older callers read; sent alongside RetryInfo.
RETRY_AFTER_KEY = "retry-after"
DEFAULT_DOMAIN = "gatehouse"

_CODES = {code.value[0]: code for code in grpc.StatusCode}
_WORD_START = re.compile(r"(?<=[a-z])(?=[A-Z])")
_NOT_REASON = re.compile(r"[^A-Z0-9]+")

Trailer = tuple[str, str | bytes]


def reason_code(reason: str) -> str:
    """A reason in ErrorInfo's form, UPPER_SNAKE_CASE: "not_in_scope" and "NotInScope" become
    "NOT_IN_SCOPE"; empty stays empty."""
    words = _WORD_START.sub("_", reason).upper()
    return _NOT_REASON.sub("_", words).strip("_")


def code_of(value: int) -> grpc.StatusCode:
    """The StatusCode of a numeric code (UNKNOWN for a number gRPC does not define)."""
    return _CODES.get(value, grpc.StatusCode.UNKNOWN)


@dataclasses.dataclass(frozen=True)
class ErrorStatus:
    """A failed call's status as both sides see it: the code, the message for people, and the
    reason (UPPER_SNAKE_CASE, "" when the status carried none: a transport failure, another
    server), its domain and metadata, and the seconds to wait before retrying (None: not said)."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    retry_after: int | None = None

    def to_proto(self) -> status_pb2.Status:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        if self.reason:
            info = error_details_pb2.ErrorInfo(reason=self.reason, domain=self.domain, metadata=dict(self.metadata))
            status.details.add().Pack(info)
        if self.retry_after is not None:
            retry = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=max(0, int(self.retry_after))))
            status.details.add().Pack(retry)
        return status

    def details(self) -> bytes:
        """The serialized `google.rpc.Status`: the value of the `grpc-status-details-bin` trailer."""
        data: bytes = self.to_proto().SerializeToString()
        return data

    def trailing_metadata(self) -> tuple[Trailer, ...]:
        """The trailers of a call that ends with this status (none for a status that says nothing
        more than its code and message)."""
        if not self.reason and self.retry_after is None:
            return ()
        trailers: list[Trailer] = [(DETAILS_KEY, self.details())]
        if self.retry_after is not None:
            trailers.append((RETRY_AFTER_KEY, str(max(0, int(self.retry_after)))))
        return tuple(trailers)

    @classmethod
    def of_error(cls, exc: GatehouseError, domain: str) -> ErrorStatus:
        """The status a service's exception becomes (the one mapping, for unary and streamed calls)."""
        retry = None if exc.retry_after is None else max(0, int(exc.retry_after))
        return cls(code=exc.code, message=exc.message, reason=reason_code(exc.reason), domain=domain,
                   retry_after=retry)

    @classmethod
    def internal(cls, domain: str) -> ErrorStatus:
        """An unexpected failure: no detail leaves the service, only that it failed."""
        return cls(code=grpc.StatusCode.INTERNAL, message="internal error", reason="INTERNAL", domain=domain)

    @classmethod
    def from_details(cls, code: grpc.StatusCode, message: str, details: bytes) -> ErrorStatus:
        """The status a call's details bytes describe. Details that do not parse, or that name
        another code than the call's, are ignored (the status then has no reason)."""
        found = cls(code=code, message=message)
        if not details:
            return found
        status = status_pb2.Status()
        try:
            status.ParseFromString(details)
        except Exception:  # noqa: BLE001 - the protobuf runtime's DecodeError, whichever it is
            return found
        if status.code != code.value[0]:
            return found
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                found = dataclasses.replace(found, reason=reason_code(info.reason), domain=info.domain,
                                            metadata=dict(info.metadata))
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                found = dataclasses.replace(found, retry_after=max(0, int(retry.retry_delay.seconds)))
        return found

    @classmethod
    def of_rpc(cls, err: grpc.aio.AioRpcError) -> ErrorStatus:
        """What a failed call said: its ErrorInfo and RetryInfo, or, from a server that sends only
        the `retry-after` trailer, that."""
        details, plain_retry = b"", None
        for key, value in err.trailing_metadata() or ():
            if key == DETAILS_KEY and isinstance(value, bytes):
                details = value
            elif key == RETRY_AFTER_KEY and isinstance(value, str):
                plain_retry = _seconds(value)
        found = cls.from_details(err.code(), err.details() or "", details)
        if found.retry_after is None and plain_retry is not None:
            found = dataclasses.replace(found, retry_after=plain_retry)
        return found

    def rpc_error(self) -> grpc.aio.AioRpcError:
        """The error a unary call that ended with this status raises (for calls carried on a stream)."""
        return grpc.aio.AioRpcError(self.code, grpc.aio.Metadata(), grpc.aio.Metadata(*self.trailing_metadata()),
                                    self.message)


def _seconds(text: str) -> int | None:
    try:
        return max(0, int(text))
    except ValueError:
        return None
