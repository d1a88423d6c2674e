"""The seed's two-factor workflows through the whole system, each checked in the user's log as the
audit service serves it, and in no one else's: TOTP add/disable/remove, WebAuthn add/remove, and
several second factors with a login by each."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio

from gatehouse.auth.v1 import accounts_pb2, twofactor_pb2
from tests.authsvc.softauthn import SoftAuthenticator
from tests.e2e.journeys import assert_own_events, assert_untouched, rpc_error
from tests.system import Person, System, client

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bystander(system) -> Person:
    return await system.person("by")


async def pending(system: System, person: Person, ip: str) -> accounts_pb2.LoginResponse:
    reply = await system.login(person, ip=ip)
    assert reply.second_factor_required and reply.pending_login_token and not reply.session_token
    return reply


async def complete(system: System, token: str, ip: str, **proof) -> twofactor_pb2.CompleteLoginResponse:
    return await system.twofactor.CompleteLogin(twofactor_pb2.CompleteLoginRequest(
        pending_login_token=token, client=client(ip), **proof))


async def enrol_totp(system: System, session: str, ip: str) -> tuple[str, list[str]]:
    setup = await system.twofactor.BeginTotpSetup(twofactor_pb2.BeginTotpSetupRequest(
        session_token=session, client=client(ip)))
    seed = setup.secret
    done = await system.twofactor.ConfirmTotpSetup(twofactor_pb2.ConfirmTotpSetupRequest(
        session_token=session, code=system.totp(seed), client=client(ip)))
    return seed, list(done.recovery_codes)


async def enrol_key(system: System, session: str, label: str, ip: str):
    key = SoftAuthenticator(origin=system.public_url)
    begin = await system.twofactor.BeginWebAuthnRegistration(twofactor_pb2.BeginWebAuthnRegistrationRequest(
        session_token=session, client=client(ip)))
    reply = await system.twofactor.CompleteWebAuthnRegistration(twofactor_pb2.CompleteWebAuthnRegistrationRequest(
        session_token=session, label=label, credential_json=key.create(begin.options_json), client=client(ip)))
    return key, reply


async def key_login(system: System, person: Person, key: SoftAuthenticator, ip: str):
    reply = await pending(system, person, ip)
    options = await system.twofactor.BeginWebAuthnLogin(twofactor_pb2.BeginWebAuthnLoginRequest(
        pending_login_token=reply.pending_login_token, client=client(ip)))
    return await complete(system, reply.pending_login_token, ip, webauthn_assertion_json=key.get(options.options_json))


def summary(log, since_tag: str = "account:login:success") -> list[tuple[str, dict]]:
    """The user's log oldest first, from the first 2FA event on, as (tag, details)."""
    oldest_first = list(reversed(log))
    start = next(i for i, e in enumerate(oldest_first) if e.tag.startswith("account:two_factor:"))
    return [(e.tag, dict(e.details)) for e in oldest_first[start:]]


async def test_add_disable_and_remove_totp(system, bystander):
    """Seed: "Add, disable, and remove 2FA token using TOTP: check that the user log lists the events"."""
    ip = "203.0.113.10"
    person = await system.person("totp")
    session = await system.session(person, ip=ip)
    seed, codes = await enrol_totp(system, session, ip)
    assert len(codes) == 8
    system.clock.advance(30)  # the next code (the setup code's step is spent)
    login = await pending(system, person, ip)
    assert list(login.second_factor_methods) == ["totp", "recovery_code"]
    good = system.totp(seed)
    refused = await rpc_error(complete(system, login.pending_login_token, ip, totp_code=str(
        (int(good) + 500_000) % 1_000_000).zfill(6)))
    assert refused.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT)
    done = await complete(system, login.pending_login_token, ip, totp_code=good)
    assert done.method == "totp" and done.user.two_factor_enabled
    removed = await system.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(
        session_token=done.session_token, password=person.password, client=client(ip)))
    assert not removed.two_factor_enabled
    assert (await system.login(person, ip=ip)).session_token  # a password is enough again

    await system.wait_for_user_event(person.user_id, "account:two_factor:method_removed")
    await system.wait_for_user_event(person.user_id, "account:login:success", count=3)
    log = await system.user_events(person.user_id)
    assert summary(log) == [
        ("account:two_factor:method_added", {"method": "totp"}),
        ("account:recovery_codes:generated", {"count": "8"}),
        ("account:login:failure", {"method": "totp", "reason": "totp_invalid"}),
        ("account:login:success", {"method": "totp"}),
        ("account:two_factor:method_removed", {"method": "totp"}),
        ("account:login:success", {"method": "password"}),
    ]
    assert all(e.ip_address == ip for e in log if e.tag != "account:create")
    assert seed not in str(log) and not any(c in str(log) for c in codes) and good not in str(log)
    await assert_own_events(system, person.user_id, log)
    await assert_untouched(system, bystander, log)


