"""Security keys (WebAuthn) over real gRPC, played by a software authenticator: registration and
login, and every way a response must be refused (origin, RP id, type, challenge reuse or theft,
counter going backwards, missing user presence or verification)."""

from __future__ import annotations

import json

import grpc
import pytest
from sqlalchemy import select

from authsvc.twofactor.models import WebAuthnCredential
from gatehouse.auth.v1 import twofactor_pb2
from tests.authsvc.softauthn import SoftAuthenticator, b64url
from tests.authsvc.twofactor_support import (
    PASSWORD,
    client,
    complete,
    enrol_key,
    events,
    key_login,
    make_user,
    password_login,
    pending_login,
    rpc_error,
    tags,
)


async def begin_registration(auth, session: str) -> str:
    reply = await auth.twofactor.BeginWebAuthnRegistration(twofactor_pb2.BeginWebAuthnRegistrationRequest(
        session_token=session))
    return reply.options_json


async def finish_registration(auth, session: str, credential_json: str, label: str = "key"):
    return await auth.twofactor.CompleteWebAuthnRegistration(twofactor_pb2.CompleteWebAuthnRegistrationRequest(
        session_token=session, label=label, credential_json=credential_json, client=client()))


async def begin_login(auth, pending_token: str) -> str:
    reply = await auth.twofactor.BeginWebAuthnLogin(twofactor_pb2.BeginWebAuthnLoginRequest(
        pending_login_token=pending_token))
    return reply.options_json


async def test_registration_options_are_the_w3c_json_form_and_a_key_registers(auth):
    session = await make_user(auth, "alice")
    options = json.loads(await begin_registration(auth, session))
    assert options["rp"] == {"name": "Gatehouse", "id": "localhost"}
    assert options["user"]["name"] == "alice" and options["user"]["displayName"] == "alice"
    assert len(options["challenge"]) >= 43  # 32 random bytes, base64url
    assert {"type": "public-key", "alg": -7} in options["pubKeyCredParams"]
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["excludeCredentials"] == [] and options["timeout"] == 300000

    key = SoftAuthenticator()
    done = await finish_registration(auth, session, key.create(json.dumps(options)), label="YubiKey 5")
    assert done.key.label == "YubiKey 5" and done.key.id and not done.key.HasField("last_used_at")
    assert len(done.recovery_codes) == 8
    again = json.loads(await begin_registration(auth, session))
    assert again["excludeCredentials"] == [{"type": "public-key", "id": b64url(key.credential_id)}]
    added = await events(auth, username="alice", prefix="account:two_factor")
    assert [(e.tag, dict(e.details)) for e in added] == [
        ("account:two_factor:method_added", {"method": "webauthn", "label": "YubiKey 5"})]
    login = await password_login(auth, "alice")
    assert list(login.second_factor_methods) == ["webauthn", "recovery_code"]


