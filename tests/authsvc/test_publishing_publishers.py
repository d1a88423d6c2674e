"""Registering trusted publishers over gRPC: Owners (and operators) add, list and remove a project's
publishers; users register pending publishers for new project names; every change is an event."""

from __future__ import annotations

import grpc
import pytest

from gatehouse.auth.v1 import admin_pb2, publishing_pb2
from tests.authsvc.project_token_factories import MAINTAINER, add_role, events, make_project, make_user, refused
from tests.authsvc.publishing_support import (  # noqa: F401  (fixtures)
    add_publisher, auth_overrides, ghes, github, github_spec, gitlab, gitlab_spec, publishing, reason_of,
)


@pytest.fixture
async def owner(auth):
    _, session = await make_user(auth, "alice")
    await make_project(auth, "widget", "alice")
    return session


async def test_an_owner_adds_lists_and_removes_a_publisher(auth, github, owner):
    added = await add_publisher(auth, owner, "widget", github_spec(github, environment="pypi"))
    assert added.kind == publishing_pb2.PUBLISHER_KIND_GITHUB and added.created_by == "alice"
    assert added.display == "GitHub octo/widget, workflow release.yml, environment pypi"
    listed = await publishing(auth).ListPublishers(publishing_pb2.ListPublishersRequest(
        session_token=owner, project_name="Widget"))
    assert [p.id for p in listed.publishers] == [added.id] and not listed.publishers[0].bound_repository_id
    await publishing(auth).RemovePublisher(publishing_pb2.RemovePublisherRequest(
        session_token=owner, project_name="widget", publisher_id=added.id))
    (add,), (remove,) = await events(auth, "project:publisher:add"), await events(auth, "project:publisher:remove")
    assert add.project_name == remove.project_name == "widget"
    assert add.details["publisher_id"] == remove.details["publisher_id"] == added.id
    assert add.actor.username == "alice"


async def test_a_duplicate_publisher_is_refused(auth, github, owner):
    await add_publisher(auth, owner, "widget", github_spec(github))
    await refused(add_publisher(auth, owner, "widget", github_spec(github, "OCTO/Widget")),
                  grpc.StatusCode.ALREADY_EXISTS, "already has this trusted publisher")


async def test_maintainers_and_strangers_cannot_manage_publishers(auth, github, owner):
    _, maintainer = await make_user(auth, "mo")
    await add_role(auth, owner, "widget", "mo", MAINTAINER)
    _, stranger = await make_user(auth, "sid")
    for session in (maintainer, stranger):
        await refused(add_publisher(auth, session, "widget", github_spec(github)), grpc.StatusCode.PERMISSION_DENIED,
                      "Only Owners")
        await refused(publishing(auth).ListPublishers(publishing_pb2.ListPublishersRequest(
            session_token=session, project_name="widget")), grpc.StatusCode.PERMISSION_DENIED)
    assert not await events(auth, "project:publisher:add")


@pytest.mark.parametrize("spec, fragment", [
    (dict(owner="", repository="widget", workflow="release.yml"), "Enter the owner"),
    (dict(owner="octo", repository="a/b", workflow="release.yml"), "without '/'"),
    (dict(owner="octo", repository="widget", workflow=".github/workflows/release.yml"), "file name only"),
    (dict(owner="octo", repository="widget", workflow="release.yml", email="x@example.org"), "has no email"),
    (dict(owner="octo", repository="widget", workflow="release.yml", claims={"sub": "x"}), "custom issuers"),
])
async def test_bad_publisher_fields_are_refused_with_what_to_fix(auth, github, owner, spec, fragment):
    request = publishing_pb2.PublisherSpec(issuer_url=github.url, **spec)
    await refused(add_publisher(auth, owner, "widget", request), grpc.StatusCode.INVALID_ARGUMENT, fragment)


async def test_an_unknown_issuer_is_refused(auth, owner):
    request = publishing_pb2.PublisherSpec(issuer_url="https://token.actions.githubusercontent.com", owner="o",
                                           repository="r", workflow="w.yml")
    await refused(add_publisher(auth, owner, "widget", request), grpc.StatusCode.INVALID_ARGUMENT,
                  "not an issuer this index trusts")


async def test_issuers_are_listed_for_the_form(auth, github, gitlab, ghes):
    reply = await publishing(auth).ListIssuers(publishing_pb2.ListIssuersRequest())
    assert [(i.url, i.kind, i.name) for i in reply.issuers] == [
        (github.url, publishing_pb2.PUBLISHER_KIND_GITHUB, "GitHub"),
        (gitlab.url, publishing_pb2.PUBLISHER_KIND_GITLAB, "GitLab"),
        (ghes.url, publishing_pb2.PUBLISHER_KIND_GITHUB, "GitHub Enterprise")]