async def test_add_and_remove_webauthn(system, bystander):
    """Seed: "Add, disable, and remove 2FA token using U2F (WebAuthn): check that the user log lists the events"."""
    ip = "203.0.113.20"
    person = await system.person("key")
    session = await system.session(person, ip=ip)
    key, added = await enrol_key(system, session, "Titan", ip)
    assert added.key.label == "Titan" and len(added.recovery_codes) == 8
    await system.twofactor.RenameWebAuthnKey(twofactor_pb2.RenameWebAuthnKeyRequest(
        session_token=session, key_id=added.key.id, label="Titan (travel)", client=client(ip)))
    done = await key_login(system, person, key, ip)
    assert done.method == "webauthn"
    removed = await system.twofactor.RemoveWebAuthnKey(twofactor_pb2.RemoveWebAuthnKeyRequest(
        session_token=done.session_token, key_id=added.key.id, password=person.password, client=client(ip)))
    assert not removed.two_factor_enabled
    assert (await system.login(person, ip=ip)).session_token

    await system.wait_for_user_event(person.user_id, "account:two_factor:method_removed")
    await system.wait_for_user_event(person.user_id, "account:login:success", count=3)
    log = await system.user_events(person.user_id)
    assert summary(log) == [
        ("account:two_factor:method_added", {"method": "webauthn", "label": "Titan"}),
        ("account:recovery_codes:generated", {"count": "8"}),
        ("account:two_factor:method_renamed", {"method": "webauthn", "label": "Titan (travel)",
                                               "previous_label": "Titan"}),
        ("account:login:success", {"method": "webauthn"}),
        ("account:two_factor:method_removed", {"method": "webauthn", "label": "Titan (travel)"}),
        ("account:login:success", {"method": "password"}),
    ]
    await assert_own_events(system, person.user_id, log)
    await assert_untouched(system, bystander, log)


async def test_several_second_factors_and_a_login_with_each(system, bystander):
    """Seed: "Set multiple 2FA tokens and login: check that the user log lists the events"."""
    ip = "203.0.113.30"
    person = await system.person("multi")
    session = await system.session(person, ip=ip)
    seed, codes = await enrol_totp(system, session, ip)
    keys = {}
    for label in ("YubiKey", "SoloKey"):
        keys[label], reply = await enrol_key(system, session, label, ip)
        assert not reply.recovery_codes  # only the first factor brings recovery codes
    status = await system.twofactor.GetTwoFactorStatus(twofactor_pb2.GetTwoFactorStatusRequest(session_token=session))
    assert list(status.methods) == ["totp", "webauthn", "recovery_code"]

    system.clock.advance(30)
    login = await pending(system, person, ip)
    assert (await complete(system, login.pending_login_token, ip, totp_code=system.totp(seed))).method == "totp"
    for label in ("SoloKey", "YubiKey"):
        assert (await key_login(system, person, keys[label], ip)).method == "webauthn"
    login = await pending(system, person, ip)
    recovered = await complete(system, login.pending_login_token, ip, recovery_code=codes[3])
    assert recovered.method == "recovery_code" and recovered.recovery_codes_remaining == 7
    login = await pending(system, person, ip)
    reused = await rpc_error(complete(system, login.pending_login_token, ip, recovery_code=codes[3]))
    assert reused.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT)

    await system.wait_for_user_event(person.user_id, "account:login:failure")
    log = await system.user_events(person.user_id)
    assert summary(log)[:9] == [
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
    assert summary(log)[9][0] == "account:login:failure" and summary(log)[9][1]["method"] == "recovery_code"
    assert not any(code in str(log) for code in codes)
    await assert_own_events(system, person.user_id, log)
    await assert_untouched(system, bystander, log)
