"""Owners see every API token that can reach their project (their collaborators' included, with
last use) and revoke any of them; the bulk revocation of the long-lived tokens of a project with a
trusted publisher. Real auth server, real SMTP listener; a Maintainer is refused everything."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from authsvc.settings import OidcIssuer as IssuerSetting
from gatehouse.auth.v1 import admin_pb2, tokens_pb2
from tests.authsvc.project_token_factories import (
    add_role, create_token, events, make_project, make_user, refused, verify,
)
from tests.authsvc.publishing_support import AUDIENCE, add_publisher, github_spec
from tests.authsvc.publishing_support import github  # noqa: F401  (fixture)
from tests.smtp import smtp_listener

Reach = tokens_pb2.ProjectToken


@pytest.fixture
def smtp():
    with smtp_listener() as (url, mailbox):
        yield url, mailbox


@pytest.fixture
def auth_overrides(github, smtp):  # noqa: F811
    return dict(oidc_audience=AUDIENCE, oidc_issuers=(IssuerSetting(url=github.url, kind="github", name="GitHub"),),
                smtp_url=smtp[0])


def _list(auth, session: str, project: str = "widget"):
    return auth.tokens.ListProjectTokens(tokens_pb2.ListProjectTokensRequest(session_token=session,
                                                                             project_name=project))


def _revoke(auth, session: str, token_id: str, project: str = "widget"):
    return auth.tokens.RevokeProjectToken(tokens_pb2.RevokeProjectTokenRequest(
        session_token=session, project_name=project, token_id=token_id))


def _bulk(auth, session: str, include_account_wide: bool = False, project: str = "widget"):
    return auth.tokens.RevokeLongLivedTokens(tokens_pb2.RevokeLongLivedTokensRequest(
        session_token=session, project_name=project, include_account_wide=include_account_wide))


async def _world(auth):
    """alice owns widget; bob maintains it and owns gadget; carol is no collaborator of widget."""
    _, alice = await make_user(auth, "alice")
    _, bob = await make_user(auth, "bob")
    _, carol = await make_user(auth, "carol")
    await make_project(auth, "widget", "alice")
    await make_project(auth, "gadget", "bob")
    await make_project(auth, "other", "carol")
    await add_role(auth, alice, "widget", "bob")
    tokens = {
        "alice-all": await create_token(auth, alice, "alice-all"),
        "alice-widget": await create_token(auth, alice, "alice-widget", projects=["widget"]),
        "bob-all": await create_token(auth, bob, "bob-all"),
        "bob-widget": await create_token(auth, bob, "bob-widget", projects=["widget"]),
        "bob-both": await create_token(auth, bob, "bob-both", projects=["widget", "gadget"]),
        "bob-gadget": await create_token(auth, bob, "bob-gadget", projects=["gadget"]),
        "carol-all": await create_token(auth, carol, "carol-all"),
    }
    return (alice, bob, carol), tokens


async def test_owners_see_every_token_that_reaches_the_project_and_a_maintainer_sees_none(auth):
    (alice, bob, _), tokens = await _world(auth)
    await verify(auth, tokens["bob-all"].token, "widget")  # used once: its last use shows
    reply = await _list(auth, alice)
    seen = {t.info.description: t for t in reply.tokens}
    assert set(seen) == {"alice-all", "alice-widget", "bob-all", "bob-widget", "bob-both"}
    assert not reply.has_publisher
    assert seen["bob-all"].reach == Reach.REACH_ACCOUNT and seen["bob-all"].info.username == "bob"
    assert seen["bob-all"].info.HasField("last_used_at") and not seen["bob-widget"].info.HasField("last_used_at")
    assert seen["bob-widget"].reach == Reach.REACH_PROJECT
    both = seen["bob-both"]
    assert both.reach == Reach.REACH_PROJECTS and both.other_projects == 1
    assert list(both.info.scope.project_names) == ["widget"]  # never the name of bob's other project
    assert all(t.info.HasField("expires_at") and t.info.HasField("created_at") for t in reply.tokens)
    await refused(_list(auth, bob), grpc.StatusCode.PERMISSION_DENIED, "Only Owners")
    await refused(_revoke(auth, bob, tokens["alice-widget"].info.id), grpc.StatusCode.PERMISSION_DENIED)
    await refused(_bulk(auth, bob, True), grpc.StatusCode.PERMISSION_DENIED)
    await verify(auth, tokens["alice-widget"].token, "widget")  # the refusal revoked nothing


async def test_an_owner_revokes_a_collaborators_account_wide_token_everywhere(auth, smtp):
    (alice, _, _), tokens = await _world(auth)
    await refused(_revoke(auth, alice, tokens["carol-all"].info.id), grpc.StatusCode.NOT_FOUND, "can reach")
    await refused(_revoke(auth, alice, tokens["bob-gadget"].info.id), grpc.StatusCode.NOT_FOUND)
    await verify(auth, tokens["carol-all"].token, "other")

    revoked = await _revoke(auth, alice, tokens["bob-all"].info.id)
    assert revoked.info.description == "bob-all"
    for project in ("widget", "gadget"):  # it reached bob's other project too: ended there as well
        await refused(verify(auth, tokens["bob-all"].token, project), grpc.StatusCode.UNAUTHENTICATED)
    (account,) = await events(auth, "account:api_token:removed")
    assert (account.subject_username, account.actor.username) == ("bob", "alice")
    assert account.details["reason"] == "owner_revoked"
    (project,) = await events(auth, "project:api_token:removed")
    assert (project.project_name, project.details["username"], project.subject_username) == ("widget", "bob", "")
    deadline = asyncio.get_running_loop().time() + 10
    while not (mails := [m for m in smtp[1].to("bob@example.org") if "was revoked" in m["Subject"]]):
        assert asyncio.get_running_loop().time() < deadline, "no mail to bob"
        await asyncio.sleep(0.02)
    assert "'alice'" in mails[0].get_content() and "'widget'" in mails[0].get_content()
    await refused(_revoke(auth, alice, tokens["bob-all"].info.id), grpc.StatusCode.NOT_FOUND, "revoked already")


async def test_a_hundred_parallel_revocations_of_one_token_record_one_event(auth):
    (alice, _, _), tokens = await _world(auth)
    target = tokens["bob-both"].info.id
    results = await asyncio.gather(*(_revoke(auth, alice, target) for _ in range(100)), return_exceptions=True)
    done = [r for r in results if isinstance(r, tokens_pb2.RevokeProjectTokenResponse)]
    failed = [r for r in results if not isinstance(r, tokens_pb2.RevokeProjectTokenResponse)]
    assert len(done) == 1
    assert all(isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.NOT_FOUND for e in failed)
    assert [e.details["token_id"] for e in await events(auth, "account:api_token:removed")] == [target]
    # one per project in its scope: widget (where it was revoked) and gadget (where it also ends)
    assert sorted(e.project_name for e in await events(auth, "project:api_token:removed")) == ["gadget", "widget"]


async def test_bulk_revocation_of_long_lived_tokens_needs_a_publisher(auth, github):  # noqa: F811
    (alice, bob, _), tokens = await _world(auth)
    await refused(_bulk(auth, alice), grpc.StatusCode.FAILED_PRECONDITION, "no trusted publisher")
    await add_publisher(auth, alice, "widget", github_spec(github))
    assert (await _list(auth, alice)).has_publisher

    first = await _bulk(auth, alice)
    assert sorted(t.description for t in first.revoked) == ["alice-widget", "bob-widget"]
    left = {t.info.description for t in (await _list(auth, alice)).tokens}
    assert left == {"alice-all", "bob-all", "bob-both"}  # account-wide ones only by the checkbox
    removed = await events(auth, "account:api_token:removed")
    assert sorted((e.details["description"], e.details["reason"]) for e in removed) == [
        ("alice-widget", "trusted_publishing"), ("bob-widget", "trusted_publishing")]

    second = await auth.admin.RevokeLongLivedTokens(admin_pb2.AdminRevokeLongLivedTokensRequest(
        project_name="widget", include_account_wide=True))
    assert sorted(t.description for t in second.revoked) == ["alice-all", "bob-all"]
    assert {t.info.description for t in (await _list(auth, alice)).tokens} == {"bob-both"}
    await verify(auth, tokens["bob-gadget"].token, "gadget")  # never reached widget: untouched
    assert len(await events(auth, "account:api_token:removed")) == 4
    assert not (await _bulk(auth, alice, True)).revoked  # nothing left to revoke: a no-op
