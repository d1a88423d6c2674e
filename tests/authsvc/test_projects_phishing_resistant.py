"""The per-project policy "phishing-resistant second factor only" over real gRPC: an Owner logged
in with a passkey turns it on; a session that logged in with password + TOTP is then refused the
project's Owner actions, page permission checks and new tokens that can reach it, while the
passkey session keeps them; the switch is an event."""

from __future__ import annotations

import grpc

from gatehouse.auth.v1 import projects_pb2 as P
from tests.authsvc.project_token_factories import create_token, make_project, refused
from tests.authsvc.softauthn import SoftAuthenticator
from tests.authsvc.test_twofactor_passkeys import begin_passkey, enrol_passkey, finish_passkey
from tests.authsvc.twofactor_support import code, complete, enrol_totp, events, make_user, pending_login

REASON = "accepts only logins with a security key or a passkey"


def switch(auth, session: str, project: str, enabled: bool = True):
    return auth.projects.SetPhishingResistantOnly(P.SetPhishingResistantOnlyRequest(
        session_token=session, project_name=project, enabled=enabled))


def check(auth, session: str, project: str):
    return auth.projects.CheckPermission(P.CheckPermissionRequest(
        session_token=session, project_name=project, permission=P.PERMISSION_MANAGE))


async def test_a_totp_session_is_refused_where_a_passkey_session_is_accepted(auth):
    first = await make_user(auth, "alice")
    seed, _ = await enrol_totp(auth, first)
    key = SoftAuthenticator()
    await enrol_passkey(auth, first, key)
    await make_project(auth, "guarded", "alice")
    await make_project(auth, "open", "alice")
    auth.clock.advance(30)  # past the code that confirmed the app
    totp_session = (await complete(auth, (await pending_login(auth, "alice")).pending_login_token,
                                   totp_code=code(auth, seed))).session_token
    passkey_session = (await finish_passkey(auth, key.get(await begin_passkey(auth)))).session_token

    await refused(switch(auth, totp_session, "guarded"), grpc.StatusCode.FAILED_PRECONDITION, "security key or a passkey")
    reply = await switch(auth, passkey_session, "guarded")
    assert reply.project.phishing_resistant_only
    changed = await events(auth, username="alice", prefix="project:phishing_resistant_only")
    assert [e.tag for e in changed] == ["project:phishing_resistant_only:enabled"]

    # The TOTP session: no Owner action, no page action, no token that can reach the project.
    await refused(auth.projects.SetTwoFactorRequired(P.SetTwoFactorRequiredRequest(
        session_token=totp_session, project_name="guarded", required=True)), grpc.StatusCode.PERMISSION_DENIED, REASON)
    denied = await check(auth, totp_session, "guarded")
    assert not denied.allowed and REASON in denied.reason
    await refused(create_token(auth, totp_session, "ci", projects=["guarded"]), grpc.StatusCode.PERMISSION_DENIED,
                  REASON)
    await refused(create_token(auth, totp_session, "everything"), grpc.StatusCode.PERMISSION_DENIED, REASON)
    assert (await create_token(auth, totp_session, "open only", projects=["open"])).token
    assert (await check(auth, totp_session, "open")).allowed

    # The passkey session keeps every one of them.
    assert (await check(auth, passkey_session, "guarded")).allowed
    assert (await create_token(auth, passkey_session, "ci", projects=["guarded"])).token
    assert (await create_token(auth, passkey_session, "everything")).token
    await auth.projects.SetTwoFactorRequired(P.SetTwoFactorRequiredRequest(
        session_token=passkey_session, project_name="guarded", required=True))
    # The policy guards its own switch: only a phishing-resistant session turns it off.
    await refused(switch(auth, totp_session, "guarded", enabled=False), grpc.StatusCode.PERMISSION_DENIED, REASON)
    assert not (await switch(auth, passkey_session, "guarded", enabled=False)).project.phishing_resistant_only
