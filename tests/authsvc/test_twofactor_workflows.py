"""The seed's two-factor workflows end to end over gRPC, each checked in the user's events (the
`gatehouse.events.v1.Event` messages in the outbox table, which the audit service will show)."""

from __future__ import annotations

import json

from gatehouse.auth.v1 import accounts_pb2, twofactor_pb2
from gatehouse.events.v1 import event_pb2
from tests.authsvc.softauthn import SoftAuthenticator
from tests.authsvc.twofactor_support import (
    PASSWORD,
    align_clock,
    client,
    code,
    complete,
    events,
    make_user,
    password_login,
    pending_login,
    seed_of,
)

UA = "pytest-2fa/1"


def summary(evts) -> list[tuple[str, dict]]:
    return [(e.tag, {k: v for k, v in e.details.items() if k != "session_id"}) for e in evts]


def assert_attributed(evts, username: str, ip: str = "192.0.2.10") -> None:
    for e in evts:
        assert e.subject_username == username and e.source == "authsvc"
        assert e.ip_address == ip and e.user_agent == UA, e
        assert e.actor.kind in (event_pb2.Actor.USER, event_pb2.Actor.ANONYMOUS)
        assert e.occurred_at.seconds > 0 and e.event_id


async def logout(auth, session: str) -> None:
    await auth.accounts.Logout(accounts_pb2.LogoutRequest(session_token=session, client=client()))


async def test_add_disable_and_remove_totp(auth):
    """Seed: "Add, disable, and remove 2FA token using TOTP: check that the user log lists the events"."""
    align_clock(auth)
    session = await make_user(auth, "alice")
    start = len(await events(auth, username="alice"))
    setup = await auth.twofactor.BeginTotpSetup(twofactor_pb2.BeginTotpSetupRequest(
        session_token=session, client=client()))
    seed = seed_of(setup.provisioning_uri)
    codes = (await auth.twofactor.ConfirmTotpSetup(twofactor_pb2.ConfirmTotpSetupRequest(
        session_token=session, code=code(auth, seed), client=client()))).recovery_codes
    await logout(auth, session)

    auth.clock.advance(30)
    pending = await pending_login(auth, "alice")
    bad = "000000" if code(auth, seed) != "000000" else "999999"
    try:
        await complete(auth, pending.pending_login_token, totp_code=bad)
    except Exception:
        pass
    session = (await complete(auth, pending.pending_login_token, totp_code=code(auth, seed))).session_token

    removed = await auth.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(
        session_token=session, password=PASSWORD, client=client()))
    assert not removed.two_factor_enabled and len(codes) == 8
    assert (await password_login(auth, "alice")).session_token  # 2FA is off again

    log = (await events(auth, username="alice"))[start:]
    assert summary(log) == [
        ("account:two_factor:method_added", {"method": "totp"}),
        ("account:recovery_codes:generated", {"count": "8"}),
        ("account:logout", {}),
        ("account:login:failure", {"reason": "totp_invalid", "method": "totp"}),
        ("account:login:success", {"method": "totp"}),
        ("account:two_factor:method_removed", {"method": "totp"}),
        ("account:login:success", {"method": "password"}),
    ]
    assert_attributed(log, "alice")
    assert log[3].actor.kind == event_pb2.Actor.ANONYMOUS and log[4].actor.username == "alice"


