"""The seed's API token and project workflows through the whole system: project- and user-scoped
tokens added and removed (user log; project log without the token's other projects), a user removed
from a project (their token stops, the project log lists it), a project deleted (its token stops,
its log lists it). Each event is checked in the right log and in no wrong one."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio

from gatehouse.auth.v1 import common_pb2, projects_pb2, tokens_pb2
from tests.e2e.journeys import (
    assert_not_in_project_log,
    assert_not_in_user_log,
    assert_own_events,
    assert_untouched,
    mentions,
    rpc_error,
)
from tests.system import Person, System, client

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bystander(system) -> Person:
    return await system.person("by")


async def verify(system: System, token: str, project: str) -> tokens_pb2.VerifyUploadTokenResponse:
    """The gateway's check for one upload to `project`."""
    return await system.tokens.VerifyUploadToken(tokens_pb2.VerifyUploadTokenRequest(
        token=token, project_name=project, client=client("192.0.2.99", "twine/6.1.0")))


async def delete_token(system: System, session: str, token_id: str, ip: str) -> None:
    await system.tokens.DeleteToken(tokens_pb2.DeleteTokenRequest(session_token=session, token_id=token_id,
                                                                  client=client(ip)))


async def test_project_scoped_token_added_and_removed(system, bystander):
    """Seed: "Add and remove project-scoped API token, and verify that you see this in the user log";
    each scoped project's log lists it too, without naming the token's other projects."""
    ip = "192.0.2.10"
    owner = await system.person("pst")
    (first, first_id), (second, second_id), (outside, outside_id) = [await system.project(owner) for _ in range(3)]
    session = await system.session(owner, ip=ip)
    created = await system.create_token(session, "deploy both", projects=[first, second], ip=ip)
    token_id = created.info.id
    assert (await verify(system, created.token, first)).project_id == first_id
    refused = await rpc_error(verify(system, created.token, outside))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    await delete_token(system, session, token_id, ip)
    refused = await rpc_error(verify(system, created.token, first))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED

    added = (await system.wait_for_user_event(owner.user_id, "account:api_token:added"))[0]
    removed = (await system.wait_for_user_event(owner.user_id, "account:api_token:removed"))[0]
    for event in (added, removed):
        assert event.details["token_id"] == token_id and event.ip_address == ip
        assert first in event.details["scope"] and second in event.details["scope"]
        assert event.actor.user_id == owner.user_id and not event.project_id
    assert created.token not in str(await system.user_events(owner.user_id))

    for project, project_id, other, other_id in ((first, first_id, second, second_id),
                                                 (second, second_id, first, first_id)):
        for tag in ("project:api_token:added", "project:api_token:removed"):
            event = (await system.wait_for_project_event(
                project_id, tag, where=lambda e: e.details.get("token_id") == token_id))[0]
            assert event.project_name == project and event.details["username"] == owner.username
            assert not mentions(event, other, other_id, created.token), event  # no other project of the scope
    project_events = [e for e in await system.project_events(first_id) if e.tag.startswith("project:api_token:")]
    await assert_not_in_project_log(system, outside_id, project_events)
    await assert_not_in_project_log(system, second_id, project_events)
    await assert_own_events(system, owner.user_id, await system.user_events(owner.user_id))
    await assert_untouched(system, bystander, [added, removed, *project_events])


async def test_user_scoped_token_added_and_removed(system, bystander):
    """Seed: "Add and remove user-scoped API token, and verify that you see this in the user log"."""
    ip = "192.0.2.20"
    owner = await system.person("ust")
    project, project_id = await system.project(owner)
    session = await system.session(owner, ip=ip)
    created = await system.create_token(session, "everything", ip=ip)
    assert created.info.scope.all_projects
    assert (await verify(system, created.token, project)).user_id == owner.user_id
    listed = await system.tokens.ListTokens(tokens_pb2.ListTokensRequest(session_token=session))
    assert [t.id for t in listed.tokens] == [created.info.id]
    await delete_token(system, session, created.info.id, ip)
    assert (await rpc_error(verify(system, created.token, project))).code() == grpc.StatusCode.UNAUTHENTICATED

    added = (await system.wait_for_user_event(owner.user_id, "account:api_token:added"))[0]
    removed = (await system.wait_for_user_event(owner.user_id, "account:api_token:removed"))[0]
    assert added.details["scope"] == removed.details["scope"] == "all projects"
    assert added.details["description"] == "everything" and removed.details["token_id"] == created.info.id
    await system.settle()
    project_tags = [e.tag for e in await system.project_events(project_id)]
    assert not [t for t in project_tags if "api_token" in t], project_tags  # no project log for an account token
    await assert_own_events(system, owner.user_id, await system.user_events(owner.user_id))
    await assert_untouched(system, bystander, [added, removed])


