"""Passwords refused by their length as sent, before any normalisation, on every path that takes one."""

from __future__ import annotations

import time

import grpc
import pytest

from gatehouse.auth.v1 import accounts_pb2, admin_pb2
from tests.authsvc.accounts_support import PASSWORD, client, login, register, rpc_error


@pytest.fixture
def auth_overrides(smtp_server):
    return {"smtp_url": smtp_server[0]}


@pytest.fixture
def mailbox(smtp_server):
    return smtp_server[1]


# NFKC reorders a run of combining marks by insertion sort: 80 KB of alternating marks keep the
# event loop busy for seconds before a length check on the normalised form could refuse them.
COMBINING = "a" + "\u0301\u0316" * 20_000
HUGE = "ﬁ" * 1_300_000  # 3.9 MB, just under gRPC's 4 MiB message limit


async def quick_refusal(call) -> grpc.aio.AioRpcError:
    started = time.perf_counter()
    err = await rpc_error(call)
    took = time.perf_counter() - started
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert "too long" in err.details() and "4096 bytes" in err.details()
    assert took < 0.5, f"{took:.2f} s"
    return err


async def test_an_oversized_password_is_refused_before_normalising_on_every_path(auth, mailbox):
    await register(auth, "alice")
    session = (await login(auth)).session_token
    await quick_refusal(login(auth, "alice", HUGE))
    password = COMBINING
    await quick_refusal(login(auth, "alice", password))
    await quick_refusal(login(auth, "nobody", password))
    await quick_refusal(auth.accounts.Register(accounts_pb2.RegisterRequest(
        username="bob", email="bob@example.org", password=password)))
    await quick_refusal(auth.accounts.ChangePassword(accounts_pb2.ChangePasswordRequest(
        session_token=session, old_password=PASSWORD, new_password=password)))
    await quick_refusal(auth.accounts.ChangePassword(accounts_pb2.ChangePasswordRequest(
        session_token=session, old_password=password, new_password="a completely new passphrase")))
    await quick_refusal(auth.accounts.Reauthenticate(accounts_pb2.ReauthenticateRequest(
        session_token=session, password=password)))
    await quick_refusal(auth.admin.CreateUser(admin_pb2.AdminCreateUserRequest(
        username="carol", email="carol@example.org", password=password)))
    await auth.accounts.RequestPasswordReset(accounts_pb2.RequestPasswordResetRequest(
        username_or_email="alice", client=client()))
    token = await mailbox.token("alice@example.org", "reset")
    await quick_refusal(auth.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(
        token=token, new_password=password)))
    # Nothing was changed or created, and the link still works.
    await auth.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(token=token, new_password="a fine new one"))
    assert (await login(auth, "alice", "a fine new one")).session_token

