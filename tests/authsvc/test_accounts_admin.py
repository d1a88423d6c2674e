"""The operator account actions the AdminService calls (exercised through the domain service of a
running authsvc; the effects are checked over gRPC)."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import select

from authsvc.accounts.models import User
from authsvc.errors import AlreadyExists, InvalidArgument, NotFound
from gatehouse.auth.v1 import accounts_pb2
from gatehouse.events.v1 import event_pb2
from gatehouse.infra.outbox import ActorRef
from tests.authsvc.accounts_support import PASSWORD, events, login, register, rpc_error

OPS = ActorRef.operator("ops-alice")


@pytest.fixture
def accounts(auth):
    return auth.running.app.accounts


async def validate(auth, token):
    return await auth.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(session_token=token))


async def test_disable_stops_sessions_and_logins_and_enable_restores_login(auth, accounts):
    await register(auth, "alice")
    sessions = [(await login(auth, ua=f"d{i}")).session_token for i in range(2)]
    user = await accounts.set_active("alice", False, reason="compromised laptop", actor=OPS)
    assert not user.is_active and user.disabled_reason == "compromised laptop"
    for token in sessions:
        err = await rpc_error(validate(auth, token))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    # The right password says "disabled"; a wrong one says what it says for anyone.
    err = await rpc_error(login(auth, "alice", PASSWORD))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "disabled" in err.details()
    err = await rpc_error(login(auth, "alice", "wrong password"))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    [event] = await events(auth, "account:disable")
    assert event.actor.kind == event_pb2.Actor.OPERATOR and event.actor.username == "ops-alice"
    assert event.subject_username == "alice"
    assert event.details["reason"] == "compromised laptop" and event.details["sessions_ended"] == "2"
    # Disabling again changes nothing and logs nothing.
    await accounts.set_active("alice", False, actor=OPS)
    assert len(await events(auth, "account:disable")) == 1

    user = await accounts.set_active("ALICE", True, actor=OPS)
    assert user.is_active and user.disabled_reason == ""
    [event] = await events(auth, "account:enable")
    assert event.subject_user_id == user.id
    for token in sessions:  # old sessions stay ended
        assert (await rpc_error(validate(auth, token))).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await login(auth)).session_token


async def test_a_session_resolved_while_disabled_is_refused(auth, accounts):
    """authenticate_session refuses a disabled user even if a session row were still live."""
    await register(auth, "alice")
    token = (await login(auth)).session_token
    async with auth.running.app.db() as s, s.begin():
        user = await s.scalar(select(User).where(User.username == "alice"))
        user.is_active = False  # as if disabled without the session sweep
    err = await rpc_error(validate(auth, token))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_set_admin_and_get_user(auth, accounts):
    await register(auth, "alice")
    user = await accounts.set_admin("alice", True, actor=OPS)
    assert user.is_admin
    assert (await accounts.get_user("Alice")).is_admin
    await accounts.set_admin("alice", False, actor=OPS)
    assert not (await accounts.get_user("alice")).is_admin
    assert [e.tag for e in await events(auth) if e.tag.startswith("account:admin")] == [
        "account:admin:grant", "account:admin:revoke"]
    for name in ("nobody", "", "bad name\x00"):
        with pytest.raises(NotFound):
            await accounts.get_user(name)
        with pytest.raises(NotFound):
            await accounts.set_active(name, False, actor=OPS)
        with pytest.raises(NotFound):
            await accounts.set_admin(name, True, actor=OPS)
    with pytest.raises(InvalidArgument):
        await accounts.set_active("alice", False, reason="x" * 201, actor=OPS)


async def test_create_user_by_operator(auth, accounts):
    user = await accounts.create_user("carol", "carol@example.org", None, name="Carol", email_verified=True,
                                      is_admin=True, actor=OPS)
    assert user.is_admin and user.emails[0].verified and user.password_hash is None
    [event] = await events(auth, "account:create")
    assert event.actor.kind == event_pb2.Actor.OPERATOR and event.details["email_verified"] == "True"
    # No password yet: every login fails the ordinary way.
    err = await rpc_error(login(auth, "carol", "anything at all"))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    [failure] = await events(auth, "account:login:failure")
    assert failure.details["reason"] == "no_password"
    with pytest.raises(AlreadyExists):
        await accounts.create_user("Carol", "other@example.org", None, actor=OPS)
    with pytest.raises(InvalidArgument):
        await accounts.create_user("dave", "dave@example.org", "short", actor=OPS)
    dave = await accounts.create_user("dave", "dave@example.org", PASSWORD, actor=OPS)
    assert not dave.emails[0].verified
    assert (await login(auth, "dave")).user.id == dave.id
