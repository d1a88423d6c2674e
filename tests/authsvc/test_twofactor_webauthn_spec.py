"""Security keys against what WebAuthn L3 asks of a relying party beyond fido2's checks, over real
gRPC with a software authenticator: the backup flags (§6.1), only offered algorithms registered,
the credential id outside the attestation equal to the attested one, and each challenge used
once when a hundred answers to it arrive together."""

from __future__ import annotations

import asyncio
import json
import struct

import grpc
import pytest
from sqlalchemy import update

from authsvc.twofactor.models import WebAuthnCredential
from gatehouse.auth.v1 import twofactor_pb2
from tests.authsvc.softauthn import BE, BS, RS1, SoftAuthenticator, b64url
from tests.authsvc.test_twofactor_webauthn import begin_login, begin_registration, finish_registration
from tests.authsvc.twofactor_support import (
    complete,
    enrol_key,
    events,
    key_login,
    make_user,
    password_login,
    pending_login,
    rpc_error,
)


async def key_count(auth, session: str) -> int:
    status = await auth.twofactor.GetTwoFactorStatus(twofactor_pb2.GetTwoFactorStatusRequest(session_token=session))
    return len(status.webauthn_keys)


async def test_backed_up_but_not_backup_eligible_is_refused_at_registration(auth):
    session = await make_user(auth, "alice")
    err = await rpc_error(finish_registration(auth, session, SoftAuthenticator().create(
        await begin_registration(auth, session), flags=BS)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "backed up" in err.details(), err.details()
    assert await key_count(auth, session) == 0
    # Eligible keys are fine whether or not they are backed up now (a synced passkey; a new one).
    for label, flags in (("synced", BE | BS), ("eligible", BE)):
        done = await finish_registration(auth, session, SoftAuthenticator().create(
            await begin_registration(auth, session), flags=flags), label=label)
        assert done.key.label == label
    assert await key_count(auth, session) == 2


async def test_backed_up_but_not_backup_eligible_is_refused_at_login(auth):
    session = await make_user(auth, "bob")
    key = SoftAuthenticator()
    await enrol_key(auth, session, key)
    pending = await pending_login(auth, "bob")
    options = await begin_login(auth, pending.pending_login_token)
    err = await rpc_error(complete(auth, pending.pending_login_token,
                                   webauthn_assertion_json=key.get(options, flags=BS)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "backed up" in err.details(), err.details()
    assert await events(auth, username="bob", prefix="account:login:failure") == []
    # The refusal neither used up the challenge nor the pending login: the key's proper answer works.
    reply = await complete(auth, pending.pending_login_token, webauthn_assertion_json=key.get(options))
    assert reply.session_token and reply.method == "webauthn"


@pytest.mark.parametrize("algorithm", [RS1, -999])
async def test_only_offered_algorithms_are_registered(auth, algorithm):
    session = await make_user(auth, "carol")
    options = await begin_registration(auth, session)
    offered = {p["alg"] for p in json.loads(options)["pubKeyCredParams"]}
    assert algorithm not in offered and -7 in offered
    key = SoftAuthenticator(algorithm=algorithm)
    err = await rpc_error(finish_registration(auth, session, key.create(options)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "did not offer" in err.details(), err.details()
    assert await key_count(auth, session) == 0
    login = await password_login(auth, "carol")
    assert login.session_token and not login.second_factor_required  # no second factor was added


async def test_a_key_stored_with_an_algorithm_not_offered_does_not_log_in(auth):
    """A key registered before the algorithm check (seeded as such in the table) logs in no more."""
    session = await make_user(auth, "carl")
    key = SoftAuthenticator()
    await enrol_key(auth, session, key)
    legacy = SoftAuthenticator(algorithm=RS1)
    legacy.credential_id, legacy.user_handle = key.credential_id, key.user_handle
    async with auth.running.app.db() as s, s.begin():
        await s.execute(update(WebAuthnCredential).values(credential_data=bytes(16) + struct.pack(
            ">H", len(key.credential_id)) + key.credential_id + legacy._cose_key()))
    err = await rpc_error(key_login(auth, "carl", legacy))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "does not accept" in err.details(), err.details()
    failure = (await events(auth, username="carl", prefix="account:login:failure"))[-1]
    assert failure.details["reason"] == "webauthn_algorithm_not_offered"


async def test_the_credential_named_outside_must_be_the_attested_one(auth):
    session = await make_user(auth, "dave")
    key = SoftAuthenticator()
    # rawId (and id, consistently) name another credential than the attestation's.
    other = b"\x55" * 32
    err = await rpc_error(finish_registration(auth, session, key.create(await begin_registration(auth, session),
                                                                        raw_id=other)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "another credential" in err.details(), err.details()
    # id disagreeing with rawId, or missing.
    for id_ in (b64url(other), ""):
        err = await rpc_error(finish_registration(auth, session, key.create(await begin_registration(auth, session),
                                                                            id_=id_)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, id_
    assert await key_count(auth, session) == 0
    await enrol_key(auth, session, key)
    for id_ in (b64url(other), ""):
        err = await rpc_error(key_login(auth, "dave", key, id_=id_))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, id_
    assert (await key_login(auth, "dave", key)).session_token


async def test_a_registration_challenge_is_used_once_by_a_hundred_parallel_answers(auth):
    session = await make_user(auth, "erin")
    options = await begin_registration(auth, session)
    answers = [SoftAuthenticator().create(options) for _ in range(100)]
    results = await asyncio.gather(*(finish_registration(auth, session, a, label=f"key {i}")
                                     for i, a in enumerate(answers)), return_exceptions=True)
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(done) == 1, [getattr(r, "details", lambda: r)() for r in refused[:3]]
    assert all(isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.INVALID_ARGUMENT
               and "did not issue" in r.details() for r in refused), {str(r) for r in refused}
    assert await key_count(auth, session) == 1
    added = await events(auth, username="erin", prefix="account:two_factor:method_added")
    assert len(added) == 1


async def test_a_login_challenge_is_used_once_by_a_hundred_parallel_answers(auth):
    session = await make_user(auth, "frank")
    key = SoftAuthenticator(counter_step=0)  # no counter: only the challenge and pending login stop replays
    await enrol_key(auth, session, key)
    pending = await pending_login(auth, "frank")
    options = await begin_login(auth, pending.pending_login_token)
    assertion = key.get(options)
    results = await asyncio.gather(*(complete(auth, pending.pending_login_token, webauthn_assertion_json=assertion)
                                     for _ in range(100)), return_exceptions=True)
    done = [r for r in results if not isinstance(r, BaseException)]
    assert len(done) == 1 and done[0].session_token
    assert all(isinstance(r, grpc.aio.AioRpcError) and r.code() in (
        grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED) for r in results if r not in done)
    success = await events(auth, username="frank", prefix="account:login:success")
    assert [e.details["method"] for e in success].count("webauthn") == 1
