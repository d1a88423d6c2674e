"""Seed workflows about the account itself, through the whole system, each checked in the user's log
as the audit service serves it (and not in anyone else's): "User Registration and Confirmation",
"Verify primary email address", "Login/Logout", "Password Reset"."""

from __future__ import annotations

import secrets

import grpc
import pytest
import pytest_asyncio

from gatehouse.auth.v1 import accounts_pb2, common_pb2, tokens_pb2
from tests.e2e.journeys import assert_own_events, assert_untouched, rpc_error
from tests.system import PASSWORD, UA, Person, client

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bystander(system) -> Person:
    """A user who does nothing: no one else's event may ever show in their log."""
    return await system.person("by")


async def test_registration_and_confirmation(system, bystander):
    """Seed: "User Registration and Confirmation" (and no API token before the address is verified)."""
    username = f"reg{secrets.token_hex(4)}"
    email = f"{username}@example.org"
    registered = await system.accounts.Register(accounts_pb2.RegisterRequest(
        username=username, email=email, password=PASSWORD, client=client("198.51.100.30")))
    user_id = registered.user.id
    assert not registered.user.email_verified
    session = (await system.accounts.Login(accounts_pb2.LoginRequest(
        username=username, password=PASSWORD, client=client("198.51.100.30")))).session_token
    refused = await rpc_error(system.tokens.CreateToken(tokens_pb2.CreateTokenRequest(
        session_token=session, description="too early", scope=common_pb2.TokenScope(all_projects=True))))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION and "verify" in refused.details().lower()

    token = await system.mailbox.token(email, "verify")
    verified = await system.accounts.VerifyEmail(accounts_pb2.VerifyEmailRequest(
        token=token, client=client("198.51.100.31")))
    assert verified.user.id == user_id and verified.email == email and verified.user.email_verified
    account = await system.accounts.GetAccount(accounts_pb2.GetAccountRequest(session_token=session))
    assert account.user.email_verified and account.emails[0].verified
    again = await rpc_error(system.accounts.VerifyEmail(accounts_pb2.VerifyEmailRequest(token=token)))
    assert again.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                            grpc.StatusCode.FAILED_PRECONDITION)  # single use

    events = await system.wait_for_user_event(user_id, "account:email:verified")
    assert events[0].ip_address == "198.51.100.31" and events[0].details["email"] == email
    log = await system.user_events(user_id)
    create = next(e for e in log if e.tag == "account:create")
    assert create.ip_address == "198.51.100.30" and create.user_agent == UA
    assert [e.tag for e in log].count("account:email:verified") == 1
    await assert_own_events(system, user_id, log)
    await assert_untouched(system, bystander, log)


async def test_verify_primary_email_address(system, bystander):
    """Seed: "Verify primary email address: check that the user log lists the event"."""
    person = await system.person("ver", verified=False)
    session = await system.session(person, ip="198.51.100.40")
    sent = len(system.mailbox.to(person.email))
    await system.accounts.ResendVerification(accounts_pb2.ResendVerificationRequest(
        session_token=session, client=client("198.51.100.40")))
    token = await system.mailbox.token(person.email, "verify", after=sent)
    await system.accounts.VerifyEmail(accounts_pb2.VerifyEmailRequest(token=token, client=client("198.51.100.40")))

    verified = await system.wait_for_user_event(person.user_id, "account:email:verified")
    assert verified[0].subject_user_id == person.user_id and verified[0].details["email"] == person.email
    assert verified[0].actor.user_id == person.user_id
    log = await system.user_events(person.user_id)
    await assert_own_events(system, person.user_id, log)
    await assert_untouched(system, bystander, log)


async def test_login_and_logout(system, bystander):
    """Seed: "Login/Logout": successes and failures land in the user's log with IP and user agent,
    and a logged-out session is over."""
    person = await system.person("log")
    await system.failed_login(person, ip="198.51.100.50")
    reply = await system.login(person, ip="198.51.100.51")
    assert reply.session_token and reply.user.id == person.user_id
    await system.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(session_token=reply.session_token))
    await system.accounts.Logout(accounts_pb2.LogoutRequest(session_token=reply.session_token,
                                                            client=client("198.51.100.51")))
    ended = await rpc_error(system.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(
        session_token=reply.session_token)))
    assert ended.code() == grpc.StatusCode.UNAUTHENTICATED

    success = (await system.wait_for_user_event(person.user_id, "account:login:success"))[0]
    assert (success.ip_address, success.user_agent, success.details["method"]) == ("198.51.100.51", UA, "password")
    assert success.actor.user_id == person.user_id
    failure = (await system.wait_for_user_event(person.user_id, "account:login:failure"))[0]
    assert failure.ip_address == "198.51.100.50" and failure.details["reason"]
    assert "password" not in {k.lower() for k in failure.details} and PASSWORD not in str(failure)
    log = await system.user_events(person.user_id)
    assert log.index(success) < log.index(failure)  # newest first
    await assert_own_events(system, person.user_id, log)
    await assert_untouched(system, bystander, log)


async def test_password_reset(system, bystander):
    """Seed: "Password Reset: check that the user log lists the event"."""
    person = await system.person("rst")
    old_session = await system.session(person, ip="198.51.100.60")
    await system.accounts.RequestPasswordReset(accounts_pb2.RequestPasswordResetRequest(
        username_or_email=person.email, client=client("198.51.100.61")))
    token = await system.mailbox.token(person.email, "reset")
    new_password = "a brand new passphrase for e2e"
    reply = await system.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(
        token=token, new_password=new_password, client=client("198.51.100.62")))
    assert not reply.second_factor_required
    ended = await rpc_error(system.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(
        session_token=old_session)))
    assert ended.code() == grpc.StatusCode.UNAUTHENTICATED  # a reset ends the other sessions
    await system.failed_login(person, ip="198.51.100.63")  # the old password
    assert (await system.login(person, ip="198.51.100.63", password=new_password)).session_token

    requested = (await system.wait_for_user_event(person.user_id, "account:password:reset:request"))[0]
    reset = (await system.wait_for_user_event(person.user_id, "account:password:reset"))[0]
    assert requested.ip_address == "198.51.100.61" and reset.ip_address == "198.51.100.62"
    assert reset.actor.user_id == person.user_id
    log = await system.user_events(person.user_id)
    assert token not in str(log) and new_password not in str(log)
    await assert_own_events(system, person.user_id, log)
    await assert_untouched(system, bystander, log)
