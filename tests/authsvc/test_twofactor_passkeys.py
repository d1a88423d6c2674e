"""Passkeys over real gRPC, played by the software authenticator: registration as a resident key
with user verification, passwordless login (no allowCredentials, UV required, the session records
"passkey"), and the refusals: a replayed challenge (100 finishes sent at once), no user
verification, a plain security key, a missing or foreign user handle."""

from __future__ import annotations

import asyncio
import collections
import json

import grpc
from sqlalchemy import select

from authsvc.accounts.models import Session
from gatehouse.auth.v1 import twofactor_pb2
from tests.authsvc.softauthn import SoftAuthenticator
from tests.authsvc.test_twofactor_attack import another_writer, outcome
from tests.authsvc.twofactor_support import client, enrol_key, events, make_user, password_login, rpc_error


async def enrol_passkey(auth, session: str, key: SoftAuthenticator, label: str = "laptop", **bend):
    begin = await auth.twofactor.BeginWebAuthnRegistration(twofactor_pb2.BeginWebAuthnRegistrationRequest(
        session_token=session, passkey=True))
    return await auth.twofactor.CompleteWebAuthnRegistration(twofactor_pb2.CompleteWebAuthnRegistrationRequest(
        session_token=session, label=label, credential_json=key.create(begin.options_json, **bend), client=client(),
        passkey=True))


async def begin_passkey(auth) -> str:
    reply = await auth.twofactor.BeginPasskeyLogin(twofactor_pb2.BeginPasskeyLoginRequest(client=client()))
    return reply.options_json


def finish_passkey(auth, assertion: str, ip: str = "192.0.2.10"):
    return auth.twofactor.CompletePasskeyLogin(twofactor_pb2.CompletePasskeyLoginRequest(
        assertion_json=assertion, client=client(ip)))


async def test_a_passkey_registers_as_a_resident_key_and_signs_in_without_a_password(auth):
    session = await make_user(auth, "alice")
    begin = await auth.twofactor.BeginWebAuthnRegistration(twofactor_pb2.BeginWebAuthnRegistrationRequest(
        session_token=session, passkey=True))
    selection = json.loads(begin.options_json)["authenticatorSelection"]
    assert selection["residentKey"] == "required" and selection["userVerification"] == "required"
    key = SoftAuthenticator()
    done = await auth.twofactor.CompleteWebAuthnRegistration(twofactor_pb2.CompleteWebAuthnRegistrationRequest(
        session_token=session, label="laptop", credential_json=key.create(begin.options_json), client=client(),
        passkey=True))
    assert done.key.passkey and len(done.recovery_codes) == 8
    # It counts as a second factor: the password alone no longer signs in.
    assert (await password_login(auth, "alice")).second_factor_required

    options = json.loads(await begin_passkey(auth))
    assert "allowCredentials" not in options or options["allowCredentials"] == []
    assert options["userVerification"] == "required" and options["rpId"] == "localhost"
    login = await finish_passkey(auth, key.get(json.dumps(options)))
    assert login.session_token and login.user.username == "alice"
    async with auth.running.app.db() as s:
        methods = set(await s.scalars(select(Session.auth_method).where(Session.user_id == login.user.id)))
    assert methods == {"password", "passkey"}
    found = [(e.tag, dict(e.details)) for e in await events(auth, username="alice")]
    assert ("account:two_factor:method_added", {"method": "passkey", "label": "laptop"}) in found
    assert found[-1] == ("account:login:success", {"method": "passkey"})


async def test_a_passkey_registration_without_user_verification_is_refused(auth):
    session = await make_user(auth, "bob")
    err = await rpc_error(enrol_passkey(auth, session, SoftAuthenticator(), user_verified=False))
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT and "verify you" in err.details()


async def test_a_passkey_login_without_user_verification_is_refused_and_recorded(auth):
    key = SoftAuthenticator()
    await enrol_passkey(auth, await make_user(auth, "carol"), key)
    err = await rpc_error(finish_passkey(auth, key.get(await begin_passkey(auth), user_verified=False)))
    assert err.code() is grpc.StatusCode.UNAUTHENTICATED and "verify you" in err.details()
    failures = await events(auth, username="carol", prefix="account:login:failure")
    assert [dict(e.details) for e in failures] == [{"reason": "webauthn_no_user_verification", "method": "passkey"}]


async def test_a_plain_security_key_and_a_foreign_or_missing_user_handle_cannot_sign_in_alone(auth):
    plain, passkey = SoftAuthenticator(), SoftAuthenticator()
    session = await make_user(auth, "dave")
    await enrol_key(auth, session, plain, label="yubikey")
    await enrol_passkey(auth, session, passkey)
    err = await rpc_error(finish_passkey(auth, plain.get(await begin_passkey(auth))))
    assert err.code() is grpc.StatusCode.UNAUTHENTICATED and "not registered here" in err.details()
    err = await rpc_error(finish_passkey(auth, passkey.get(await begin_passkey(auth), user_handle=b"\x01" * 16)))
    assert err.code() is grpc.StatusCode.UNAUTHENTICATED and "another account" in err.details()
    passkey.user_handle = None
    err = await rpc_error(finish_passkey(auth, passkey.get(await begin_passkey(auth))))
    assert err.code() is grpc.StatusCode.UNAUTHENTICATED and "which account" in err.details()


async def test_one_challenge_signs_in_once_under_100_parallel_finishes(auth):
    key = SoftAuthenticator()
    await enrol_passkey(auth, await make_user(auth, "erin"), key)
    assertion = key.get(await begin_passkey(auth))
    async with another_writer(auth):
        tasks = [asyncio.ensure_future(outcome(finish_passkey(auth, assertion, ip=f"198.51.100.{i}")))
                 for i in range(100)]
    answers = collections.Counter(await asyncio.gather(*tasks))
    assert answers[grpc.StatusCode.OK] == 1
    assert set(answers) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED}
    async with auth.running.app.db() as s:
        passkey_sessions = list(await s.scalars(select(Session.id).where(Session.auth_method == "passkey")))
    assert len(passkey_sessions) == 1
    # And later, the used challenge stays used.
    err = await rpc_error(finish_passkey(auth, assertion, ip="203.0.113.9"))
    assert err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED)


async def test_an_expired_or_unissued_challenge_is_refused(auth):
    key = SoftAuthenticator()
    await enrol_passkey(auth, await make_user(auth, "frank"), key)
    options = await begin_passkey(auth)
    auth.clock.advance(auth.settings.pending_login_seconds + 1)
    err = await rpc_error(finish_passkey(auth, key.get(options)))
    assert err.code() is grpc.StatusCode.UNAUTHENTICATED and "expired" in err.details()
    err = await rpc_error(finish_passkey(auth, key.get(options, challenge="A" * 43)))
    assert err.code() is grpc.StatusCode.UNAUTHENTICATED and "did not issue" in err.details()


async def test_passkey_logins_started_from_one_network_are_limited(auth):
    limit = auth.running.app.twofactor.config.passkey_begin_ip.limit
    for _ in range(limit):
        await begin_passkey(auth)
    err = await rpc_error(begin_passkey(auth))
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "passkey sign-ins" in err.details()
