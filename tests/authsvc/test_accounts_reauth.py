"""AccountService.Reauthenticate over gRPC: the password confirms a sensitive action on the CURRENT
session (no new session, no second step), and ValidateSession says when that is needed, following
AUTHSVC_REAUTH_SECONDS (set to a non-default value in this module)."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from gatehouse.auth.v1 import accounts_pb2, admin_pb2
from tests.authsvc.accounts_support import PASSWORD, client, events, rpc_error
from tests.authsvc.twofactor_support import enrol_totp, make_user, password_login

WINDOW = 600


@pytest.fixture
def auth_overrides():
    return {"reauth_seconds": WINDOW, "login_failures_per_user": 4}


async def validate(auth, token: str) -> accounts_pb2.ValidateSessionResponse:
    return await auth.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(session_token=token))


async def reauthenticate(auth, token: str, password: str = PASSWORD, ip: str = "192.0.2.1"):
    return await auth.accounts.Reauthenticate(accounts_pb2.ReauthenticateRequest(
        session_token=token, password=password, client=client(ip)))


def at(ts) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.timezone.utc)


async def test_validate_session_says_when_the_password_must_be_confirmed_again(auth):
    token = await make_user(auth, "alice")
    fresh = await validate(auth, token)
    assert fresh.HasField("reauth_required") and not fresh.reauth_required
    auth.clock.advance(seconds=WINDOW - 1)
    assert not (await validate(auth, token)).reauth_required
    auth.clock.advance(seconds=1)
    assert (await validate(auth, token)).reauth_required


async def test_reauthenticate_refreshes_the_current_session_and_starts_no_new_one(auth):
    token = await make_user(auth, "alice")
    before = await validate(auth, token)
    auth.clock.advance(seconds=WINDOW + 5)
    assert (await validate(auth, token)).reauth_required
    logins = len(await events(auth, "account:login:success"))

    reply = await reauthenticate(auth, token)

    assert reply.session.id == before.session.id and reply.session.current
    assert abs((at(reply.session.authenticated_at) - auth.clock.now()).total_seconds()) < 1
    assert at(reply.session.authenticated_at) > at(before.session.authenticated_at)
    after = await validate(auth, token)
    assert not after.reauth_required and after.session.id == before.session.id
    assert after.session.authenticated_at == reply.session.authenticated_at
    sessions = await auth.accounts.ListSessions(accounts_pb2.ListSessionsRequest(session_token=token))
    assert [s.id for s in sessions.sessions] == [before.session.id]
    assert len(await events(auth, "account:login:success")) == logins


async def test_a_two_factor_account_confirms_with_the_password_alone(auth):
    token = await make_user(auth, "bob")
    await enrol_totp(auth, token)
    auth.clock.advance(seconds=WINDOW)
    assert (await validate(auth, token)).reauth_required
    reply = await reauthenticate(auth, token)
    assert reply.session.current and not (await validate(auth, token)).reauth_required
    # A fresh password login of the same account would stop at the second step instead.
    assert (await password_login(auth, "bob")).second_factor_required


async def test_a_wrong_password_is_refused_recorded_and_counts_against_the_login_limit(auth):
    token = await make_user(auth, "carol")
    auth.clock.advance(seconds=WINDOW)
    stale = (await validate(auth, token)).session.authenticated_at
    limit = auth.settings.login_failures_per_user
    for _ in range(limit):
        err = await rpc_error(reauthenticate(auth, token, "not my password"))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details() == "The current password is incorrect."
    check = await validate(auth, token)
    assert check.reauth_required and check.session.authenticated_at == stale
    failures = await events(auth, "account:reauthenticate:failure")
    assert len(failures) == limit
    assert {e.details["action"] for e in failures} == {"reauthenticate"}
    assert all("not my password" not in str(e) for e in failures)
    # Over the limit: the right password does not help, here or at the login form.
    err = await rpc_error(reauthenticate(auth, token))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert any(k == "retry-after" and int(v) > 0 for k, v in err.trailing_metadata())
    err = await rpc_error(password_login(auth, "carol", ip="203.0.113.9"))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await validate(auth, token)).reauth_required


async def test_reauthenticate_needs_a_live_session_of_an_active_account(auth):
    token = await make_user(auth, "dave")
    for bad in ("", "garbage", "x" * 5000):
        err = await rpc_error(reauthenticate(auth, bad))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, bad
    err = await rpc_error(reauthenticate(auth, token, ""))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "password" in err.details()
    other = await make_user(auth, "erin")
    await auth.accounts.Logout(accounts_pb2.LogoutRequest(session_token=other))
    err = await rpc_error(reauthenticate(auth, other))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    await auth.admin.SetUserActive(admin_pb2.AdminSetUserActiveRequest(username="dave", active=False))
    err = await rpc_error(reauthenticate(auth, token))  # disabling ended the account's sessions
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    fresh = await make_user(auth, "frank")
    auth.clock.advance(seconds=auth.settings.session_lifetime_seconds)
    err = await rpc_error(reauthenticate(auth, fresh))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