async def test_pending_publishers_are_the_users_own(auth, github):
    user, session = await make_user(auth, "pat")
    _, other = await make_user(auth, "oli")
    added = (await publishing(auth).AddPendingPublisher(publishing_pb2.AddPendingPublisherRequest(
        session_token=session, project_name="new-thing", spec=github_spec(github, "pat/new")))).pending_publisher
    mine = await publishing(auth).ListPendingPublishers(publishing_pb2.ListPendingPublishersRequest(
        session_token=session))
    assert [p.id for p in mine.pending_publishers] == [added.id]
    theirs = await publishing(auth).ListPendingPublishers(publishing_pb2.ListPendingPublishersRequest(
        session_token=other))
    assert not theirs.pending_publishers
    await refused(publishing(auth).RemovePendingPublisher(publishing_pb2.RemovePendingPublisherRequest(
        session_token=other, pending_publisher_id=added.id)), grpc.StatusCode.NOT_FOUND)
    await publishing(auth).RemovePendingPublisher(publishing_pb2.RemovePendingPublisherRequest(
        session_token=session, pending_publisher_id=added.id))
    tags = [e.tag for e in await events(auth) if "pending_publisher" in e.tag]
    assert tags == ["account:pending_publisher:add", "account:pending_publisher:remove"]
    assert all(e.subject_user_id == user.id for e in await events(auth, *tags))


async def test_a_pending_publisher_for_an_existing_project_or_by_an_unverified_user_is_refused(auth, github, owner):
    await refused(publishing(auth).AddPendingPublisher(publishing_pb2.AddPendingPublisherRequest(
        session_token=owner, project_name="Widget", spec=github_spec(github))), grpc.StatusCode.ALREADY_EXISTS,
        "exists already")
    _, unverified = await make_user(auth, "uma", verified=False)
    await refused(publishing(auth).AddPendingPublisher(publishing_pb2.AddPendingPublisherRequest(
        session_token=unverified, project_name="new", spec=github_spec(github))),
        grpc.StatusCode.FAILED_PRECONDITION, "Verify your primary email")


async def test_operators_manage_any_projects_publishers(auth, github, gitlab, owner):
    added = (await auth.admin.AddPublisher(admin_pb2.AdminAddPublisherRequest(
        project_name="widget", spec=gitlab_spec(gitlab)))).publisher
    assert added.kind == publishing_pb2.PUBLISHER_KIND_GITLAB and added.created_by == "operator"
    listed = await auth.admin.ListPublishers(admin_pb2.AdminListPublishersRequest(project_name="widget"))
    assert [p.id for p in listed.publishers] == [added.id]
    await auth.admin.RemovePublisher(admin_pb2.AdminRemovePublisherRequest(project_name="widget",
                                                                            publisher_id=added.id))
    pending = (await auth.admin.AddPendingPublisher(admin_pb2.AdminAddPendingPublisherRequest(
        username="alice", project_name="later", spec=github_spec(github)))).pending_publisher
    everyone = await auth.admin.ListPendingPublishers(admin_pb2.AdminListPendingPublishersRequest())
    assert [(p.id, p.username) for p in everyone.pending_publishers] == [(pending.id, "alice")]
    await auth.admin.RemovePendingPublisher(admin_pb2.AdminRemovePendingPublisherRequest(
        pending_publisher_id=pending.id))
    assert [e.actor.kind for e in await events(auth, "project:publisher:add", "project:publisher:remove")] == [2, 2]


async def test_the_gateway_credential_cannot_call_the_operators_publisher_methods(auth, github, owner):
    from gatehouse.auth.v1 import admin_pb2_grpc

    stub = admin_pb2_grpc.AdminServiceStub(auth.gateway)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AddPublisher(admin_pb2.AdminAddPublisherRequest(project_name="widget", spec=github_spec(github)))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_deleting_a_project_removes_its_publishers_each_with_its_event(auth, github, gitlab, owner):
    """Regression: the database cascade removed them with no `project:publisher:remove` event."""
    first = await add_publisher(auth, owner, "widget", github_spec(github))
    second = await add_publisher(auth, owner, "widget", gitlab_spec(gitlab))
    await auth.admin.DeleteProject(admin_pb2.AdminDeleteProjectRequest(project_name="widget"))
    removed = await events(auth, "project:publisher:remove")
    assert sorted((e.details["publisher_id"], e.details["reason"]) for e in removed) == sorted([
        (first.id, "project_deleted"), (second.id, "project_deleted")])
    assert all(e.project_name == "widget" and e.actor.kind == e.actor.OPERATOR for e in removed)
    tags = [e.tag for e in await events(auth) if e.tag in ("project:publisher:remove", "project:delete")]
    assert tags == ["project:publisher:remove", "project:publisher:remove", "project:delete"]
    await make_project(auth, "widget", "alice")  # the name again: none of the old publishers comes back
    listed = await publishing(auth).ListPublishers(publishing_pb2.ListPublishersRequest(
        session_token=owner, project_name="widget"))
    assert not listed.publishers
