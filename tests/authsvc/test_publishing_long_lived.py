"""Long-lived API tokens on projects with trusted publishers: "trusted publishing only" refuses
them with a reason twine prints; otherwise the Owners are mailed, once per token and project a day
however many uploads run at once (real SMTP listener); turning the setting on needs a publisher;
each change is an event. Publisher changes mail every Owner."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from sqlalchemy import event

from gatehouse.auth.v1 import admin_pb2, publishing_pb2
from tests.authsvc.project_token_factories import (
    OWNER, add_role, create_token, events, make_project, make_user, refused, verify,
)
from authsvc.settings import OidcIssuer as IssuerSetting
from tests.authsvc.publishing_support import AUDIENCE, add_publisher, github_spec, publishing, reason_of
from tests.authsvc.publishing_support import github  # noqa: F401  (fixture)
from tests.smtp import smtp_listener


@pytest.fixture
def smtp():
    with smtp_listener() as (url, mailbox):
        yield url, mailbox


@pytest.fixture
def auth_overrides(github, smtp):  # noqa: F811
    return dict(oidc_audience=AUDIENCE, oidc_issuers=(IssuerSetting(url=github.url, kind="github", name="GitHub"),),
                smtp_url=smtp[0])


async def _mails(mailbox, address: str, word: str, *, at_least: int = 1, settle: float = 0.0) -> list:
    deadline = asyncio.get_running_loop().time() + 10
    while len(found := [m for m in mailbox.to(address) if word in m["Subject"]]) < at_least:
        assert asyncio.get_running_loop().time() < deadline, f"no {word!r} mail to {address}"
        await asyncio.sleep(0.02)
    await asyncio.sleep(settle)  # for "exactly n": give any extra mail the time to arrive
    return [m for m in mailbox.to(address) if word in m["Subject"]]


def _only(auth, session: str, project: str, enabled: bool):
    return publishing(auth).SetTrustedPublishingOnly(publishing_pb2.SetTrustedPublishingOnlyRequest(
        session_token=session, project_name=project, enabled=enabled))


async def test_publisher_changes_mail_every_owner(auth, github, smtp):
    _, alice = await make_user(auth, "alice")
    await make_user(auth, "bob")
    await make_user(auth, "carol")
    await make_project(auth, "widget", "alice")
    await add_role(auth, alice, "widget", "bob", role=OWNER)
    await add_role(auth, alice, "widget", "carol")  # a Maintainer: not mailed
    added = await add_publisher(auth, alice, "widget", github_spec(github))
    for who in ("alice", "bob"):
        (mail,) = await _mails(smtp[1], f"{who}@example.org", "trusted publisher was added")
        assert "alice added a trusted publisher" in mail.get_content() and "octo/widget" in mail.get_content()
    await auth.admin.RemovePublisher(admin_pb2.AdminRemovePublisherRequest(project_name="widget",
                                                                           publisher_id=added.id))
    (mail,) = await _mails(smtp[1], "bob@example.org", "trusted publisher was removed", settle=0.2)
    assert "An operator removed" in mail.get_content() or "operator removed" in mail.get_content()
    # (carol was mailed that she was added to the project; nothing about publishers)
    assert not [m for m in smtp[1].to("carol@example.org") if "trusted publisher" in m["Subject"]]


async def test_trusted_publishing_only_refuses_long_lived_tokens(auth, github):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "widget", "alice")
    token = (await create_token(auth, alice)).token
    detail = await refused(_only(auth, alice, "widget", True), grpc.StatusCode.FAILED_PRECONDITION,
                           "Add a trusted publisher")
    assert detail and (await verify(auth, token, "widget")).project_name == "widget"

    await add_publisher(auth, alice, "widget", github_spec(github))
    reply = await _only(auth, alice, "widget", True)
    assert reply.project.trusted_publishing_only
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await verify(auth, token, "widget")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(err.value) == "TRUSTED_PUBLISHING_ONLY"
    assert "only from its trusted publishers" in err.value.details()
    (refusal,) = await events(auth, "project:upload:refused")
    assert refusal.details["reason"] == "trusted_publishing_only"

    _, bob = await make_user(auth, "bob")
    await add_role(auth, alice, "widget", "bob")
    await refused(_only(auth, bob, "widget", False), grpc.StatusCode.PERMISSION_DENIED, "Only Owners")
    assert not (await _only(auth, alice, "widget", False)).project.trusted_publishing_only
    assert (await verify(auth, token, "widget")).project_name == "widget"
    tags = [e.tag for e in await events(auth) if "trusted_publishing_only" in e.tag]
    assert tags == ["project:trusted_publishing_only:enabled", "project:trusted_publishing_only:disabled"]

    operator = await auth.admin.SetProjectTrustedPublishingOnly(admin_pb2.AdminSetTrustedPublishingOnlyRequest(
        project_name="widget", enabled=True))
    assert operator.project.trusted_publishing_only


async def test_a_long_lived_upload_mails_the_owners_once_per_token_and_day(auth, github, smtp):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "widget", "alice")
    first, second = (await create_token(auth, alice, "one")).token, (await create_token(auth, alice, "two")).token
    await verify(auth, first, "widget")
    await asyncio.sleep(0.3)
    # no publisher yet: nothing to say (the tokens' creation notices aside)
    assert not [m for m in smtp[1].to("alice@example.org") if "long-lived API token" in m["Subject"]]
    await add_publisher(auth, alice, "widget", github_spec(github))

    replies = await asyncio.gather(*(verify(auth, first, "widget") for _ in range(100)))
    assert all(r.project_name == "widget" for r in replies)
    mails = await _mails(smtp[1], "alice@example.org", "long-lived API token", settle=0.5)
    assert len(mails) == 1 and "token id" in mails[0].get_content()
    assert first not in mails[0].get_content()  # never the secret

    await verify(auth, second, "widget")  # another token: its own mail
    assert len(await _mails(smtp[1], "alice@example.org", "long-lived API token", at_least=2, settle=0.3)) == 2
    auth.clock.advance(days=1, seconds=1)  # a day later the same token is mailed again
    await verify(auth, first, "widget")
    assert len(await _mails(smtp[1], "alice@example.org", "long-lived API token", at_least=3, settle=0.3)) == 3


async def test_the_accepted_long_lived_upload_reads_the_setting_in_the_token_lookup(auth, github):
    """Regression: the policy ran a query of its own on every upload with a long-lived token. The
    setting and "has a publisher" now come with the token lookup (its own fast path, not this engine)."""
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "widget", "alice")
    token = (await create_token(auth, alice)).token
    await verify(auth, token, "widget")  # first use: records last_used_at
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = auth.running.app.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert (await verify(auth, token, "widget")).project_name == "widget"
        accepted = list(statements)
        await add_publisher(auth, alice, "widget", github_spec(github))
        statements.clear()
        await _only(auth, alice, "widget", True)
        assert any("trusted_publishing_only" in s for s in statements)  # the listener sees this engine's work
        statements.clear()
        with pytest.raises(grpc.aio.AioRpcError):
            await verify(auth, token, "widget")
        refused = list(statements)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert not [s for s in accepted + refused if "trusted_publishers" in s or "SELECT projects.trusted" in s]
