"""AdminService over real gRPC with the operator credential: users, tokens, roles, projects."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc

from gatehouse.auth.v1 import admin_pb2, admin_pb2_grpc, common_pb2
from gatehouse.events.v1 import event_pb2
from tests.authsvc.project_token_factories import (
    MAINTAINER,
    OWNER,
    create_token,
    events,
    list_tokens,
    login,
    make_project,
    make_user,
    refused,
    verify,
)

A = admin_pb2


def mint_request(username, description="minted", projects=(), expires_at=None):
    request = A.AdminMintTokenRequest(username=username, description=description,
                                      scope=common_pb2.TokenScope(all_projects=not projects,
                                                                  project_names=list(projects)))
    if expires_at is not None:
        request.expires_at.FromDatetime(expires_at.astimezone(dt.timezone.utc).replace(tzinfo=None))
    return request


async def test_only_the_operator_credential_reaches_admin_rpcs(auth):
    gateway_stub = admin_pb2_grpc.AdminServiceStub(auth.gateway)
    for call in (gateway_stub.CreateUser(A.AdminCreateUserRequest(username="x", email="x@example.org")),
                 gateway_stub.MintToken(mint_request("x")),
                 gateway_stub.DeleteProject(A.AdminDeleteProjectRequest(project_name="x"))):
        await refused(call, grpc.StatusCode.PERMISSION_DENIED, "operator credential")


async def test_users_are_created_read_disabled_and_promoted(auth):
    created = await auth.admin.CreateUser(A.AdminCreateUserRequest(
        username="Alice", email="alice@example.org", password="correct horse battery staple",
        email_verified=True, name="Alice A."))
    assert created.user.username == "Alice" and created.user.email_verified and created.user.is_active
    assert (await auth.admin.GetUser(A.AdminGetUserRequest(username="alice"))).user.id == created.user.id
    await refused(auth.admin.GetUser(A.AdminGetUserRequest(username="nobody")), grpc.StatusCode.NOT_FOUND)
    await refused(auth.admin.CreateUser(A.AdminCreateUserRequest(username="alice", email="other@example.org")),
                  grpc.StatusCode.ALREADY_EXISTS)
    no_password = await auth.admin.CreateUser(A.AdminCreateUserRequest(username="bob", email="bob@example.org"))
    assert not no_password.user.email_verified

    disabled = await auth.admin.SetUserActive(A.AdminSetUserActiveRequest(username="alice", active=False,
                                                                          reason="lost laptop"))
    assert not disabled.user.is_active
    admin = await auth.admin.SetAdmin(A.AdminSetAdminRequest(username="alice", is_admin=True))
    assert admin.user.is_admin
    enabled = await auth.admin.SetUserActive(A.AdminSetUserActiveRequest(username="alice", active=True))
    assert enabled.user.is_active
    for event in await events(auth, "account:create", "account:disable", "account:enable"):
        assert event.actor.kind == event_pb2.Actor.OPERATOR


async def test_operator_mints_lists_and_revokes_tokens(auth):
    user, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    minted = await auth.admin.MintToken(mint_request("alice", "deploy", projects=["proj"]))
    assert minted.token.startswith("pypi-") and minted.info.username == "alice"
    assert list(minted.info.scope.project_names) == ["proj"]
    assert (await verify(auth, minted.token, "proj")).user_id == user.id
    own = await create_token(auth, alice, "own")

    listed = await auth.admin.ListTokens(A.AdminListTokensRequest(username="alice"))
    assert [t.description for t in listed.tokens] == ["deploy", "own"]
    assert minted.token.removeprefix("pypi-").encode() not in listed.SerializeToString()

    await auth.admin.RevokeToken(A.AdminRevokeTokenRequest(token_id=own.info.id))
    await refused(verify(auth, own.token, "proj"), grpc.StatusCode.UNAUTHENTICATED, "deleted")
    assert [t.description for t in await list_tokens(auth, alice)] == ["deploy"]
    await refused(auth.admin.RevokeToken(A.AdminRevokeTokenRequest(token_id=own.info.id)), grpc.StatusCode.NOT_FOUND)
    await refused(auth.admin.ListTokens(A.AdminListTokensRequest(username="nobody")), grpc.StatusCode.NOT_FOUND)

    added = [e for e in await events(auth, "account:api_token:added") if e.details["token_id"] == minted.info.id]
    removed = await events(auth, "account:api_token:removed")
    assert added[0].actor.kind == event_pb2.Actor.OPERATOR and added[0].subject_user_id == user.id
    assert removed[0].actor.kind == event_pb2.Actor.OPERATOR and removed[0].details["reason"] == "operator"
    assert [e.project_name for e in await events(auth, "project:api_token:added")] == ["proj"]


async def test_minting_needs_a_verified_email_and_a_valid_request(auth):
    await make_user(auth, "unverified", verified=False)
    await make_user(auth, "alice")
    await refused(auth.admin.MintToken(mint_request("unverified")), grpc.StatusCode.FAILED_PRECONDITION,
                  "Verify your primary email address")
    await refused(auth.admin.MintToken(mint_request("nobody")), grpc.StatusCode.NOT_FOUND)
    await refused(auth.admin.MintToken(mint_request("alice", projects=["missing"])), grpc.StatusCode.NOT_FOUND)
    await refused(auth.admin.MintToken(mint_request("alice", expires_at=auth.clock.now() - dt.timedelta(days=1))),
                  grpc.StatusCode.INVALID_ARGUMENT, "future")
    await auth.admin.SetUserActive(A.AdminSetUserActiveRequest(username="alice", active=False))
    await refused(auth.admin.MintToken(mint_request("alice")), grpc.StatusCode.FAILED_PRECONDITION, "disabled")


async def test_operator_roles_and_project_deletion(auth):
    await make_user(auth, "alice")
    await make_user(auth, "bob")
    await refused(auth.admin.AddRole(A.AdminAddRoleRequest(project_name="new", username="alice", role=OWNER)),
                  grpc.StatusCode.NOT_FOUND, "There is no project named 'new'")
    await refused(auth.admin.AddRole(A.AdminAddRoleRequest(project_name="new", username="alice", role=MAINTAINER,
                                                           create_project=True)),
                  grpc.StatusCode.INVALID_ARGUMENT, "needs an Owner")
    created = await auth.admin.AddRole(A.AdminAddRoleRequest(project_name="New", username="alice", role=OWNER,
                                                             create_project=True))
    assert created.project.name == "New" and created.role.role == OWNER
    bob = await auth.admin.AddRole(A.AdminAddRoleRequest(project_name="new", username="bob", role=MAINTAINER))
    assert bob.role.role == MAINTAINER and bob.project.id == created.project.id
    # For operators, adding an existing role sets it (promote/demote in one command).
    promoted = await auth.admin.AddRole(A.AdminAddRoleRequest(project_name="new", username="bob", role=OWNER))
    assert promoted.role.role == OWNER
    await auth.admin.RemoveRole(A.AdminRemoveRoleRequest(project_name="new", username="alice"))
    await refused(auth.admin.RemoveRole(A.AdminRemoveRoleRequest(project_name="new", username="alice")),
                  grpc.StatusCode.NOT_FOUND, "has no role")
    await refused(auth.admin.RemoveRole(A.AdminRemoveRoleRequest(project_name="new", username="bob")),
                  grpc.StatusCode.FAILED_PRECONDITION, "last Owner")
    tags = [(e.tag, e.actor.kind) for e in await events(auth) if e.project_id == created.project.id]
    assert ("project:role:change", event_pb2.Actor.OPERATOR) in tags
    assert ("project:role:remove", event_pb2.Actor.OPERATOR) in tags

    bob_session = await login(auth, "bob")
    scoped = await create_token(auth, bob_session, "scoped", projects=["new"])
    deleted = await auth.admin.DeleteProject(A.AdminDeleteProjectRequest(project_name="NEW"))
    assert deleted.project_id == created.project.id
    await refused(verify(auth, scoped.token, "new"), grpc.StatusCode.UNAUTHENTICATED, "deleted")
    await refused(auth.admin.DeleteProject(A.AdminDeleteProjectRequest(project_name="new")), grpc.StatusCode.NOT_FOUND)
    delete_event = (await events(auth, "project:delete"))[0]
    assert delete_event.actor.kind == event_pb2.Actor.OPERATOR and delete_event.subject_user_id == ""
    assert (await auth.admin.GetUser(A.AdminGetUserRequest(username="alice"))).user.is_active


async def test_concurrent_operator_creations_make_one_project(auth):
    await make_user(auth, "alice")
    request = A.AdminAddRoleRequest(project_name="racy", username="alice", role=OWNER, create_project=True)
    results = await asyncio.gather(*[auth.admin.AddRole(request) for _ in range(6)], return_exceptions=True)
    for result in results:
        if isinstance(result, grpc.aio.AioRpcError):
            assert result.code() == grpc.StatusCode.ALREADY_EXISTS and "try again" in result.details()
        else:
            assert result.role.role == OWNER
    assert len({r.project.id for r in results if not isinstance(r, Exception)}) == 1
    assert len(await events(auth, "project:create")) == 1
