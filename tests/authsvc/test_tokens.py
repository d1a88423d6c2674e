"""TokenService over real gRPC: creating, listing and deleting tokens, and their audit events."""

from __future__ import annotations

import datetime as dt

import grpc

from gatehouse.auth.v1 import accounts_pb2, projects_pb2, tokens_pb2
from gatehouse.events.v1 import event_pb2
from tests.authsvc.project_token_factories import (
    create_token,
    events,
    list_tokens,
    make_project,
    make_user,
    outbox_bytes,
    refused,
    verify,
)

T = tokens_pb2


async def test_create_returns_the_secret_once_and_listing_never_does(auth):
    user, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    created = await create_token(auth, alice, "laptop")
    assert created.token.startswith("pypi-") and len(created.token) > 100
    assert created.info.scope.all_projects and created.info.username == "alice"
    assert created.info.HasField("created_at") and not created.info.HasField("last_used_at")
    # No expiry asked for: the site default (90 days), to the second.
    lifetime = created.info.expires_at.seconds - created.info.created_at.seconds
    assert lifetime == 90 * 86400
    auth.clock.advance(1)
    scoped = await create_token(auth, alice, "ci", projects=["PROJ"])
    assert list(scoped.info.scope.project_names) == ["proj"] and not scoped.info.scope.all_projects

    listed = await auth.tokens.ListTokens(T.ListTokensRequest(session_token=alice))
    assert [t.description for t in listed.tokens] == ["laptop", "ci"]
    assert [t.id for t in listed.tokens] == [created.info.id, scoped.info.id]
    raw = listed.SerializeToString()
    for secret in (created.token, scoped.token):
        body = secret.removeprefix("pypi-")
        assert body[-43:].encode() not in raw and body.encode() not in raw
    # Never a secret in the audit trail either.
    trail = await outbox_bytes(auth)
    assert created.token.encode() not in trail and scoped.token.removeprefix("pypi-").encode() not in trail


async def test_creating_a_token_needs_a_verified_primary_email(auth):
    _, bob = await make_user(auth, "bob", verified=False)
    await refused(create_token(auth, bob, "ci"), grpc.StatusCode.FAILED_PRECONDITION,
                  "Verify your primary email address before creating an API token.")
    assert await list_tokens(auth, bob) == []


async def test_token_input_is_checked(auth):
    _, alice = await make_user(auth, "alice")
    _, bob = await make_user(auth, "bob")
    await make_project(auth, "bobs", "bob")
    await create_token(auth, alice, "ci")
    await refused(create_token(auth, alice, "ci"), grpc.StatusCode.ALREADY_EXISTS, "already have a token named 'ci'")
    await create_token(auth, bob, "ci")  # descriptions are unique per user only
    await refused(create_token(auth, alice, "  "), grpc.StatusCode.INVALID_ARGUMENT, "Enter a description")
    await refused(create_token(auth, alice, "x" * 101), grpc.StatusCode.INVALID_ARGUMENT, "at most 100")
    await refused(create_token(auth, alice, "a\nb"), grpc.StatusCode.INVALID_ARGUMENT, "control characters")
    await refused(create_token(auth, alice, "other", projects=["bobs"]), grpc.StatusCode.PERMISSION_DENIED,
                  "'alice' has no role on project 'bobs'")
    await refused(create_token(auth, alice, "other", projects=["missing"]), grpc.StatusCode.NOT_FOUND,
                  "There is no project named 'missing'")
    await refused(create_token(auth, alice, "other", projects=["-bad-"]), grpc.StatusCode.INVALID_ARGUMENT)
    both = T.CreateTokenRequest(session_token=alice, description="both")
    both.scope.all_projects = True
    both.scope.project_names.append("bobs")
    await refused(auth.tokens.CreateToken(both), grpc.StatusCode.INVALID_ARGUMENT, "Choose the token's scope")
    await refused(auth.tokens.CreateToken(T.CreateTokenRequest(session_token=alice, description="none")),
                  grpc.StatusCode.INVALID_ARGUMENT, "Choose the token's scope")
    await refused(create_token(auth, alice, "old", expires_at=auth.clock.now() - dt.timedelta(seconds=1)),
                  grpc.StatusCode.INVALID_ARGUMENT, "must be in the future")
    await refused(create_token(auth, "no-session", "x"), grpc.StatusCode.UNAUTHENTICATED)
    assert [t.description for t in await list_tokens(auth, alice)] == ["ci"]


