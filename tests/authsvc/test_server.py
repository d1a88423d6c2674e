"""The auth service's server plumbing: credentials, health, reflection, error mapping."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc, admin_pb2, admin_pb2_grpc, tokens_pb2, tokens_pb2_grpc
from gatehouse.diag.v1 import echo_pb2, echo_pb2_grpc


async def test_health_is_open_and_serving(auth):
    async with grpc.aio.insecure_channel(auth.target) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_calls_without_a_credential_are_refused(auth):
    async with grpc.aio.insecure_channel(auth.target) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await echo_pb2_grpc.EchoServiceStub(ch).Echo(echo_pb2.EchoRequest(payload=b"x"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_credential_is_refused(auth):
    async with auth.channel("not-the-key") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await accounts_pb2_grpc.AccountServiceStub(ch).Login(
                accounts_pb2.LoginRequest(username="a", password="b"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_echo_with_gateway_credential(auth):
    reply = await echo_pb2_grpc.EchoServiceStub(auth.gateway).Echo(echo_pb2.EchoRequest(payload=b"hi"))
    assert reply.payload == b"hi"


async def test_gateway_credential_cannot_call_operator_rpcs(auth):
    stub = admin_pb2_grpc.AdminServiceStub(auth.gateway)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetUser(admin_pb2.AdminGetUserRequest(username="x"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_register_login_and_validate_session(auth):
    reg = await auth.accounts.Register(accounts_pb2.RegisterRequest(
        username="alice", email="alice@example.org", password="correct horse battery"))
    assert reg.user.username == "alice" and not reg.user.email_verified
    login = await auth.accounts.Login(accounts_pb2.LoginRequest(username="alice", password="correct horse battery"))
    assert login.session_token
    valid = await auth.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(session_token=login.session_token))
    assert valid.user.id == reg.user.id


async def test_the_audit_credential_validates_sessions_and_does_nothing_else(auth):
    """AUTHSVC_AUDIT_KEY (what the audit API holds) is good for ValidateSession only: a leak of it
    cannot try passwords, verify tokens, change accounts or reach operator RPCs."""
    await auth.accounts.Register(accounts_pb2.RegisterRequest(
        username="carol", email="carol@example.org", password="correct horse battery"))
    session = (await auth.accounts.Login(accounts_pb2.LoginRequest(
        username="carol", password="correct horse battery"))).session_token
    async with auth.channel(auth.settings.audit_key) as ch:
        accounts = accounts_pb2_grpc.AccountServiceStub(ch)
        valid = await accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(session_token=session))
        assert valid.user.username == "carol"
        for call in (accounts.Login(accounts_pb2.LoginRequest(username="carol", password="correct horse battery")),
                     accounts.ListSessions(accounts_pb2.ListSessionsRequest(session_token=session)),
                     tokens_pb2_grpc.TokenServiceStub(ch).VerifyUploadToken(
                         tokens_pb2.VerifyUploadTokenRequest(token="pypi-x", project_name="p")),
                     echo_pb2_grpc.EchoServiceStub(ch).Echo(echo_pb2.EchoRequest(payload=b"x")),
                     admin_pb2_grpc.AdminServiceStub(ch).GetUser(admin_pb2.AdminGetUserRequest(username="carol"))):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "may not call this method" in err.value.details()


async def test_bad_input_is_invalid_argument_with_a_message(auth):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth.accounts.Register(accounts_pb2.RegisterRequest(
            username="-bad-", email="x@example.org", password="correct horse battery"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "username" in err.value.details()
