"""ProjectService over real gRPC: names, roles, the last-Owner rule, deletion, CheckPermission."""

from __future__ import annotations

import asyncio

import grpc

from gatehouse.auth.v1 import admin_pb2, common_pb2, projects_pb2
from gatehouse.events.v1 import event_pb2
from tests.authsvc.project_token_factories import (
    MAINTAINER,
    OWNER,
    add_role,
    events,
    make_project,
    make_user,
    refused,
)

P = projects_pb2


async def roles_of(auth, session, project):
    reply = await auth.projects.ListRoles(P.ListRolesRequest(session_token=session, project_name=project))
    return {(r.username, r.role) for r in reply.roles}


async def test_names_are_pep503_normalised_and_ids_are_stable(auth):
    await make_user(auth, "alice")
    project = await make_project(auth, "Foo_Bar.Baz", "alice")
    assert project.name == "Foo_Bar.Baz" and project.normalized_name == "foo-bar-baz"
    for spelling in ("foo-bar-baz", "FOO__bar---baz", "foo.bar_baz"):
        got = (await auth.projects.GetProject(P.GetProjectRequest(name=spelling))).project
        assert got.id == project.id
    # A second project whose name normalises the same is the same project.
    again = await auth.admin.AddRole(admin_pb2.AdminAddRoleRequest(
        project_name="foo-bar-baz", username="alice", role=OWNER, create_project=True))
    assert again.project.id == project.id
    await auth.admin.DeleteProject(admin_pb2.AdminDeleteProjectRequest(project_name="foo-bar-baz"))
    recreated = await make_project(auth, "foo-bar-baz", "alice")
    assert recreated.id != project.id


async def test_invalid_and_unknown_project_names(auth):
    await make_user(auth, "alice")
    for bad in ("-lead", "trail.", "sp ace", "ünïcode", "a/b", "x" * 201, ""):
        await refused(auth.projects.GetProject(P.GetProjectRequest(name=bad)), grpc.StatusCode.INVALID_ARGUMENT,
                      "name")
        await refused(auth.admin.AddRole(admin_pb2.AdminAddRoleRequest(
            project_name=bad, username="alice", role=OWNER, create_project=True)),
            grpc.StatusCode.INVALID_ARGUMENT)
    await refused(auth.projects.GetProject(P.GetProjectRequest(name="nope")), grpc.StatusCode.NOT_FOUND,
                  "There is no project named 'nope'")


async def test_owner_manages_roles_maintainers_only_list_them(auth):
    _, alice = await make_user(auth, "alice")
    _, bob = await make_user(auth, "bob")
    _, carol = await make_user(auth, "carol")
    await make_project(auth, "proj", "alice")
    reply = await add_role(auth, alice, "proj", "Bob", MAINTAINER)
    assert reply.role.username == "bob" and reply.role.role == MAINTAINER
    assert await roles_of(auth, bob, "proj") == {("alice", OWNER), ("bob", MAINTAINER)}
    await refused(add_role(auth, bob, "proj", "carol"), grpc.StatusCode.PERMISSION_DENIED, "Only Owners of 'proj'")
    await refused(auth.projects.ChangeRole(P.ChangeRoleRequest(
        session_token=bob, project_name="proj", username="bob", role=OWNER)),
        grpc.StatusCode.PERMISSION_DENIED)
    await refused(auth.projects.RemoveRole(P.RemoveRoleRequest(
        session_token=bob, project_name="proj", username="alice")), grpc.StatusCode.PERMISSION_DENIED)
    await refused(auth.projects.ListRoles(P.ListRolesRequest(session_token=carol, project_name="proj")),
                  grpc.StatusCode.PERMISSION_DENIED, "Only collaborators")
    await refused(add_role(auth, alice, "proj", "bob"), grpc.StatusCode.ALREADY_EXISTS, "already a Maintainer")
    await refused(add_role(auth, alice, "proj", "nobody"), grpc.StatusCode.NOT_FOUND, "no user named 'nobody'")
    await refused(add_role(auth, alice, "proj", "carol", common_pb2.ROLE_UNSPECIFIED),
                  grpc.StatusCode.INVALID_ARGUMENT, "Owner or Maintainer")
    await refused(add_role(auth, "not-a-session", "proj", "carol"), grpc.StatusCode.UNAUTHENTICATED)

    changed = await auth.projects.ChangeRole(P.ChangeRoleRequest(
        session_token=alice, project_name="proj", username="bob", role=OWNER))
    assert changed.role.role == OWNER
    await auth.projects.RemoveRole(P.RemoveRoleRequest(session_token=bob, project_name="proj", username="alice"))
    assert await roles_of(auth, bob, "proj") == {("bob", OWNER)}
    await refused(auth.projects.ListRoles(P.ListRolesRequest(session_token=alice, project_name="proj")),
                  grpc.StatusCode.PERMISSION_DENIED)


