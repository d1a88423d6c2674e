"""VerifyUploadToken / VerifyIndexToken over real gRPC: every denial's reason, first-upload project
creation (and its race), and the stored state that stops tokens: roles, deletions, disabled users,
expiry and retired keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

import grpc
import pytest

from authsvc.server import create_server
from gatehouse.auth.v1 import admin_pb2, common_pb2, projects_pb2, tokens_pb2, tokens_pb2_grpc
from gatehouse.infra.grpcserver import open_channel
from tests.authsvc.conftest import auth_settings
from tests.conftest import TEST_DB
from tests.authsvc.project_token_factories import (
    MAINTAINER,
    OWNER,
    add_role,
    create_token,
    events,
    list_tokens,
    make_project,
    make_user,
    refused,
    verify,
)

DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.UNAUTHENTICATED


async def test_upload_token_grants_the_project_and_records_last_use(auth):
    user, alice = await make_user(auth, "alice")
    project = await make_project(auth, "Proj", "alice")
    created = await create_token(auth, alice, "ci", projects=["proj"])
    reply = await verify(auth, created.token, "PROJ")
    assert (reply.user_id, reply.username, reply.project_id, reply.project_name, reply.token_id) == (
        user.id, "alice", project.id, "Proj", created.info.id)
    assert reply.role == OWNER and not reply.project_created
    first_use = (await list_tokens(auth, alice))[0].last_used_at.ToDatetime(dt.timezone.utc)
    assert abs(first_use - auth.clock.now()) < dt.timedelta(seconds=1)
    # Last use is recorded at most once a minute (a burst of uploads is one write).
    auth.clock.advance(30)
    await verify(auth, created.token, "proj")
    assert (await list_tokens(auth, alice))[0].last_used_at.ToDatetime(dt.timezone.utc) == first_use
    auth.clock.advance(31)
    await verify(auth, created.token, "proj")
    later = (await list_tokens(auth, alice))[0].last_used_at.ToDatetime(dt.timezone.utc)
    assert later - first_use >= dt.timedelta(seconds=61)
    assert await events(auth, "account:api_token:used") == []  # verification itself emits nothing


async def test_malformed_and_forged_tokens_are_unauthenticated(auth):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    token = (await create_token(auth, alice, "ci")).token
    body = token.removeprefix("pypi-")
    cases = {
        "": "must start with 'pypi-'",
        "pypi-": "malformed",
        "pypi-not a token": "malformed",
        "gh-" + body: "must start with 'pypi-'",
        token + "A": "malformed",
        token[:-10]: "malformed",
        "pypi-" + "A" * 9000: "malformed",
        token[:-2] + ("AA" if token[-2:] != "AA" else "BB"): "signature does not match",
    }
    for bad, reason in cases.items():
        await refused(verify(auth, bad, "proj"), INVALID, reason)
    await refused(verify(auth, token, "not a name"), grpc.StatusCode.INVALID_ARGUMENT, "not a valid project name")


async def test_scope_denials_say_which_project(auth):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "mine", "alice")
    await make_project(auth, "other", "alice")
    scoped = (await create_token(auth, alice, "ci", projects=["mine"])).token
    await refused(verify(auth, scoped, "other"), DENIED, "This token is not valid for project 'other'.")
    # A project-scoped token never creates a project.
    await refused(verify(auth, scoped, "Brand-New"), DENIED, "This token is not valid for project 'Brand-New'.")
    await refused(auth.projects.GetProject(projects_pb2.GetProjectRequest(name="brand-new")),
                  grpc.StatusCode.NOT_FOUND)


async def test_first_upload_creates_the_project_with_the_uploader_as_owner(auth):
    user, alice = await make_user(auth, "alice")
    token = (await create_token(auth, alice, "ci")).token
    first = await verify(auth, token, "New_Project")
    assert first.project_created and first.role == OWNER and first.project_name == "New_Project"
    # The token's use is recorded with the project (in its transaction).
    first_use = (await list_tokens(auth, alice))[0].last_used_at.ToDatetime(dt.timezone.utc)
    assert abs(first_use - auth.clock.now()) < dt.timedelta(seconds=1)
    auth.clock.advance(61)
    again = await verify(auth, token, "new-project")
    assert not again.project_created and again.project_id == first.project_id
    assert (await list_tokens(auth, alice))[0].last_used_at.ToDatetime(dt.timezone.utc) - first_use \
        >= dt.timedelta(seconds=61)
    mine = await auth.projects.ListMyProjects(projects_pb2.ListMyProjectsRequest(session_token=alice))
    assert [(p.project.name, p.role) for p in mine.projects] == [("New_Project", OWNER)]
    create = await events(auth, "project:create")
    assert len(create) == 1 and create[0].actor.user_id == user.id and create[0].ip_address == "192.0.2.8"
    role_add = await events(auth, "project:role:add")
    assert [(e.subject_username, e.details["role"]) for e in role_add] == [("alice", "Owner")]


async def test_racing_first_uploads_create_exactly_one_project(auth):
    _, alice = await make_user(auth, "alice")
    _, bob = await make_user(auth, "bob")
    alice_token = (await create_token(auth, alice, "ci")).token
    bob_token = (await create_token(auth, bob, "ci")).token
    replies = await asyncio.gather(*[verify(auth, alice_token, "racy") for _ in range(8)])
    assert sum(r.project_created for r in replies) == 1
    assert len({r.project_id for r in replies}) == 1 and {r.role for r in replies} == {OWNER}
    assert len(await events(auth, "project:create")) == 1

    # Two users race for a new name: one creates it, the other is refused with the reason.
    auth.clock.advance(61)  # a use now is recorded
    used_before = {who: (await list_tokens(auth, who))[0].last_used_at for who in (alice, bob)}
    results = await asyncio.gather(verify(auth, alice_token, "contested"), verify(auth, bob_token, "contested"),
                                   return_exceptions=True)
    wins = [r for r in results if isinstance(r, tokens_pb2.VerifyUploadTokenResponse)]
    losses = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(wins) == 1 and wins[0].project_created and len(losses) == 1
    assert losses[0].code() == DENIED and "has no Owner or Maintainer role on project 'contested'" in losses[0].details()
    assert len(await events(auth, "project:create")) == 2
    # The winner's use is recorded; the refused token's is not (its creation, with the use, was rolled back).
    winner, loser = (alice, bob) if isinstance(results[0], tokens_pb2.VerifyUploadTokenResponse) else (bob, alice)
    assert (await list_tokens(auth, winner))[0].last_used_at != used_before[winner]
    assert (await list_tokens(auth, loser))[0].last_used_at == used_before[loser]


@pytest.mark.parametrize("auth_overrides", [{"allow_project_creation": False}])
async def test_project_creation_can_be_switched_off(auth):
    _, alice = await make_user(auth, "alice")
    token = (await create_token(auth, alice, "ci")).token
    await refused(verify(auth, token, "new"), DENIED, "new projects cannot be created on this index")
    await make_project(auth, "existing", "alice")
    assert (await verify(auth, token, "existing")).project_name == "existing"


async def test_removing_a_role_stops_the_token_for_that_project_at_once(auth):
    _, alice = await make_user(auth, "alice")
    _, bob = await make_user(auth, "bob")
    await make_project(auth, "proj", "alice")
    await make_project(auth, "bobs", "bob")
    await add_role(auth, alice, "proj", "bob")
    scoped = (await create_token(auth, bob, "scoped", projects=["proj"])).token
    whole = (await create_token(auth, bob, "whole")).token
    assert (await verify(auth, scoped, "proj")).role == MAINTAINER
    assert (await verify(auth, whole, "proj")).role == MAINTAINER
    await auth.projects.RemoveRole(projects_pb2.RemoveRoleRequest(session_token=alice, project_name="proj",
                                                                  username="bob"))
    for token in (scoped, whole):
        await refused(verify(auth, token, "proj"), DENIED,
                      "The token's user 'bob' has no Owner or Maintainer role on project 'proj'.")
    assert (await verify(auth, whole, "bobs")).role == OWNER  # other projects are unaffected


async def test_deleting_a_project_revokes_tokens_scoped_only_to_it(auth):
    _, alice = await make_user(auth, "alice")
    _, eve = await make_user(auth, "eve")
    await make_project(auth, "doomed", "alice")
    await make_project(auth, "kept", "alice")
    only = await create_token(auth, alice, "only doomed", projects=["doomed"])
    both = await create_token(auth, alice, "both", projects=["doomed", "kept"])
    whole = await create_token(auth, alice, "whole")
    await auth.projects.DeleteProject(projects_pb2.DeleteProjectRequest(
        session_token=alice, project_name="doomed", confirm_name="doomed"))

    await refused(verify(auth, only.token, "doomed"), INVALID, "This API token has been deleted.")
    listed = {t.description: list(t.scope.project_names) for t in await list_tokens(auth, alice)}
    assert listed == {"both": ["kept"], "whole": []}
    assert (await verify(auth, both.token, "kept")).project_name == "kept"
    await refused(verify(auth, both.token, "doomed"), DENIED, "the project it was made for has been deleted")
    removed = await events(auth, "account:api_token:removed")
    assert [(e.details["token_id"], e.details["reason"]) for e in removed] == [(only.info.id, "project_deleted")]

    # Someone else re-creates the name: the old tokens cannot reach the new project.
    eve_token = (await create_token(auth, eve, "eve")).token
    assert (await verify(auth, eve_token, "doomed")).project_created
    await refused(verify(auth, both.token, "doomed"), DENIED,
                  "it was made for an earlier project of that name, which has been deleted")
    await refused(verify(auth, whole.token, "doomed"), DENIED, "has no Owner or Maintainer role")


async def test_disabled_users_tokens_stop_and_resume(auth):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    token = (await create_token(auth, alice, "ci")).token
    await auth.admin.SetUserActive(admin_pb2.AdminSetUserActiveRequest(username="alice", active=False,
                                                                       reason="compromised"))
    await refused(verify(auth, token, "proj"), INVALID, "The account that owns this API token is disabled.")
    await refused(auth.tokens.VerifyIndexToken(tokens_pb2.VerifyIndexTokenRequest(token=token)), INVALID, "disabled")
    await auth.admin.SetUserActive(admin_pb2.AdminSetUserActiveRequest(username="alice", active=True))
    assert (await verify(auth, token, "proj")).username == "alice"


async def test_expiry_is_enforced_by_the_clock(auth):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    expires = auth.clock.now() + dt.timedelta(hours=1)
    created = await create_token(auth, alice, "short", expires_at=expires)
    assert created.info.expires_at.ToDatetime(dt.timezone.utc) == expires.replace(microsecond=0)
    auth.clock.advance(minutes=59)
    assert (await verify(auth, created.token, "proj")).project_name == "proj"
    auth.clock.advance(minutes=2)
    when = expires.replace(microsecond=0).strftime("%Y-%m-%d %H:%M:%S UTC")
    await refused(verify(auth, created.token, "proj"), DENIED, f"This token expired at {when}.")
    await refused(auth.tokens.VerifyIndexToken(tokens_pb2.VerifyIndexTokenRequest(token=created.token)),
                  DENIED, "expired")


async def test_index_token_gives_the_user_for_any_valid_token(auth):
    user, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    scoped = await create_token(auth, alice, "scoped", projects=["proj"])
    reply = await auth.tokens.VerifyIndexToken(tokens_pb2.VerifyIndexTokenRequest(token=scoped.token))
    assert (reply.user_id, reply.username, reply.token_id) == (user.id, "alice", scoped.info.id)
    await auth.tokens.DeleteToken(tokens_pb2.DeleteTokenRequest(session_token=alice, token_id=scoped.info.id))
    await refused(auth.tokens.VerifyIndexToken(tokens_pb2.VerifyIndexTokenRequest(token=scoped.token)),
                  INVALID, "deleted")
    await refused(auth.tokens.VerifyIndexToken(tokens_pb2.VerifyIndexTokenRequest(token="pypi-xyz")), INVALID)


async def test_unverified_email_stops_uploads(auth):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    token = (await create_token(auth, alice, "ci")).token
    from sqlalchemy import update

    from authsvc.accounts.models import Email

    # The primary address changes to an unverified one (as when a user switches addresses).
    async with auth.running.app.engine.begin() as conn:
        await conn.execute(update(Email).values(verified=False))
    await refused(verify(auth, token, "proj"), DENIED, "no verified primary email address")


async def test_key_rotation_keeps_old_tokens_while_their_secret_is_listed(auth):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    old = (await create_token(auth, alice, "v1 token")).token
    v1 = auth.settings.token_secrets[0]
    v2 = (2, secrets.token_bytes(32))

    async def server_with(token_secrets):
        settings = auth_settings(auth.settings.database_url, token_secrets=token_secrets)
        running = await create_server(settings, clock=auth.clock)
        channel = open_channel(f"127.0.0.1:{running.port}", settings.gateway_key)
        return running, channel, tokens_pb2_grpc.TokenServiceStub(channel)

    running, channel, stub = await server_with((v2, v1))
    try:
        request = tokens_pb2.VerifyUploadTokenRequest(token=old, project_name="proj")
        assert (await stub.VerifyUploadToken(request)).username == "alice"
        new = await stub.CreateToken(tokens_pb2.CreateTokenRequest(
            session_token=alice, description="v2 token", scope=common_pb2.TokenScope(all_projects=True)))
        assert (await stub.VerifyUploadToken(tokens_pb2.VerifyUploadTokenRequest(
            token=new.token, project_name="proj"))).username == "alice"
    finally:
        await channel.close()
        await running.stop(grace=0)
    # The original server (v1 only) cannot check a v2 token; with v1 retired the old one fails.
    await refused(verify(auth, new.token, "proj"), INVALID, "retired key")
    running, channel, stub = await server_with((v2,))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.VerifyUploadToken(tokens_pb2.VerifyUploadTokenRequest(token=old, project_name="proj"))
        assert err.value.code() == INVALID and "signed with a retired key" in err.value.details()
        assert (await stub.VerifyUploadToken(tokens_pb2.VerifyUploadTokenRequest(
            token=new.token, project_name="proj"))).username == "alice"
    finally:
        await channel.close()
        await running.stop(grace=0)



@pytest.mark.skipif(not TEST_DB.startswith("sqlite"), reason="SQLite's read path only")
async def test_sqlite_lookup_never_blocks_the_loop_on_a_lock(make_database_url):
    """The verification read answers "busy" at once instead of blocking the event loop, and is
    then redone through `Transactions.read` (a worker thread), which waits for the lock like every
    other query; both read the same values."""
    import sqlite3

    from sqlalchemy.engine import make_url

    from authsvc.server import MIGRATIONS
    from authsvc.tokens.lookup import SqliteLookup
    from gatehouse.infra.db import make_engine, make_session_factory, upgrade_async
    from gatehouse.infra.transactions import Transactions

    url = make_database_url("lookup")
    await upgrade_async(url, MIGRATIONS)
    path = make_url(url).database
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("INSERT INTO users (id, username, username_canonical, name, is_active, disabled_reason, "
                  "is_admin, created_at) VALUES ('u1', 'alice', 'alice', '', 1, '', 0, '2026-01-01 00:00:00')")
    setup.execute("INSERT INTO api_tokens (id, user_id, description, key_version, scope_all_projects, "
                  "created_at, last_used_at, expires_at, allowed_networks, release_version) VALUES ('t1', 'u1', "
                  "'ci', 1, 1, '2026-01-01 00:00:00', '2026-01-02 03:04:05.000006', '2026-04-01 00:00:00', '', '')")
    setup.close()
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    engine = make_engine(url)
    tx = Transactions(url, make_session_factory(engine))

    lookup = SqliteLookup(url, tx)

    try:
        pending = asyncio.ensure_future(lookup.fetch("t1", "proj"))
        await asyncio.sleep(0.3)
        assert not pending.done()  # waiting for the lock while the loop runs this test
        locker.execute("COMMIT")
        locker.execute("PRAGMA locking_mode=NORMAL")
        locker.execute("SELECT 1").fetchall()
        locker.close()
        row = await asyncio.wait_for(pending, 10)
        assert (row.user_id, row.username, row.is_active, row.scope_all_projects) == ("u1", "alice", True, True)
        assert row.last_used_at == dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
        assert row.project_id is None and row.role_name is None and not row.verified and not row.has_second_factor
        assert await lookup.fetch("t1", "proj") == row  # and the fast path reads the same
        assert await lookup.fetch("missing", "proj") is None
    finally:
        await lookup.close()
        tx.dispose()
        await engine.dispose()
