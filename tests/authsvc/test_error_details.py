"""Every error status of authsvc carries its reason as `google.rpc.ErrorInfo` (and a wait as
`google.rpc.RetryInfo`) in the rich status details, readable by any plain gRPC client with
grpcio-status's `rpc_status.from_call`: no Gatehouse code on the client side here."""

from __future__ import annotations

import asyncio

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc, admin_pb2, admin_pb2_grpc
from gatehouse.infra.grpcserver import CREDENTIAL_HEADER
from tests.authsvc.accounts_support import client, register

DOMAIN = "gatehouse.authsvc"


def plain_call(target: str, credential: str | None, stub_type, method: str, request):
    """One call with grpcio's synchronous API: (code, message, ErrorInfo, RetryInfo or None, trailers)."""
    metadata = ((CREDENTIAL_HEADER, credential),) if credential else ()
    with grpc.insecure_channel(target) as channel:
        try:
            getattr(stub_type(channel), method)(request, metadata=metadata, timeout=10)
        except grpc.RpcError as err:
            status = rpc_status.from_call(err)
            assert status is not None, "no rich status details"
            info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
            assert status.details[0].Unpack(info)
            has_retry = any(d.Unpack(retry) for d in status.details[1:])
            return err.code(), err.details(), info, retry if has_retry else None, dict(err.trailing_metadata())
    raise AssertionError(f"{method} was not refused")


async def refused(auth, method: str, request, *, credential: str | None = "gateway", stub_type=None):
    key = {"gateway": auth.settings.gateway_key, "operator": auth.settings.operator_key}.get(credential, credential)
    return await asyncio.to_thread(plain_call, auth.target, key, stub_type or accounts_pb2_grpc.AccountServiceStub,
                                   method, request)


async def test_a_refusal_names_its_reason_and_domain(auth):
    code, message, info, retry, _ = await refused(auth, "Register", accounts_pb2.RegisterRequest(
        username="alice", email="alice@example.org", password="short"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "too short" in message
    assert (info.reason, info.domain, retry) == ("PASSWORD_TOO_SHORT", DOMAIN, None)

    await register(auth, "bob")
    code, _, info, _, _ = await refused(auth, "Login", accounts_pb2.LoginRequest(
        username="bob", password="not bob's password", client=client()))
    assert (code, info.reason) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")


async def test_an_unknown_session_is_session_invalid(auth):
    code, _, info, _, _ = await refused(auth, "ValidateSession", accounts_pb2.ValidateSessionRequest(
        session_token="not-a-session"))
    assert (code, info.reason, info.domain) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_INVALID", DOMAIN)


async def test_the_interceptors_own_refusals_have_reasons(auth):
    request = accounts_pb2.LoginRequest(username="a", password="b")
    code, _, info, _, _ = await refused(auth, "Login", request, credential=None)
    assert (code, info.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SERVICE_CREDENTIAL_INVALID")
    code, _, info, _, _ = await refused(auth, "GetUser", admin_pb2.AdminGetUserRequest(username="x"),
                                        stub_type=admin_pb2_grpc.AdminServiceStub)
    assert (code, info.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OPERATOR_ONLY")


async def test_a_rate_limit_says_when_to_retry_in_retry_info_and_the_trailer(auth):
    await register(auth, "carol")
    for _ in range(20):
        code, message, info, retry, trailers = await refused(auth, "Login", accounts_pb2.LoginRequest(
            username="carol", password="wrong password", client=client("192.0.2.9")))
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            break
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, "no rate limit after 20 failed logins"
    assert info.reason == "RATE_LIMITED" and info.domain == DOMAIN and "Too many" in message
    assert retry is not None and retry.retry_delay.seconds >= 1
    assert int(trailers["retry-after"]) == retry.retry_delay.seconds  # for callers that read the trailer