async def test_role_events_belong_to_the_project_and_the_target_user(auth):
    alice_user, alice = await make_user(auth, "alice")
    bob_user, _ = await make_user(auth, "bob")
    project = await make_project(auth, "proj", "alice")
    await add_role(auth, alice, "proj", "bob")
    await auth.projects.ChangeRole(P.ChangeRoleRequest(session_token=alice, project_name="proj",
                                                       username="bob", role=OWNER))
    await auth.projects.RemoveRole(P.RemoveRoleRequest(session_token=alice, project_name="proj", username="bob"))
    found = [e for e in await events(auth, "project:role:add", "project:role:change", "project:role:remove")
             if e.subject_username == "bob"]
    assert [e.tag for e in found] == ["project:role:add", "project:role:change", "project:role:remove"]
    for event in found:
        assert event.project_id == project.id and event.project_name == "proj"
        assert event.subject_user_id == bob_user.id
        assert event.actor.kind == event_pb2.Actor.USER and event.actor.user_id == alice_user.id
        assert event.details["target_username"] == "bob"
    assert found[0].details["role"] == "Maintainer"
    assert (found[1].details["role"], found[1].details["previous_role"]) == ("Owner", "Maintainer")
    assert found[2].details["role"] == "Owner"
    create = await events(auth, "project:create")
    assert len(create) == 1 and create[0].actor.kind == event_pb2.Actor.OPERATOR
    assert create[0].subject_user_id == alice_user.id


async def test_the_last_owner_can_be_neither_removed_nor_demoted(auth):
    _, alice = await make_user(auth, "alice")
    _, bob = await make_user(auth, "bob")
    await make_project(auth, "proj", "alice")
    await add_role(auth, alice, "proj", "bob")
    await refused(auth.projects.RemoveRole(P.RemoveRoleRequest(session_token=alice, project_name="proj",
                                                               username="alice")),
                  grpc.StatusCode.FAILED_PRECONDITION, "'alice' is the last Owner of 'proj'")
    await refused(auth.projects.ChangeRole(P.ChangeRoleRequest(session_token=alice, project_name="proj",
                                                               username="alice", role=MAINTAINER)),
                  grpc.StatusCode.FAILED_PRECONDITION, "last Owner")
    await refused(auth.admin.RemoveRole(admin_pb2.AdminRemoveRoleRequest(project_name="proj", username="alice")),
                  grpc.StatusCode.FAILED_PRECONDITION, "last Owner")
    assert await roles_of(auth, alice, "proj") == {("alice", OWNER), ("bob", MAINTAINER)}
    # With a second Owner, the first may step down.
    await auth.projects.ChangeRole(P.ChangeRoleRequest(session_token=alice, project_name="proj",
                                                       username="bob", role=OWNER))
    await auth.projects.ChangeRole(P.ChangeRoleRequest(session_token=alice, project_name="proj",
                                                       username="alice", role=MAINTAINER))
    assert await roles_of(auth, bob, "proj") == {("alice", MAINTAINER), ("bob", OWNER)}


async def test_a_user_may_own_many_projects_and_a_project_have_many_maintainers(auth):
    _, alice = await make_user(auth, "alice")
    names = [f"pkg-{i:02d}" for i in range(22)]
    for name in names:
        await make_project(auth, name, "alice")
    mine = await auth.projects.ListMyProjects(P.ListMyProjectsRequest(session_token=alice))
    assert [p.project.name for p in mine.projects] == names
    assert {p.role for p in mine.projects} == {OWNER}
    maintainers = [f"m{i}" for i in range(5)]
    for name in maintainers:
        await make_user(auth, name)
        await add_role(auth, alice, "pkg-00", name)
    assert await roles_of(auth, alice, "pkg-00") == {("alice", OWNER)} | {(m, MAINTAINER) for m in maintainers}