async def test_removed_collaborator_token_stops_and_project_log_lists_it(system, bystander):
    """Seed: "Remove a user from owner/maintainer status for a project, and verify that their API
    token for that project stops working and that the project log lists the event"."""
    ip = "192.0.2.30"
    owner, maintainer = await system.person("own"), await system.person("mnt")
    project, project_id = await system.project(owner)
    elsewhere, elsewhere_id = await system.project(owner)
    owner_session = await system.session(owner, ip=ip)
    await system.projects.AddRole(projects_pb2.AddRoleRequest(
        session_token=owner_session, project_name=project, username=maintainer.username,
        role=common_pb2.ROLE_MAINTAINER, client=client(ip)))
    maintainer_session = await system.session(maintainer, ip="192.0.2.31")
    token = (await system.create_token(maintainer_session, "ci", projects=[project], ip="192.0.2.31")).token
    assert (await verify(system, token, project)).role == common_pb2.ROLE_MAINTAINER

    # The project log is for Owners only: authsvc tells the gateway who may see it.
    may_see = {}
    for who, session in (("owner", owner_session), ("maintainer", maintainer_session)):
        may_see[who] = (await system.projects.CheckPermission(projects_pb2.CheckPermissionRequest(
            session_token=session, project_name=project, permission=projects_pb2.PERMISSION_VIEW_LOG))).allowed
    assert may_see == {"owner": True, "maintainer": False}

    await system.projects.RemoveRole(projects_pb2.RemoveRoleRequest(
        session_token=owner_session, project_name=project, username=maintainer.username, client=client(ip)))
    refused = await rpc_error(verify(system, token, project))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED and maintainer.username in refused.details()

    removed = (await system.wait_for_project_event(project_id, "project:role:remove"))[0]
    assert removed.subject_user_id == maintainer.user_id and removed.actor.user_id == owner.user_id
    assert removed.details["target_username"] == maintainer.username and removed.details["role"]
    assert removed.ip_address == ip
    # Both people see it in their own logs; no other project's log has it.
    assert removed.event_id in {e.event_id for e in await system.user_events(maintainer.user_id)}
    assert removed.event_id in {e.event_id for e in await system.user_events(owner.user_id)}
    log = await system.project_events(project_id)
    assert all(e.project_id == project_id for e in log)
    assert {"project:create", "project:role:add", "project:api_token:added", "project:role:remove"} <= {
        e.tag for e in log}
    await assert_not_in_project_log(system, elsewhere_id, log)
    await assert_untouched(system, bystander, log)


async def test_deleted_project_token_stops_and_log_lists_it(system, bystander):
    """Seed: "Delete a project, and verify that an API token scoped for that project stops working"
    (also for a new project of the same name), with project:delete in the project's log."""
    ip = "192.0.2.40"
    owner = await system.person("del")
    project, project_id = await system.project(owner)
    kept, kept_id = await system.project(owner)
    session = await system.session(owner, ip=ip)
    scoped = await system.create_token(session, "only this one", projects=[project], ip=ip)
    assert (await verify(system, scoped.token, project)).project_id == project_id
    wrong = await rpc_error(system.projects.DeleteProject(projects_pb2.DeleteProjectRequest(
        session_token=session, project_name=project, confirm_name="something else", client=client(ip))))
    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
    deleted = await system.projects.DeleteProject(projects_pb2.DeleteProjectRequest(
        session_token=session, project_name=project, confirm_name=project, client=client(ip)))
    assert deleted.project_id == project_id
    assert (await rpc_error(verify(system, scoped.token, project))).code() == grpc.StatusCode.UNAUTHENTICATED

    _, new_id = await system.project(owner, project)  # the same name again: another project
    assert new_id != project_id
    assert (await rpc_error(verify(system, scoped.token, project))).code() == grpc.StatusCode.UNAUTHENTICATED

    gone = (await system.wait_for_project_event(project_id, "project:delete"))[0]
    assert gone.actor.user_id == owner.user_id and gone.project_name == project and gone.ip_address == ip
    revoked = (await system.wait_for_user_event(
        owner.user_id, "account:api_token:removed", where=lambda e: e.details["token_id"] == scoped.info.id))[0]
    assert revoked.details["reason"] == "project_deleted"
    old_log = await system.project_events(project_id)
    assert {"project:create", "project:api_token:added", "project:api_token:removed", "project:delete"} <= {
        e.tag for e in old_log}
    await assert_not_in_project_log(system, new_id, old_log)
    await assert_not_in_project_log(system, kept_id, old_log)
    # The old token's refused upload to the new project of that name is in the new project's log.
    await system.wait_for_project_event(new_id, "project:upload:refused")
    new_log = await system.project_events(new_id)
    assert [e.tag for e in reversed(new_log)] == ["project:create", "project:role:add", "project:upload:refused"]
    assert new_log[0].details["token_id"] == scoped.info.id and new_log[0].details["reason"] == "token_deleted"
    await assert_not_in_user_log(system, bystander.user_id, old_log)
    await assert_untouched(system, bystander, [gone, revoked])