async def test_only_the_owner_deletes_a_token(auth):
    _, alice = await make_user(auth, "alice")
    _, mallory = await make_user(auth, "mallory")
    await make_project(auth, "proj", "alice")
    created = await create_token(auth, alice, "ci")
    # Another user's token id looks exactly like an unknown one.
    other = await refused(auth.tokens.DeleteToken(T.DeleteTokenRequest(session_token=mallory,
                                                                       token_id=created.info.id)),
                          grpc.StatusCode.NOT_FOUND)
    unknown = await refused(auth.tokens.DeleteToken(T.DeleteTokenRequest(
        session_token=mallory, token_id="00000000-0000-4000-8000-000000000000")), grpc.StatusCode.NOT_FOUND)
    assert other.replace(created.info.id, "X") == unknown.replace("00000000-0000-4000-8000-000000000000", "X")
    assert (await verify(auth, created.token, "proj")).username == "alice"

    await auth.tokens.DeleteToken(T.DeleteTokenRequest(session_token=alice, token_id=created.info.id))
    assert await list_tokens(auth, alice) == []
    await refused(verify(auth, created.token, "proj"), grpc.StatusCode.UNAUTHENTICATED,
                  "This API token has been deleted.")
    await refused(auth.tokens.DeleteToken(T.DeleteTokenRequest(session_token=alice, token_id=created.info.id)),
                  grpc.StatusCode.NOT_FOUND)


async def test_token_events_for_the_user_log_and_each_project_log(auth):
    user, alice = await make_user(auth, "alice")
    one = await make_project(auth, "alpha", "alice")
    two = await make_project(auth, "beta", "alice")
    whole = await create_token(auth, alice, "whole account")
    scoped = await create_token(auth, alice, "release automation", projects=["alpha", "beta"],
                                expires_at=auth.clock.now() + dt.timedelta(days=30))
    await auth.tokens.DeleteToken(T.DeleteTokenRequest(session_token=alice, token_id=scoped.info.id))

    account = await events(auth, "account:api_token:added", "account:api_token:removed")
    assert [(e.tag, e.details["token_id"]) for e in account] == [
        ("account:api_token:added", whole.info.id), ("account:api_token:added", scoped.info.id),
        ("account:api_token:removed", scoped.info.id)]
    for event in account:
        assert event.subject_user_id == user.id and event.project_id == ""
        assert event.actor.kind == event_pb2.Actor.USER and event.actor.username == "alice"
    assert account[0].details["scope"] == "all projects" and account[0].details["description"] == "whole account"
    assert account[1].details["scope"] == "projects: alpha, beta" and account[1].details["expires_at"]
    assert account[1].ip_address == "192.0.2.7" and account[1].user_agent == "pytest"

    per_project = await events(auth, "project:api_token:added", "project:api_token:removed")
    assert sorted((e.tag, e.project_name) for e in per_project) == [
        ("project:api_token:added", "alpha"), ("project:api_token:added", "beta"),
        ("project:api_token:removed", "alpha"), ("project:api_token:removed", "beta")]
    for event in per_project:
        # Privacy: a project's log names neither the token's other projects nor its scope.
        other = "beta" if event.project_name == "alpha" else "alpha"
        assert other not in "".join(event.details.values()) and "scope" not in event.details
        assert event.project_id == {"alpha": one.id, "beta": two.id}[event.project_name]
        assert event.subject_user_id == "" and event.details["username"] == "alice"


async def test_session_rpcs_never_accept_an_api_token(auth):
    _, alice = await make_user(auth, "alice")
    token = (await create_token(auth, alice, "ci")).token
    await refused(auth.tokens.ListTokens(T.ListTokensRequest(session_token=token)), grpc.StatusCode.UNAUTHENTICATED)
    await refused(auth.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(session_token=token)),
                  grpc.StatusCode.UNAUTHENTICATED)
    await refused(auth.projects.ListMyProjects(projects_pb2.ListMyProjectsRequest(session_token=token)),
                  grpc.StatusCode.UNAUTHENTICATED)
    await refused(create_token(auth, token, "from a token"), grpc.StatusCode.UNAUTHENTICATED)
    # …and the verification RPCs never accept a session token.
    await refused(verify(auth, alice, "proj"), grpc.StatusCode.UNAUTHENTICATED, "must start with 'pypi-'")
