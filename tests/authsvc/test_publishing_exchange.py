"""The trusted-publishing exchange over gRPC against local OIDC issuers: verification of identity
tokens (forged, expired, wrong audience…), publisher matching, id binding, replay, pending
publishers, and what the minted token may do."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from authsvc.db import new_id
from authsvc.projects.models import Project
from gatehouse.auth.v1 import publishing_pb2
from tests.conftest import TEST_DB
from tests.authsvc.project_token_factories import events, make_project, make_user, refused, verify
from tests.authsvc.publishing_support import (  # noqa: F401  (fixtures)
    AUDIENCE, add_publisher, auth_overrides, claims_of, ghes, github, github_spec, gitlab, gitlab_spec, mint,
    publishing, reason_of,
)

UNAUTH, DENIED = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED


@pytest.fixture
async def widget(auth, github):
    """Project 'widget' with alice as Owner and the GitHub publisher octo/widget release.yml."""
    _, session = await make_user(auth, "alice")
    await make_project(auth, "widget", "alice")
    publisher = await add_publisher(auth, session, "widget", github_spec(github))
    return session, publisher


async def test_a_matching_run_mints_an_upload_token_for_its_project(auth, github, widget):
    claims = github.github_claims(audience=AUDIENCE)
    minted = await mint(auth, github.token(claims))
    assert minted.token.startswith("pypi-") and list(minted.project_names) == ["widget"]
    assert 0 < minted.expires_at.seconds - time.time() <= 900
    grant = await verify(auth, minted.token, "widget")
    assert grant.publisher.id == widget[1].id and grant.role == 0
    assert grant.publisher.run_claims["sha"] == claims["sha"]
    assert grant.publisher.run_claims["workflow_ref"] == claims["workflow_ref"]
    (event,) = await events(auth, "project:publisher:token:mint")
    assert event.project_name == "widget" and event.actor.user_id == widget[1].id
    assert claims_of(event)["ref"] == "refs/tags/v1.0"


async def test_the_audience_rpc_says_the_configured_audience(auth):
    reply = await publishing(auth).GetAudience(publishing_pb2.GetAudienceRequest())
    assert reply.audience == AUDIENCE


@pytest.mark.parametrize("auth_overrides", [{}])
async def test_without_issuers_the_exchange_is_not_enabled(auth):
    err = await refused(publishing(auth).GetAudience(publishing_pb2.GetAudienceRequest()),
                        grpc.StatusCode.FAILED_PRECONDITION, "not enabled")
    del err


async def _refused_token(auth, token: str, *fragments: str, reason: str = "INVALID_TOKEN") -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await mint(auth, token)
    assert reason_of(err.value) == reason, err.value.details()
    for fragment in fragments:
        assert fragment in err.value.details(), err.value.details()


async def test_alg_none_is_refused(auth, github, widget):
    import jwt as pyjwt

    claims = github.github_claims(audience=AUDIENCE)
    token = pyjwt.encode(claims, None, algorithm="none", headers={"kid": github.keys[0].kid})
    await _refused_token(auth, token, "only RS256 and ES256")


async def test_hs256_signed_with_the_public_key_is_refused(auth, github, widget):
    import hashlib
    import hmac
    import json

    from cryptography.hazmat.primitives import serialization

    public = github.keys[0].private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def b64(raw: bytes) -> str:
        import base64
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "kid": github.keys[0].kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(github.github_claims(audience=AUDIENCE)).encode())
    signature = b64(hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest())
    await _refused_token(auth, f"{header}.{body}.{signature}", "only RS256 and ES256")


async def test_a_token_signed_with_an_unknown_key_is_refused(auth, github, widget):
    from tests.oidc_issuer import SigningKey

    stranger = SigningKey()
    await _refused_token(auth, github.token(github.github_claims(audience=AUDIENCE), key=stranger),
                         "does not publish")
    # Same kid as the issuer's, other key: the signature fails.
    impostor = SigningKey(kid=github.keys[0].kid)
    await _refused_token(auth, github.token(github.github_claims(audience=AUDIENCE), key=impostor),
                         "signature does not verify")


async def test_a_rotated_key_is_fetched_once_and_unknown_kids_refresh_at_most_once_a_minute(auth, github, widget):
    from tests.oidc_issuer import SigningKey

    def fresh_token(**kw) -> str:
        return github.token(github.github_claims(audience=AUDIENCE, now=auth.clock.now().timestamp()), **kw)

    await mint(auth, fresh_token())
    assert github.fetches == 1
    await mint(auth, fresh_token())
    assert github.fetches == 1, "a warm exchange fetches no keys"
    for _ in range(5):  # made-up kids cannot make the service hammer the issuer
        await _refused_token(auth, fresh_token(key=SigningKey()), "does not publish")
    assert github.fetches == 1
    auth.clock.advance(61)
    github.rotate()
    await mint(auth, fresh_token())  # the new kid: one refresh, a minute after the last
    assert github.fetches == 2
    await _refused_token(auth, fresh_token(key=SigningKey()), "does not publish")
    assert github.fetches == 2


async def test_stale_keys_carry_through_a_short_outage_then_fail_closed(auth, github, widget):
    await mint(auth, github.token(github.github_claims(audience=AUDIENCE)))
    github.fail = True
    auth.clock.advance(3600 + 60)  # past max age: a refresh is due and fails; the stale keys serve
    now = auth.clock.now().timestamp()
    await mint(auth, github.token(github.github_claims(audience=AUDIENCE, now=now)))
    auth.clock.advance(900)
    now = auth.clock.now().timestamp()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await mint(auth, github.token(github.github_claims(audience=AUDIENCE, now=now)))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_discovery_document_naming_another_issuer_is_refused(auth, github, widget):
    github.issuer_override = "https://token.actions.githubusercontent.com"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await mint(auth, github.token(github.github_claims(audience=AUDIENCE)))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert github.fetches == 0  # the key set of a mismatched issuer is never fetched


@pytest.mark.parametrize("change, fragment", [
    (dict(lifetime=-60), "expired"),
    (dict(nbf=10**10), "not valid yet"),
    (dict(iat=10**10), "issued in the future"),
    (dict(aud="someone-else"), "this index's audience"),
    (dict(aud=[AUDIENCE, "another"]), "several audiences"),
    (dict(jti=None), "no jti claim"),
    (dict(exp=None), "no exp claim"),
    (dict(iat=None), "no iat claim"),
])
async def test_bad_claims_are_refused(auth, github, widget, change, fragment):
    lifetime = change.pop("lifetime", 300)
    claims = github.github_claims(audience=AUDIENCE, lifetime=lifetime)
    now = time.time()
    for name, value in change.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    if lifetime < 0:
        claims["iat"] = claims["nbf"] = int(now) - 600
    await _refused_token(auth, github.token(claims), fragment)


async def test_a_token_larger_than_the_bound_is_refused(auth, github, widget):
    claims = github.github_claims(audience=AUDIENCE, padding="x" * 20000)
    await _refused_token(auth, github.token(claims), "longer than")


async def test_one_issuers_token_never_matches_another_issuers_publisher(auth, github, gitlab, ghes, widget):
    """The GHES isolation finding: the same repository name, claims shaped exactly as github.com's,
    signed by another trusted issuer of the same kind (or of another kind), never match."""
    for issuer in (ghes, gitlab):
        await _refused_token(auth, issuer.token(issuer.github_claims(audience=AUDIENCE)), reason="INVALID_PUBLISHER")
    # A GHES publisher of that name is its own publisher, bound to the GHES repository's ids.
    await add_publisher(auth, widget[0], "widget", github_spec(ghes))
    minted = await mint(auth, ghes.token(ghes.github_claims(audience=AUDIENCE, repository_id="5")))
    grant = await verify(auth, minted.token, "widget")
    assert grant.publisher.issuer_url == ghes.url and grant.publisher.id != widget[1].id
    # github.com's publisher is still unbound: the GHES exchange bound only its own.
    await mint(auth, github.token(github.github_claims(audience=AUDIENCE, repository_id="1001")))


async def test_the_discovery_document_is_not_followed_through_a_redirect(auth, github, ghes, widget):
    github.redirect_discovery = ghes.url + "/.well-known/openid-configuration"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await mint(auth, github.token(github.github_claims(audience=AUDIENCE)))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ghes.discovery_fetches == 0


async def test_consumed_identity_tokens_are_kept_until_exp_plus_leeway_then_swept(auth, github, widget):
    from sqlalchemy import func, select

    from authsvc.publishing.models import ConsumedIdentityToken

    async def kept() -> int:
        async with auth.running.app.db() as s:
            return await s.scalar(select(func.count()).select_from(ConsumedIdentityToken))

    old = github.token(github.github_claims(audience=AUDIENCE, lifetime=300, now=auth.clock.now().timestamp()))
    await mint(auth, old)
    auth.clock.advance(300 + 29)  # within the leeway: still refused as a replay
    await _refused_token(auth, old, reason="INVALID_REUSE_TOKEN")
    assert await kept() == 1
    auth.clock.advance(2)  # past exp + leeway the token is refused as expired: its row is no longer needed
    await _refused_token(auth, old, "expired")
    auth.clock.advance(60)  # sweeps run at most once a minute per replica
    await mint(auth, github.token(github.github_claims(audience=AUDIENCE, now=auth.clock.now().timestamp())))
    assert await kept() == 1, "the expired identity token's row was swept"


async def test_missing_jti_is_refused_and_a_replay_mints_once(auth, github, widget):
    token = github.token(github.github_claims(audience=AUDIENCE))
    results = await asyncio.gather(*(mint(auth, token) for _ in range(100)), return_exceptions=True)
    minted = [r for r in results if not isinstance(r, BaseException)]
    assert len(minted) == 1, [r for r in results if isinstance(r, BaseException)][:3]
    assert all(reason_of(r) == "INVALID_REUSE_TOKEN" for r in results if isinstance(r, BaseException))
    assert len(await events(auth, "project:publisher:token:mint")) == 1


async def test_wrong_workflow_environment_and_pull_request_target_are_refused(auth, github, widget):
    session, _ = widget
    await _refused_token(auth, github.token(github.github_claims(audience=AUDIENCE, workflow="other.yml")),
                         "workflow is not release.yml", reason="INVALID_PUBLISHER")
    await _refused_token(auth, github.token(github.github_claims(audience=AUDIENCE, event_name="pull_request_target")),
                         "pull_request_target", reason="INVALID_PUBLISHER")
    await add_publisher(auth, session, "widget", github_spec(github, workflow="deploy.yml", environment="pypi"))
    await _refused_token(auth, github.token(github.github_claims(audience=AUDIENCE, workflow="deploy.yml",
                                                                 environment="staging")),
                         "environment pypi", reason="INVALID_PUBLISHER")
    await mint(auth, github.token(github.github_claims(audience=AUDIENCE, workflow="deploy.yml", environment="PyPI")))


async def test_a_resurrected_repository_cannot_publish(auth, github, widget):
    await mint(auth, github.token(github.github_claims(audience=AUDIENCE)))  # binds ids 1001/2002
    reply = await publishing(auth).ListPublishers(publishing_pb2.ListPublishersRequest(
        session_token=widget[0], project_name="widget"))
    assert reply.publishers[0].bound_repository_id == "1001"
    await _refused_token(auth, github.token(github.github_claims(audience=AUDIENCE, repository_id="9999")),
                         "deleted and re-created", reason="INVALID_PUBLISHER")


async def test_a_publisher_bound_at_registration_refuses_a_resurrected_repository_on_first_use(auth, github):
    """Without ids at registration the first run to use a publisher binds whatever repository now
    has the name; an Owner who gives the ids closes that gap."""
    _, session = await make_user(auth, "alice")
    await make_project(auth, "widget", "alice")
    spec = github_spec(github)
    spec.repository_id, spec.owner_id = "1001", "2002"
    added = await add_publisher(auth, session, "widget", spec)
    assert (added.bound_repository_id, added.bound_owner_id) == ("1001", "2002")
    assert not added.spec.repository_id  # replies name the ids in bound_* only
    (event,) = await events(auth, "project:publisher:add")
    assert (event.details["bound_repository_id"], event.details["bound_owner_id"]) == ("1001", "2002")
    await _refused_token(auth, github.token(github.github_claims(audience=AUDIENCE, repository_id="9999")),
                         "deleted and re-created", reason="INVALID_PUBLISHER")
    await _refused_token(auth, github.token(github.github_claims(audience=AUDIENCE, owner_id="7")),
                         "deleted and re-created", reason="INVALID_PUBLISHER")
    assert list((await mint(auth, github.token(github.github_claims(audience=AUDIENCE)))).project_names) == [
        "widget"]


@pytest.mark.parametrize("repository_id, owner_id, fragment", [
    ("1001", "", "Give both ids"), ("", "2002", "Give both ids"), ("10x1", "2002", "'10x1' is not one"),
    ("1" * 21, "2002", "is not one"), ("١٠٠١", "2002", "is not one"),  # Arabic-Indic digits: isdigit, not ASCII
])
async def test_ids_at_registration_are_both_numbers_and_only_for_a_project(auth, github, repository_id, owner_id,
                                                                           fragment):
    _, session = await make_user(auth, "alice")
    await make_project(auth, "widget", "alice")
    spec = github_spec(github)
    spec.repository_id, spec.owner_id = repository_id, owner_id
    await refused(add_publisher(auth, session, "widget", spec), grpc.StatusCode.INVALID_ARGUMENT, fragment)
    pending = publishing(auth).AddPendingPublisher(publishing_pb2.AddPendingPublisherRequest(
        session_token=session, project_name="fresh", spec=publishing_pb2.PublisherSpec(
            issuer_url=github.url, owner="octo", repository="fresh", workflow="release.yml", repository_id="1",
            owner_id="2")))
    await refused(pending, grpc.StatusCode.INVALID_ARGUMENT, "leave the ids empty")
    assert not await events(auth, "project:publisher:add", "account:pending_publisher:add")


async def test_gitlab_publishers_bind_project_and_namespace_ids(auth, gitlab):
    _, session = await make_user(auth, "gina")
    await make_project(auth, "glwidget", "gina")
    await add_publisher(auth, session, "glwidget", gitlab_spec(gitlab, environment="release"))
    await _refused_token(auth, gitlab.token(gitlab.gitlab_claims(audience=AUDIENCE, environment="release",
                                                                 ci_config_path="other.yml")),
                         "CI config file", reason="INVALID_PUBLISHER")
    minted = await mint(auth, gitlab.token(gitlab.gitlab_claims(audience=AUDIENCE, environment="release")))
    grant = await verify(auth, minted.token, "glwidget")
    assert grant.publisher.run_claims["project_path"] == "group/widget"
    await _refused_token(auth, gitlab.token(gitlab.gitlab_claims(audience=AUDIENCE, environment="release",
                                                                 project_id="32")),
                         "deleted and re-created", reason="INVALID_PUBLISHER")


async def test_the_minted_token_is_for_its_projects_and_uploads_only(auth, github, widget):
    from gatehouse.auth.v1 import tokens_pb2

    await make_project(auth, "other", "alice")
    minted = await mint(auth, github.token(github.github_claims(audience=AUDIENCE)))
    await refused(verify(auth, minted.token, "other"), DENIED, "not valid for project 'other'")
    await refused(verify(auth, minted.token, "brand-new"), DENIED)
    await refused(auth.tokens.VerifyIndexToken(tokens_pb2.VerifyIndexTokenRequest(token=minted.token)),
                  DENIED, "may only upload")
    auth.clock.advance(901)
    await refused(verify(auth, minted.token, "widget"), DENIED, "expired")


async def test_a_single_use_token_uploads_once_even_in_parallel(auth, github, widget):
    minted = await mint(auth, github.token(github.github_claims(audience=AUDIENCE)), single_use=True)
    results = await asyncio.gather(*(verify(auth, minted.token, "widget") for _ in range(100)),
                                   return_exceptions=True)
    assert len([r for r in results if not isinstance(r, BaseException)]) == 1
    assert all(reason_of(r) == "TOKEN_USED" for r in results if isinstance(r, BaseException))


async def test_removing_the_publisher_takes_back_its_minted_tokens(auth, github, widget):
    session, publisher = widget
    minted = await mint(auth, github.token(github.github_claims(audience=AUDIENCE)))
    await publishing(auth).RemovePublisher(publishing_pb2.RemovePublisherRequest(
        session_token=session, project_name="widget", publisher_id=publisher.id))
    await refused(verify(auth, minted.token, "widget"), DENIED, "was removed")


async def test_a_pending_publisher_creates_its_project_on_the_first_exchange(auth, github):
    user, session = await make_user(auth, "pat")
    reply = await publishing(auth).AddPendingPublisher(publishing_pb2.AddPendingPublisherRequest(
        session_token=session, project_name="Fresh_Widget", spec=github_spec(github, "pat/fresh")))
    assert reply.pending_publisher.project_name == "Fresh_Widget"
    minted = await mint(auth, github.token(github.github_claims("pat/fresh", audience=AUDIENCE)))
    assert list(minted.project_names) == ["Fresh_Widget"]
    grant = await verify(auth, minted.token, "fresh-widget")
    assert grant.project_name == "Fresh_Widget"
    pending = await publishing(auth).ListPendingPublishers(publishing_pb2.ListPendingPublishersRequest(
        session_token=session))
    assert not pending.pending_publishers
    listed = await publishing(auth).ListPublishers(publishing_pb2.ListPublishersRequest(
        session_token=session, project_name="fresh-widget"))
    assert listed.publishers[0].bound_repository_id == "1001"
    (converted,) = await events(auth, "account:pending_publisher:converted")
    assert converted.subject_user_id == user.id and converted.project_name == "Fresh_Widget"


async def test_a_pending_publisher_whose_name_was_taken_meanwhile_is_refused(auth, github):
    _, session = await make_user(auth, "pat")
    await publishing(auth).AddPendingPublisher(publishing_pb2.AddPendingPublisherRequest(
        session_token=session, project_name="taken", spec=github_spec(github, "pat/taken")))
    await make_user(auth, "quick")
    await make_project(auth, "taken", "quick")
    await _refused_token(auth, github.token(github.github_claims("pat/taken", audience=AUDIENCE)),
                         "exists already", reason="INVALID_PENDING_PUBLISHER")


@pytest.mark.skipif(not TEST_DB.startswith("postgres"), reason="SQLite serialises writers, so the exchange's check "
                    "before creating the project sees it (the test above)")
async def test_a_pending_publishers_name_taken_at_the_same_instant_is_not_called_a_reused_token(auth, github):
    """Regression: the project's unique name refusing the exchange's insert was reported as
    invalid-reuse-token. Another transaction inserts the name and commits only once the exchange
    waits on it (past the exchange's own check that the name is free)."""
    _, session = await make_user(auth, "pat")
    await publishing(auth).AddPendingPublisher(publishing_pb2.AddPendingPublisherRequest(
        session_token=session, project_name="taken", spec=github_spec(github, "pat/taken")))
    engine = create_async_engine(auth.running.app.engine.url)  # of its own: the service's pool stays free
    async with engine.connect() as other, engine.connect() as watcher:
        await other.execute(insert(Project.__table__).values(
            id=new_id(), name="taken", normalized_name="taken", created_at=auth.clock.now(),
            two_factor_required=False, trusted_publishing_only=False))
        exchange = asyncio.ensure_future(_refused_token(
            auth, github.token(github.github_claims("pat/taken", audience=AUDIENCE)), "at the same moment",
            reason="INVALID_PENDING_PUBLISHER"))
        waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        deadline = time.monotonic() + 10
        while not await watcher.scalar(waiting):
            assert time.monotonic() < deadline and not exchange.done(), "the exchange never waited on the name"
            await asyncio.sleep(0.01)
        await other.commit()
        await exchange
    await engine.dispose()
    assert not await events(auth, "project:create")  # nothing of the refused exchange was kept