@pytest.mark.parametrize("bend, reason", [
    ({"origin": "https://evil.example"}, "web address this site does not accept"),
    ({"rp_id": "evil.example"}, "signed for another site"),
    ({"type_": "webauthn.get"}, "another kind of request"),
    ({"challenge": b64url(b"\x00" * 32)}, "did not issue"),
    ({"user_present": False}, "confirm that you were present"),
])
async def test_bad_registrations_are_refused(auth, bend, reason):
    session = await make_user(auth, "bob")
    key = SoftAuthenticator()
    err = await rpc_error(finish_registration(auth, session, key.create(await begin_registration(auth, session),
                                                                         **bend)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in err.details(), err.details()
    status = await auth.twofactor.GetTwoFactorStatus(twofactor_pb2.GetTwoFactorStatusRequest(session_token=session))
    assert not status.webauthn_keys and not status.two_factor_enabled


async def test_registration_challenges_are_single_use_and_bound_to_user_and_ceremony(auth):
    alice = await make_user(auth, "alice")
    bob = await make_user(auth, "bob")
    key = SoftAuthenticator()
    options = await begin_registration(auth, alice)
    # Bob cannot complete with a challenge issued to Alice (and does not burn it for her).
    stolen = await rpc_error(finish_registration(auth, bob, key.create(options)))
    assert stolen.code() == grpc.StatusCode.INVALID_ARGUMENT and "did not issue" in stolen.details()
    await finish_registration(auth, alice, key.create(options), label="first")
    reused = await rpc_error(finish_registration(auth, alice, SoftAuthenticator().create(options), label="second"))
    assert "did not issue" in reused.details()
    # A login challenge cannot complete a registration.
    pending = await pending_login(auth, "alice")
    login_options = json.loads(await begin_login(auth, pending.pending_login_token))
    cross = await rpc_error(finish_registration(
        auth, alice, SoftAuthenticator().create(options, challenge=login_options["challenge"]), label="third"))
    assert "did not issue" in cross.details()
    # Expired.
    late = await begin_registration(auth, alice)
    auth.clock.advance(301)
    expired = await rpc_error(finish_registration(auth, alice, SoftAuthenticator().create(late), label="late"))
    assert "expired" in expired.details()


async def test_labels_unique_per_user_and_credential_ids_registered_once(auth):
    alice = await make_user(auth, "alice")
    bob = await make_user(auth, "bob")
    first = SoftAuthenticator()
    await enrol_key(auth, alice, first, "Desk key")
    dup = await rpc_error(enrol_key(auth, alice, SoftAuthenticator(), "Desk key"))
    assert dup.code() == grpc.StatusCode.ALREADY_EXISTS
    await enrol_key(auth, bob, SoftAuthenticator(), "Desk key")  # another user may use the same name
    too_long = await rpc_error(enrol_key(auth, alice, SoftAuthenticator(), "x" * 65))
    assert too_long.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await enrol_key(auth, alice, SoftAuthenticator(), "y" * 64)).key.label == "y" * 64
    blank = await rpc_error(enrol_key(auth, alice, SoftAuthenticator(), "   "))
    assert blank.code() == grpc.StatusCode.INVALID_ARGUMENT
    options = await begin_registration(auth, bob)
    again = await rpc_error(finish_registration(
        auth, bob, SoftAuthenticator().create(options, credential_id=first.credential_id), "Copy"))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_rename_and_remove_keys(auth):
    session = await make_user(auth, "carol")
    a, b = SoftAuthenticator(), SoftAuthenticator()
    key_a = (await enrol_key(auth, session, a, "A")).key
    key_b = (await enrol_key(auth, session, b, "B")).key
    renamed = await auth.twofactor.RenameWebAuthnKey(twofactor_pb2.RenameWebAuthnKeyRequest(
        session_token=session, key_id=key_a.id, label="Keyring"))
    assert renamed.key.label == "Keyring"
    taken = await rpc_error(auth.twofactor.RenameWebAuthnKey(twofactor_pb2.RenameWebAuthnKeyRequest(
        session_token=session, key_id=key_a.id, label="B")))
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    other = await make_user(auth, "mallory")
    foreign = await rpc_error(auth.twofactor.RemoveWebAuthnKey(twofactor_pb2.RemoveWebAuthnKeyRequest(
        session_token=other, key_id=key_a.id, password=PASSWORD)))
    assert foreign.code() == grpc.StatusCode.NOT_FOUND
    assert (await auth.twofactor.RemoveWebAuthnKey(twofactor_pb2.RemoveWebAuthnKeyRequest(
        session_token=session, key_id=key_b.id, password=PASSWORD))).two_factor_enabled
    assert (await key_login(auth, "carol", a)).session_token
    assert not (await auth.twofactor.RemoveWebAuthnKey(twofactor_pb2.RemoveWebAuthnKeyRequest(
        session_token=session, key_id=key_a.id, password=PASSWORD))).two_factor_enabled
    removed = await events(auth, username="carol", prefix="account:two_factor:method_removed")
    assert [dict(e.details) for e in removed] == [{"method": "webauthn", "label": "B"},
                                                  {"method": "webauthn", "label": "Keyring"}]


async def test_login_with_a_key_records_last_use_and_counter(auth):
    session = await make_user(auth, "dave")
    key = SoftAuthenticator()
    await enrol_key(auth, session, key, "Key")
    pending = await pending_login(auth, "dave")
    options = json.loads(await begin_login(auth, pending.pending_login_token))
    assert options["rpId"] == "localhost" and options["userVerification"] == "preferred"
    assert options["allowCredentials"] == [{"type": "public-key", "id": b64url(key.credential_id)}]
    reply = await complete(auth, pending.pending_login_token, webauthn_assertion_json=key.get(json.dumps(options)))
    assert reply.session_token and reply.method == "webauthn" and reply.user.username == "dave"
    status = await auth.twofactor.GetTwoFactorStatus(twofactor_pb2.GetTwoFactorStatusRequest(
        session_token=reply.session_token))
    assert status.webauthn_keys[0].HasField("last_used_at")
    async with auth.running.app.db() as s:
        assert (await s.scalar(select(WebAuthnCredential.sign_count))) == key.counter == 1
    success = await events(auth, username="dave", prefix="account:login:success")
    assert success[-1].details["method"] == "webauthn"


async def test_keys_without_a_counter_still_work(auth):
    session = await make_user(auth, "erin")
    key = SoftAuthenticator(counter_step=0)
    await enrol_key(auth, session, key)
    for _ in range(2):
        assert (await key_login(auth, "erin", key)).session_token


@pytest.mark.parametrize("bend, reason, fail_reason", [
    ({"origin": "https://evil.example"}, "web address this site does not accept", "webauthn_wrong_origin"),
    ({"rp_id": "evil.example"}, "signed for another site", "webauthn_wrong_rp"),
    ({"type_": "webauthn.create"}, "another kind of request", "webauthn_wrong_type"),
    ({"user_present": False}, "confirm that you were present", "webauthn_no_user_presence"),
    ({"counter": 0}, "counter went backwards", "webauthn_sign_count"),
    ({"user_handle": b"\x01" * 16}, "another account", "webauthn_wrong_user"),
    ({"challenge": b64url(b"\x07" * 32)}, "did not issue", "webauthn_challenge"),
    ({"cross_origin": True}, "embedded in another site", "webauthn_cross_origin"),
])
async def test_bad_assertions_are_refused(auth, bend, reason, fail_reason):
    session = await make_user(auth, "frank")
    key = SoftAuthenticator()
    await enrol_key(auth, session, key)
    assert (await key_login(auth, "frank", key)).session_token  # stored counter is now 1
    err = await rpc_error(key_login(auth, "frank", key, **bend))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and reason in err.details(), err.details()
    failure = (await events(auth, username="frank", prefix="account:login:failure"))[-1]
    assert dict(failure.details) == {"reason": fail_reason, "method": "webauthn"}


async def test_counter_going_backwards_is_refused_and_logged(auth, caplog):
    session = await make_user(auth, "grace")
    key = SoftAuthenticator()
    await enrol_key(auth, session, key)
    key.counter = 10
    assert (await key_login(auth, "grace", key)).session_token
    for presented in (11, 5):
        err = await rpc_error(key_login(auth, "grace", key, counter=presented))
        assert "cloned" in err.details()
    assert any("possible cloned key" in r.getMessage() for r in caplog.records)
    assert (await key_login(auth, "grace", key, counter=12)).session_token


async def test_login_challenges_are_single_use_and_bound_to_the_pending_login(auth):
    session = await make_user(auth, "heidi")
    key = SoftAuthenticator()
    await enrol_key(auth, session, key)
    first = await pending_login(auth, "heidi")
    assertion = key.get(await begin_login(auth, first.pending_login_token))
    second = await pending_login(auth, "heidi")
    await begin_login(auth, second.pending_login_token)
    # An assertion for the first pending login's challenge does not complete the second.
    stolen = await rpc_error(complete(auth, second.pending_login_token, webauthn_assertion_json=assertion))
    assert "did not issue" in stolen.details()
    assert (await complete(auth, first.pending_login_token, webauthn_assertion_json=assertion)).session_token
    third = await pending_login(auth, "heidi")
    replay = await rpc_error(complete(auth, third.pending_login_token, webauthn_assertion_json=assertion))
    assert "did not issue" in replay.details()
    # A challenge of another user's login, signed by that user's key, does not work for Heidi.
    other = await make_user(auth, "ivan")
    other_key = SoftAuthenticator()
    await enrol_key(auth, other, other_key)
    theirs = await pending_login(auth, "ivan")
    foreign = other_key.get(await begin_login(auth, theirs.pending_login_token))
    fourth = await pending_login(auth, "heidi")
    refused = await rpc_error(complete(auth, fourth.pending_login_token, webauthn_assertion_json=foreign))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    # After five minutes the pending login and its challenge are over.
    fifth = await pending_login(auth, "heidi")
    late = key.get(await begin_login(auth, fifth.pending_login_token))
    auth.clock.advance(301)
    expired = await rpc_error(complete(auth, fifth.pending_login_token, webauthn_assertion_json=late))
    assert expired.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in expired.details()
    unknown = SoftAuthenticator()
    unknown.credential_id = key.credential_id + b"x"
    seventh = await pending_login(auth, "heidi")
    options = json.loads(await begin_login(auth, seventh.pending_login_token))
    options["allowCredentials"] = []
    err = await rpc_error(complete(auth, seventh.pending_login_token,
                                   webauthn_assertion_json=unknown.get(json.dumps(options))))
    assert "not registered" in err.details()


async def test_malformed_responses_are_invalid_argument(auth):
    session = await make_user(auth, "judy")
    key = SoftAuthenticator()
    await enrol_key(auth, session, key)
    pending = await pending_login(auth, "judy")
    for junk in ("", "{", "[]", json.dumps({"id": "x"}), json.dumps({"response": {"clientDataJSON": "!!"}})):
        err = await rpc_error(complete(auth, pending.pending_login_token, webauthn_assertion_json=junk))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, junk
        err = await rpc_error(finish_registration(auth, session, junk))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, junk
    assert (await tags(auth, "judy", "account:login:failure")) == []


class TestUserVerificationRequired:
    @pytest.fixture
    def auth_overrides(self):
        return {"webauthn_user_verification": "required"}

    async def test_keys_must_verify_the_user(self, auth):
        session = await make_user(auth, "kate")
        options = json.loads(await begin_registration(auth, session))
        assert options["authenticatorSelection"]["userVerification"] == "required"
        key = SoftAuthenticator()
        err = await rpc_error(finish_registration(auth, session, key.create(json.dumps(options), user_verified=False)))
        assert "PIN or biometrics" in err.details()
        await enrol_key(auth, session, key)
        err = await rpc_error(key_login(auth, "kate", key, user_verified=False))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "PIN or biometrics" in err.details()
        assert (await key_login(auth, "kate", key)).session_token
