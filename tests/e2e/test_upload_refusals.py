"""Refused uploads leave a trace (issue 19): an upload over HTTP to the gateway with an expired, a
deleted or a wrong-project token is refused, and authsvc's `project:upload:refused` event reaches the
project's log when the project exists, else the admin log; never the token itself. Expired and
deleted tokens are refused at the headers, where the project is the token's scope (an all-projects
token's refusal goes to the admin log and its owner's log); wrong-project after the fields."""

from __future__ import annotations

import datetime as dt
import secrets
import types

import aiohttp
import pytest
import pytest_asyncio

from gatehouse.auth.v1 import common_pb2, tokens_pb2
from tests.system import System, client, gateway_available
from tests.uploadgw.http_support import post_upload

pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.skipif(not gateway_available(), reason="the upload gateway is not installed")]
REFUSED = "project:upload:refused"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def upload(system: System, http, tmp_path, token: str, project: str) -> int:
    from tests.uploadgw.dists import make_wheel

    gw = types.SimpleNamespace(http=http, upload_url=f"{system.gateway_url}/legacy/")
    status, _reason, _body = await post_upload(gw, make_wheel(tmp_path, project, "1.0"), token)
    return status


async def token(system: System, session: str, projects=(), expires_at: dt.datetime | None = None):
    request = tokens_pb2.CreateTokenRequest(
        session_token=session, description=f"refusals-{secrets.token_hex(3)}", client=client("192.0.2.70"),
        scope=common_pb2.TokenScope(all_projects=not projects, project_names=list(projects)))
    if expires_at is not None:
        request.expires_at.FromDatetime(expires_at.astimezone(dt.timezone.utc).replace(tzinfo=None))
    return await system.tokens.CreateToken(request)


def assert_no_token(event, secret: str) -> None:
    assert secret not in str(event) and secret.split("-", 1)[1][:40] not in str(event)


async def test_refused_uploads_reach_the_project_log_or_the_admin_log(system, http, tmp_path):
    owner, other = await system.person("ref"), await system.person("oth")
    mine, mine_id = await system.project(owner)
    theirs, theirs_id = await system.project(other)
    session = await system.session(owner)

    expiring = await token(system, session, [mine], expires_at=system.clock.now() + dt.timedelta(hours=1))
    deleted = await token(system, session, [mine])
    unscoped = await token(system, session, expires_at=system.clock.now() + dt.timedelta(hours=1))
    scoped = await token(system, session, [mine])
    await system.tokens.DeleteToken(tokens_pb2.DeleteTokenRequest(session_token=session, token_id=deleted.info.id,
                                                                  client=client("192.0.2.70")))
    assert await upload(system, http, tmp_path, scoped.token, mine) == 200  # the token works where it may
    system.clock.advance(hours=2)

    for created, project in ((expiring, mine), (deleted, mine), (unscoped, mine), (scoped, theirs)):
        assert await upload(system, http, tmp_path, created.token, project) in (401, 403)
    nowhere = f"nowhere-{mine}"
    assert await upload(system, http, tmp_path, scoped.token, nowhere) in (401, 403)

    # Expired and deleted tokens are refused at the headers: their events are in the logs of the
    # projects the tokens are scoped to. (A body small enough to arrive with the headers may have
    # its fields read before that answer: the check after the fields then records it too, in the
    # same project's log, for the same reason.)
    for created, reason in ((expiring, "expired"), (deleted, "token_deleted")):
        found = await system.wait_for_project_event(
            mine_id, REFUSED, where=lambda e, t=created.info.id: e.details["token_id"] == t and "step" in e.details)
        [event] = found
        assert event.project_name == mine and event.details["reason"] == reason
        assert event.details["step"] == "headers" and not event.subject_user_id
        assert event.source == "authsvc" and event.actor.kind == event.actor.ANONYMOUS
        for other in [e for e in await system.project_events(mine_id)
                      if e.tag == REFUSED and e.details["token_id"] == created.info.id]:
            assert other.details["reason"] == reason and other.project_name == mine
            assert_no_token(other, created.token)
    # An all-projects token has no project to name at the headers: the admin log, with its owner as
    # subject, so it is in the owner's own account log too.
    [event] = await system.wait_for_user_event(
        owner.user_id, REFUSED, where=lambda e: e.details["token_id"] == unscoped.info.id and "step" in e.details)
    assert event.details["reason"] == "expired" and not event.project_id and event.subject_user_id == owner.user_id
    assert_no_token(event, unscoped.token)
    assert await system.wait_for_event(REFUSED, where=lambda e: e.event_id == event.event_id)
    # A wrong-project refusal needs the fields: the other project's log, named by them.
    [event] = await system.wait_for_project_event(
        theirs_id, REFUSED, where=lambda e: e.details["token_id"] == scoped.info.id)
    assert event.project_name == theirs and event.details["project_name"] == theirs
    assert event.details["reason"] and "step" not in event.details
    assert_no_token(event, scoped.token)
    # The wrong-project refusal is in the other project's log only, not in the token owner's project.
    assert not [e for e in await system.project_events(mine_id)
                if e.tag == REFUSED and e.details["token_id"] == scoped.info.id]
    # No such project: the admin log has it, with the name asked for and no project.
    [event] = await system.wait_for_event(REFUSED, where=lambda e: e.details["project_name"] == nowhere)
    assert not event.project_id and event.details["token_id"] == scoped.info.id
    assert_no_token(event, scoped.token)
