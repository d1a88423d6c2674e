"""Email verification, resend limits and extra addresses, with mail read from a real SMTP listener."""

from __future__ import annotations

import grpc
import pytest

from gatehouse.auth.v1 import accounts_pb2
from tests.authsvc.accounts_support import client, events, link_token, login, register, rpc_error

PUBLIC = "https://index.example.test"


@pytest.fixture
def auth_overrides(smtp_server):
    url, _ = smtp_server
    return {"smtp_url": url, "public_url": PUBLIC, "mail_from": "Gatehouse <noreply@index.example.test>"}


@pytest.fixture
def mailbox(smtp_server):
    return smtp_server[1]


async def verify(auth, token):
    return await auth.accounts.VerifyEmail(accounts_pb2.VerifyEmailRequest(token=token, client=client()))


async def account(auth, session):
    return await auth.accounts.GetAccount(accounts_pb2.GetAccountRequest(session_token=session))


async def test_registration_mails_a_link_that_verifies_once(auth, mailbox):
    user = await register(auth, "alice")
    [message] = mailbox.to("alice@example.org")
    assert message["From"] == "Gatehouse <noreply@index.example.test>"
    assert "Verify" in message["Subject"]
    assert f"{PUBLIC}/account/verify-email?token=" in message.get_content()
    token = link_token(message, "/account/verify-email")

    session = (await login(auth)).session_token
    assert not (await account(auth, session)).user.email_verified

    reply = await verify(auth, token)
    assert reply.email == "alice@example.org" and reply.user.email_verified
    got = await account(auth, session)
    assert got.user.email_verified
    assert [(e.address, e.verified, e.primary) for e in got.emails] == [("alice@example.org", True, True)]
    [event] = await events(auth, "account:email:verified")
    assert event.subject_user_id == user.id and event.details["email"] == "alice@example.org"
    assert event.details["primary"] == "True"

    err = await rpc_error(verify(auth, token))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "already used" in err.details()
    assert len(await events(auth, "account:email:verified")) == 1


async def test_verification_link_expires(auth, mailbox):
    await register(auth, "alice")
    token = link_token(mailbox.to("alice@example.org")[0], "/account/verify-email")
    auth.clock.advance(seconds=auth.settings.email_token_lifetime_seconds + 1)
    err = await rpc_error(verify(auth, token))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "expired" in err.details()
    assert await events(auth, "account:email:verified") == []


async def test_unknown_or_malformed_tokens_are_refused(auth):
    for token in ["", "x", "A" * 43, "A" * 5000]:
        err = await rpc_error(verify(auth, token))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_resend_is_limited_per_user_and_allowed_after_the_window(auth, mailbox):
    await register(auth, "alice")  # the registration mail counts: 5 per hour in all
    session = (await login(auth)).session_token
    resend = accounts_pb2.ResendVerificationRequest(session_token=session)
    for _ in range(auth.settings.emails_per_user - 1):
        await auth.accounts.ResendVerification(resend)
    assert len(mailbox.to("alice@example.org")) == auth.settings.emails_per_user
    err = await rpc_error(auth.accounts.ResendVerification(resend))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Try again in" in err.details()
    retry_after = int(dict(err.trailing_metadata())["retry-after"])
    assert 0 < retry_after <= auth.settings.email_window_seconds
    assert len(mailbox.to("alice@example.org")) == auth.settings.emails_per_user

    auth.clock.advance(seconds=retry_after)
    await auth.accounts.ResendVerification(resend)
    messages = mailbox.to("alice@example.org")
    assert len(messages) == auth.settings.emails_per_user + 1
    # Every link in the mails is a distinct token; any unexpired one verifies the address.
    tokens = {link_token(m, "/account/verify-email") for m in messages}
    assert len(tokens) == len(messages)
    await verify(auth, link_token(messages[-1], "/account/verify-email"))


async def test_resend_for_a_verified_or_foreign_address_is_refused(auth, mailbox):
    await register(auth, "alice")
    await register(auth, "bob")
    session = (await login(auth)).session_token
    err = await rpc_error(auth.accounts.ResendVerification(
        accounts_pb2.ResendVerificationRequest(session_token=session, email="bob@example.org")))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await verify(auth, link_token(mailbox.to("alice@example.org")[0], "/account/verify-email"))
    err = await rpc_error(auth.accounts.ResendVerification(
        accounts_pb2.ResendVerificationRequest(session_token=session)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "already verified" in err.details()
    err = await rpc_error(auth.accounts.ResendVerification(
        accounts_pb2.ResendVerificationRequest(session_token="not-a-session")))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_add_email_sends_its_own_verification(auth, mailbox):
    user = await register(auth, "alice")
    session = (await login(auth)).session_token
    reply = await auth.accounts.AddEmail(accounts_pb2.AddEmailRequest(
        session_token=session, email="Alice.Work@Example.com", client=client("198.51.100.3")))
    assert [(e.address, e.verified, e.primary) for e in reply.emails] == [
        ("alice@example.org", False, True), ("Alice.Work@Example.com", False, False)]
    [event] = await events(auth, "account:email:add")
    assert event.subject_user_id == user.id and event.details["email"] == "Alice.Work@Example.com"
    assert event.ip_address == "198.51.100.3"

    [message] = mailbox.to("alice.work@example.com")
    verified = await verify(auth, link_token(message, "/account/verify-email"))
    assert verified.email == "Alice.Work@Example.com"
    assert not verified.user.email_verified  # the primary address is still unverified
    got = await account(auth, session)
    assert [(e.address, e.verified) for e in got.emails] == [
        ("alice@example.org", False), ("Alice.Work@Example.com", True)]
    [event] = await events(auth, "account:email:verified")
    assert event.details["primary"] == "False"

    # The primary address's own link still works afterwards.
    await verify(auth, link_token(mailbox.to("alice@example.org")[0], "/account/verify-email"))
    assert (await account(auth, session)).user.email_verified


async def test_add_email_refuses_taken_and_invalid_addresses(auth):
    await register(auth, "alice")
    await register(auth, "bob")
    session = (await login(auth)).session_token
    for address, code in [("BOB@example.org", grpc.StatusCode.ALREADY_EXISTS),
                          ("alice@example.org", grpc.StatusCode.ALREADY_EXISTS),
                          ("not-an-address", grpc.StatusCode.INVALID_ARGUMENT),
                          ("", grpc.StatusCode.INVALID_ARGUMENT)]:
        err = await rpc_error(auth.accounts.AddEmail(accounts_pb2.AddEmailRequest(session_token=session,
                                                                                  email=address)))
        assert err.code() == code, address
    assert await events(auth, "account:email:add") == []


async def test_add_email_counts_against_the_mail_limit(auth, mailbox):
    await register(auth, "alice")
    session = (await login(auth)).session_token
    for i in range(auth.settings.emails_per_user - 1):
        await auth.accounts.AddEmail(accounts_pb2.AddEmailRequest(session_token=session,
                                                                  email=f"extra{i}@example.org"))
    err = await rpc_error(auth.accounts.AddEmail(accounts_pb2.AddEmailRequest(
        session_token=session, email="one-too-many@example.org")))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    emails = (await account(auth, session)).emails
    assert "one-too-many@example.org" not in [e.address for e in emails]
    assert len(emails) == auth.settings.emails_per_user
