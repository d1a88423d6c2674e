"""When the SMTP relay is down: the account change stays, the token stays out of the logs."""

from __future__ import annotations

import logging

import grpc
import pytest
from sqlalchemy import func, select

from authsvc.accounts.models import OneTimeToken, User
from gatehouse.auth.v1 import accounts_pb2
from gatehouse.infra.redis_embed import free_port
from tests.authsvc.accounts_support import PASSWORD, login, register, rpc_error


@pytest.fixture
def auth_overrides():
    return {"smtp_url": f"smtp://127.0.0.1:{free_port()}"}  # nothing listens there


async def test_registration_survives_a_mail_failure_and_resend_reports_it(auth, caplog):
    caplog.set_level(logging.DEBUG, logger="authsvc")
    user = await register(auth, "alice")
    async with auth.running.app.db() as s:
        assert await s.scalar(select(func.count()).select_from(User)) == 1
        assert await s.scalar(select(func.count()).select_from(OneTimeToken)) == 1
    failures = [r for r in caplog.records if r.getMessage() == "mail delivery failed"]
    assert failures and failures[0].user_id == user.id and "127.0.0.1" in failures[0].error

    session = (await login(auth)).session_token
    err = await rpc_error(auth.accounts.ResendVerification(
        accounts_pb2.ResendVerificationRequest(session_token=session)))
    assert err.code() == grpc.StatusCode.UNAVAILABLE and "could not be sent" in err.details()

    # Adding an address still adds it; the mail can be re-sent later.
    reply = await auth.accounts.AddEmail(accounts_pb2.AddEmailRequest(session_token=session, email="b@example.org"))
    assert [e.address for e in reply.emails] == ["alice@example.org", "b@example.org"]
    # Reset requests keep their single answer.
    await auth.accounts.RequestPasswordReset(accounts_pb2.RequestPasswordResetRequest(username_or_email="alice"))
    await auth.running.app.accounts.close()
    for record in caplog.records:
        assert PASSWORD not in record.getMessage() and session not in repr(vars(record))
        assert "token=" not in repr(vars(record))
