"""No password, session token or emailed token ever reaches a log line or an audit event."""

from __future__ import annotations

import logging

import pytest

from gatehouse.auth.v1 import accounts_pb2
from gatehouse.infra.logging import JsonFormatter
from tests.authsvc.accounts_support import (
    PASSWORD,
    events,
    link_token,
    login,
    outbox_payloads,
    register,
    rpc_error,
)

NEW = "second secret passphrase"
THIRD = "third secret passphrase"
WRONG = "wrong secret passphrase"
# The test's own SMTP listener logs what it receives; it is not part of Gatehouse.
NOT_OURS = ("mail.log", "aiosmtpd")


@pytest.fixture
def auth_overrides(smtp_server):
    return {"smtp_url": smtp_server[0]}


def assert_absent(secrets: list[str], caplog, payloads: list[bytes]):
    formatter = JsonFormatter()
    records = [r for r in caplog.records if not r.name.startswith(NOT_OURS)]
    assert records, "expected the service to log something"
    for record in records:
        text = formatter.format(record) + repr(vars(record))
        for secret in secrets:
            assert secret not in text, f"secret leaked into log record {record.name}: {record.getMessage()}"
    for payload in payloads:
        for secret in secrets:
            assert secret.encode() not in payload


async def test_a_whole_account_journey_leaks_no_secret(auth, smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    mailbox = smtp_server[1]
    secrets = [PASSWORD, NEW, THIRD, WRONG]

    await register(auth, "alice")
    verify_token = link_token(mailbox.to("alice@example.org")[0], "/account/verify-email")
    secrets.append(verify_token)
    await auth.accounts.VerifyEmail(accounts_pb2.VerifyEmailRequest(token=verify_token))
    await rpc_error(auth.accounts.VerifyEmail(accounts_pb2.VerifyEmailRequest(token=verify_token)))

    session = (await login(auth)).session_token
    secrets.append(session)
    await rpc_error(login(auth, "alice", WRONG))
    await rpc_error(login(auth, "nobody", WRONG))
    await auth.accounts.AddEmail(accounts_pb2.AddEmailRequest(session_token=session, email="alt@example.org"))
    secrets.append(link_token(mailbox.to("alt@example.org")[0], "/account/verify-email"))
    await rpc_error(auth.accounts.ChangePassword(accounts_pb2.ChangePasswordRequest(
        session_token=session, old_password=WRONG, new_password=NEW)))
    await auth.accounts.ChangePassword(accounts_pb2.ChangePasswordRequest(
        session_token=session, old_password=PASSWORD, new_password=NEW))

    await auth.accounts.RequestPasswordReset(accounts_pb2.RequestPasswordResetRequest(username_or_email="alice"))
    # Notices (address added, password changed) go to alice too: the reset mail is the one with its link.
    reset_token = await mailbox.token("alice@example.org", "Reset your password")
    secrets.append(reset_token)
    await rpc_error(auth.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(
        token=reset_token, new_password="password1")))
    await auth.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(token=reset_token, new_password=THIRD))
    await rpc_error(auth.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(
        token=reset_token, new_password=THIRD)))
    second_session = (await login(auth, "alice", THIRD)).session_token
    secrets.append(second_session)
    await auth.accounts.Logout(accounts_pb2.LogoutRequest(session_token=second_session))
    await rpc_error(auth.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(session_token=session)))

    tags = {e.tag for e in await events(auth)}
    assert {"account:create", "account:email:verified", "account:email:add", "account:login:success",
            "account:login:failure", "account:password:change", "account:password:reset:request",
            "account:password:reset"} <= tags
    assert_absent(secrets, caplog, await outbox_payloads(auth))
