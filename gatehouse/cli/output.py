"""Printing results and errors for the CLI: human text by default, `--json` for scripts."""

from __future__ import annotations

import json
import sys

import grpc
from google.protobuf.json_format import MessageToDict

from gatehouse.infra.rpcstatus import ErrorStatus

# Exit codes a script can branch on.
EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: 2,
    grpc.StatusCode.NOT_FOUND: 3,
    grpc.StatusCode.ALREADY_EXISTS: 4,
    grpc.StatusCode.PERMISSION_DENIED: 5,
    grpc.StatusCode.UNAUTHENTICATED: 5,
    grpc.StatusCode.FAILED_PRECONDITION: 6,
    grpc.StatusCode.UNAVAILABLE: 7,
    grpc.StatusCode.DEADLINE_EXCEEDED: 7,
}


def to_dict(message) -> dict:
    """Every field, defaults included (`"is_active": false` rather than a missing key)."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def emit(args, data, text: str | None = None) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(text if text is not None else json.dumps(data, indent=2, default=str))


def note(message: str) -> None:
    """One line for the operator on stderr (stdout stays the result, `--json` included)."""
    print(f"gatehouse: {message}", file=sys.stderr)


def fail(args, message: str, code: int = 1, status: str | None = None, reason: str = "") -> int:
    """Report an error: `--json` prints it on stdout (with the service's reason, "" when none), and
    stderr always has the message, then the reason in brackets when the service gave one."""
    if getattr(args, "json", False):
        print(json.dumps({"error": message, "status": status, "reason": reason}), file=sys.stdout)
    print(f"gatehouse: error: {message}" + (f" [{reason}]" if reason else ""), file=sys.stderr)
    return code


def rpc_error(args, exc: grpc.aio.AioRpcError) -> int:
    """A failed call: the exit code by its status code, and the reason from its ErrorInfo."""
    found = ErrorStatus.of_rpc(exc)
    code = found.code
    message = found.message or code.name.lower()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        message = f"the service did not answer ({code.name}): {message}"
    return fail(args, message, EXIT_CODES.get(code, 1), code.name, found.reason)