async def test_add_disable_and_remove_webauthn(auth):
    """Seed: "Add, disable, and remove 2FA token using U2F (WebAuthn)"."""
    session = await make_user(auth, "bob")
    start = len(await events(auth, username="bob"))
    key = SoftAuthenticator()
    begin = await auth.twofactor.BeginWebAuthnRegistration(twofactor_pb2.BeginWebAuthnRegistrationRequest(
        session_token=session, client=client()))
    added = await auth.twofactor.CompleteWebAuthnRegistration(twofactor_pb2.CompleteWebAuthnRegistrationRequest(
        session_token=session, label="Titan", credential_json=key.create(begin.options_json), client=client()))
    await auth.twofactor.RenameWebAuthnKey(twofactor_pb2.RenameWebAuthnKeyRequest(
        session_token=session, key_id=added.key.id, label="Titan (travel)", client=client()))
    await logout(auth, session)

    pending = await pending_login(auth, "bob")
    assert list(pending.second_factor_methods) == ["webauthn", "recovery_code"]
    options = await auth.twofactor.BeginWebAuthnLogin(twofactor_pb2.BeginWebAuthnLoginRequest(
        pending_login_token=pending.pending_login_token, client=client()))
    assert json.loads(options.options_json)["allowCredentials"]
    done = await complete(auth, pending.pending_login_token, webauthn_assertion_json=key.get(options.options_json))
    assert done.method == "webauthn" and done.user.two_factor_enabled

    removed = await auth.twofactor.RemoveWebAuthnKey(twofactor_pb2.RemoveWebAuthnKeyRequest(
        session_token=done.session_token, key_id=added.key.id, client=client()))  # fresh login: no password
    assert not removed.two_factor_enabled
    assert (await password_login(auth, "bob")).session_token

    log = (await events(auth, username="bob"))[start:]
    assert summary(log) == [
        ("account:two_factor:method_added", {"method": "webauthn", "label": "Titan"}),
        ("account:recovery_codes:generated", {"count": "8"}),
        ("account:two_factor:method_renamed", {"method": "webauthn", "label": "Titan (travel)",
                                               "previous_label": "Titan"}),
        ("account:logout", {}),
        ("account:login:success", {"method": "webauthn"}),
        ("account:two_factor:method_removed", {"method": "webauthn", "label": "Titan (travel)"}),
        ("account:login:success", {"method": "password"}),
    ]
    assert_attributed(log, "bob")


async def test_set_multiple_second_factors_and_login(auth):
    """Seed: "Set multiple 2FA tokens and login: check that the user log lists the events"."""
    align_clock(auth)
    session = await make_user(auth, "carol")
    start = len(await events(auth, username="carol"))
    setup = await auth.twofactor.BeginTotpSetup(twofactor_pb2.BeginTotpSetupRequest(session_token=session))
    seed = seed_of(setup.provisioning_uri)
    codes = (await auth.twofactor.ConfirmTotpSetup(twofactor_pb2.ConfirmTotpSetupRequest(
        session_token=session, code=code(auth, seed), client=client()))).recovery_codes
    keys = {}
    for label in ("YubiKey", "SoloKey"):
        auth.clock.advance(1)
        keys[label] = SoftAuthenticator()
        begin = await auth.twofactor.BeginWebAuthnRegistration(twofactor_pb2.BeginWebAuthnRegistrationRequest(
            session_token=session))
        reply = await auth.twofactor.CompleteWebAuthnRegistration(twofactor_pb2.CompleteWebAuthnRegistrationRequest(
            session_token=session, label=label, credential_json=keys[label].create(begin.options_json),
            client=client()))
        assert not reply.recovery_codes  # only the first factor brings recovery codes
    status = await auth.twofactor.GetTwoFactorStatus(twofactor_pb2.GetTwoFactorStatusRequest(session_token=session))
    assert list(status.methods) == ["totp", "webauthn", "recovery_code"]
    assert [k.label for k in status.webauthn_keys] == ["YubiKey", "SoloKey"]

    pending = await pending_login(auth, "carol")
    assert list(pending.second_factor_methods) == ["totp", "webauthn", "recovery_code"]
    auth.clock.advance(30)
    assert (await complete(auth, pending.pending_login_token, totp_code=code(auth, seed))).method == "totp"
    for label in ("SoloKey", "YubiKey"):
        pending = await pending_login(auth, "carol")
        options = await auth.twofactor.BeginWebAuthnLogin(twofactor_pb2.BeginWebAuthnLoginRequest(
            pending_login_token=pending.pending_login_token))
        assert len(json.loads(options.options_json)["allowCredentials"]) == 2
        reply = await complete(auth, pending.pending_login_token,
                               webauthn_assertion_json=keys[label].get(options.options_json))
        assert reply.method == "webauthn"
    pending = await pending_login(auth, "carol")
    reply = await complete(auth, pending.pending_login_token, recovery_code=codes[5])
    assert reply.method == "recovery_code" and reply.recovery_codes_remaining == 7

    log = (await events(auth, username="carol"))[start:]
    assert summary(log) == [
        ("account:two_factor:method_added", {"method": "totp"}),
        ("account:recovery_codes:generated", {"count": "8"}),
        ("account:two_factor:method_added", {"method": "webauthn", "label": "YubiKey"}),
        ("account:two_factor:method_added", {"method": "webauthn", "label": "SoloKey"}),
        ("account:login:success", {"method": "totp"}),
        ("account:login:success", {"method": "webauthn"}),
        ("account:login:success", {"method": "webauthn"}),
        ("account:recovery_codes:used", {"remaining": "7"}),
        ("account:login:success", {"method": "recovery_code"}),
    ]
    assert_attributed(log, "carol")
