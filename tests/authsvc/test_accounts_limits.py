"""Failed-login rate limits (per account and per client IP), shared through the database."""

from __future__ import annotations

import dataclasses

import grpc

from authsvc.server import create_server
from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc
from gatehouse.infra.grpcserver import open_channel
from tests.authsvc.accounts_support import PASSWORD, client, events, login, register, rpc_error


def retry_after(err) -> int:
    return int(dict(err.trailing_metadata())["retry-after"])


async def test_per_user_limit_refuses_even_the_right_password_until_the_window_passes(auth):
    await register(auth, "alice")
    limit, window = auth.settings.login_failures_per_user, auth.settings.login_window_seconds
    for i in range(limit):  # from many addresses: the per-IP limit is not what trips
        err = await rpc_error(login(auth, "alice", "wrong password", ip=f"198.51.100.{i}"))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        auth.clock.advance(seconds=1)
    err = await rpc_error(login(auth, "alice", PASSWORD, ip="203.0.113.200"))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Too many failed login attempts" in err.details() and "Try again in" in err.details()
    # One slot frees when the first failure leaves the window.
    assert retry_after(err) == window - limit
    assert "minutes" in err.details()
    # Logging in by email address is the same account: limited too.
    err = await rpc_error(login(auth, "alice@example.org", PASSWORD, ip="203.0.113.201"))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Refused attempts are logged too, as such (item 5 of the "under attack" issue).
    reasons = [e.details["reason"] for e in await events(auth, "account:login:failure")]
    assert reasons == ["invalid_password"] * limit + ["rate_limited"] * 2

    auth.clock.advance(seconds=retry_after(err) - 1)
    err = await rpc_error(login(auth, "alice", PASSWORD, ip="203.0.113.202"))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after(err) == 1
    auth.clock.advance(seconds=1)
    assert (await login(auth, "alice", PASSWORD, ip="203.0.113.203")).session_token


async def test_per_ip_limit_covers_every_username_from_that_address(auth):
    await register(auth, "alice")
    await register(auth, "victim")
    for i in range(auth.settings.login_failures_per_ip):
        await rpc_error(login(auth, f"guess{i}" if i % 2 else "alice", "wrong password", ip="198.51.100.66"))
    err = await rpc_error(login(auth, "victim", PASSWORD, ip="198.51.100.66"))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "network" in err.details()
    # The account itself is not limited: from another address it logs in.
    assert (await login(auth, "victim", PASSWORD, ip="198.51.100.67")).session_token
    auth.clock.advance(seconds=auth.settings.login_window_seconds)
    assert (await login(auth, "victim", PASSWORD, ip="198.51.100.66")).session_token


async def test_a_limit_does_not_reveal_whether_the_account_exists(auth):
    await register(auth, "alice")
    answers = {}
    for name in ("alice", "nobody"):
        for i in range(auth.settings.login_failures_per_user):
            await rpc_error(login(auth, name, "wrong password", ip=f"192.0.2.{i}"))
        err = await rpc_error(login(auth, name, "wrong password", ip="192.0.2.250"))
        answers[name] = (err.code(), err.details())
    assert answers["alice"] == answers["nobody"]
    assert answers["alice"][0] == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_replicas_share_the_limit(auth):
    """Two authsvc processes over one database count the same failures."""
    await register(auth, "alice")
    replica_settings = dataclasses.replace(auth.settings)
    replica = await create_server(replica_settings, clock=auth.clock)
    try:
        async with open_channel(f"127.0.0.1:{replica.port}", replica_settings.gateway_key) as channel:
            other = accounts_pb2_grpc.AccountServiceStub(channel)
            for i in range(auth.settings.login_failures_per_user):
                stub = other if i % 2 else auth.accounts
                await rpc_error(stub.Login(accounts_pb2.LoginRequest(
                    username="alice", password="wrong password", client=client(f"198.51.100.{i}"))))
            for stub in (auth.accounts, other):
                err = await rpc_error(stub.Login(accounts_pb2.LoginRequest(
                    username="alice", password=PASSWORD, client=client("203.0.113.1"))))
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "account" in err.details()
    finally:
        await replica.stop(grace=0)


async def test_wrong_current_password_counts_as_a_failed_login(auth):
    await register(auth, "alice")
    session = (await login(auth)).session_token
    for _ in range(auth.settings.login_failures_per_user):
        err = await rpc_error(auth.accounts.ChangePassword(accounts_pb2.ChangePasswordRequest(
            session_token=session, old_password="wrong password", new_password="a brand new secret")))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "current password" in err.details()
    err = await rpc_error(auth.accounts.ChangePassword(accounts_pb2.ChangePasswordRequest(
        session_token=session, old_password=PASSWORD, new_password="a brand new secret")))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    reasons = [e.details["reason"] for e in await events(auth, "account:reauthenticate:failure")]
    assert reasons == ["invalid_password"] * auth.settings.login_failures_per_user + ["rate_limited"]