async def test_owner_deletes_a_project_after_confirming_its_name(auth):
    alice_user, alice = await make_user(auth, "alice")
    _, bob = await make_user(auth, "bob")
    project = await make_project(auth, "Proj", "alice")
    await add_role(auth, alice, "proj", "bob")
    await refused(auth.projects.DeleteProject(P.DeleteProjectRequest(
        session_token=bob, project_name="proj", confirm_name="Proj")), grpc.StatusCode.PERMISSION_DENIED)
    await refused(auth.projects.DeleteProject(P.DeleteProjectRequest(
        session_token=alice, project_name="proj", confirm_name="other")),
        grpc.StatusCode.INVALID_ARGUMENT, "Type the project's name 'Proj'")
    await refused(auth.projects.DeleteProject(P.DeleteProjectRequest(session_token=alice, project_name="proj")),
                  grpc.StatusCode.INVALID_ARGUMENT)
    reply = await auth.projects.DeleteProject(P.DeleteProjectRequest(
        session_token=alice, project_name="proj", confirm_name="Proj"))
    assert reply.project_id == project.id
    await refused(auth.projects.GetProject(P.GetProjectRequest(name="proj")), grpc.StatusCode.NOT_FOUND)
    assert list((await auth.projects.ListMyProjects(P.ListMyProjectsRequest(session_token=bob))).projects) == []
    deleted = await events(auth, "project:delete")
    assert len(deleted) == 1 and deleted[0].project_id == project.id
    assert deleted[0].actor.user_id == alice_user.id and deleted[0].subject_user_id == alice_user.id


async def test_check_permission_for_the_gateway(auth):
    alice_user, alice = await make_user(auth, "alice")
    _, bob = await make_user(auth, "bob")
    _, carol = await make_user(auth, "carol")
    project = await make_project(auth, "proj", "alice")
    await add_role(auth, alice, "proj", "bob")

    async def check(session, permission):
        return await auth.projects.CheckPermission(P.CheckPermissionRequest(
            session_token=session, project_name="PROJ", permission=permission))

    for permission in (P.PERMISSION_UPLOAD, P.PERMISSION_MANAGE, P.PERMISSION_VIEW_LOG):
        reply = await check(alice, permission)
        assert reply.allowed and reply.role == OWNER and reply.project.id == project.id
        assert reply.user_id == alice_user.id and reply.username == "alice" and not reply.reauth_required
    assert (await check(bob, P.PERMISSION_UPLOAD)).allowed
    for permission in (P.PERMISSION_MANAGE, P.PERMISSION_VIEW_LOG):
        reply = await check(bob, permission)
        assert not reply.allowed and reply.role == MAINTAINER and "only Owners may" in reply.reason
    reply = await check(carol, P.PERMISSION_UPLOAD)
    assert not reply.allowed and reply.reason == "You have no role on project 'proj'."
    await refused(check(alice, P.PERMISSION_UNSPECIFIED), grpc.StatusCode.INVALID_ARGUMENT)
    await refused(check("bogus", P.PERMISSION_UPLOAD), grpc.StatusCode.UNAUTHENTICATED)
    await refused(auth.projects.CheckPermission(P.CheckPermissionRequest(
        session_token=alice, project_name="missing", permission=P.PERMISSION_UPLOAD)), grpc.StatusCode.NOT_FOUND)
    # A sensitive action long after the last password entry needs a fresh one.
    auth.clock.advance(minutes=45)
    assert (await check(alice, P.PERMISSION_MANAGE)).reauth_required
    assert not (await check(alice, P.PERMISSION_UPLOAD)).reauth_required


async def test_concurrent_role_changes_keep_an_owner_and_respect_removals(auth):
    sessions = {}
    for name in ("alice", "bob", "carol"):
        sessions[name] = (await make_user(auth, name))[1]
    await make_project(auth, "proj", "alice")
    for user in ("bob", "carol"):
        await add_role(auth, sessions["alice"], "proj", user, OWNER)

    def remove(actor, username):
        return auth.projects.RemoveRole(P.RemoveRoleRequest(session_token=sessions[actor], project_name="proj",
                                                            username=username))

    async def owners():
        found = set()
        for name, session in sessions.items():
            mine = await auth.projects.ListMyProjects(P.ListMyProjectsRequest(session_token=session))
            found |= {name for p in mine.projects if p.project.name == "proj" and p.role == OWNER}
        return found

    # alice removes bob while bob removes carol: whichever runs second sees the first.
    results = await asyncio.gather(remove("alice", "bob"), remove("bob", "carol"), return_exceptions=True)
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    if errors:  # bob was removed first, so he could no longer remove anyone
        assert [e.code() for e in errors] == [grpc.StatusCode.PERMISSION_DENIED]
        assert await owners() == {"alice", "carol"}
        # The last two Owners remove each other at once: exactly one removal happens.
        results = await asyncio.gather(remove("alice", "carol"), remove("carol", "alice"), return_exceptions=True)
        errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(errors) == 1 and errors[0].code() in (grpc.StatusCode.FAILED_PRECONDITION,
                                                         grpc.StatusCode.PERMISSION_DENIED)
        assert len(await owners()) == 1
    else:  # bob removed carol first, then alice removed bob
        assert await owners() == {"alice"}
