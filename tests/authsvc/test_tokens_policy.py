"""Two-factor policy at the token boundary: the site policy gates creating and using tokens; a
project's flag gates uploads by its collaborators. (The policy itself is the two-factor area's.)"""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import delete

from authsvc.twofactor.models import RecoveryCode, TotpCredential
from gatehouse.auth.v1 import admin_pb2, common_pb2, projects_pb2
from tests.authsvc.project_token_factories import (
    add_role,
    create_token,
    events,
    make_project,
    make_user,
    refused,
    verify,
)
from tests.authsvc.twofactor_support import align_clock, enrol_totp

DENIED = grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("auth_overrides", [{"require_2fa_for_upload": True}])
async def test_site_policy_needs_a_second_factor_for_tokens(auth):
    align_clock(auth)
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    await refused(create_token(auth, alice, "ci"), DENIED, "requires two-factor authentication",
                  "before creating an API token")
    await refused(auth.admin.MintToken(admin_pb2.AdminMintTokenRequest(
        username="alice", description="minted", scope=common_pb2.TokenScope(all_projects=True))),
        DENIED, "requires two-factor authentication")
    await enrol_totp(auth, alice)
    token = (await create_token(auth, alice, "ci")).token
    assert (await verify(auth, token, "proj")).username == "alice"


async def test_a_project_requiring_two_factor_refuses_uploads_without_it(auth):
    align_clock(auth)
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "strict", "alice")
    await make_project(auth, "relaxed", "alice")
    await auth.admin.SetProjectTwoFactorRequired(admin_pb2.AdminSetProjectTwoFactorRequiredRequest(
        project_name="strict", required=True))
    token = (await create_token(auth, alice, "ci")).token
    assert (await verify(auth, token, "relaxed")).project_name == "relaxed"
    await refused(verify(auth, token, "strict"), DENIED, "User 'alice' has not enabled two-factor authentication",
                  "'strict' requires two-factor authentication")
    await enrol_totp(auth, alice)
    assert (await verify(auth, token, "strict")).project_name == "strict"



@pytest.mark.parametrize("auth_overrides", [{"require_2fa_for_upload": True}])
async def test_a_refused_first_upload_creates_nothing(auth):
    """Regression: the policy is checked before a first upload creates its project."""
    align_clock(auth)
    _, alice = await make_user(auth, "alice")
    await enrol_totp(auth, alice)
    token = (await create_token(auth, alice, "ci")).token
    async with auth.running.app.db() as s, s.begin():  # the second factor is gone (no RPC allows it here)
        await s.execute(delete(RecoveryCode))
        await s.execute(delete(TotpCredential))
    await refused(verify(auth, token, "brand-new"), DENIED, "'alice' has not enabled two-factor authentication")
    await refused(auth.projects.GetProject(projects_pb2.GetProjectRequest(name="brand-new")),
                  grpc.StatusCode.NOT_FOUND)


async def test_owners_require_two_factor_of_their_collaborators(auth):
    """SetTwoFactorRequired: Owners only, and only an Owner who has a second factor may turn it on;
    the answer names the collaborators still without one; each real change is one project event."""
    align_clock(auth)
    _, alice = await make_user(auth, "alice")
    _, bob = await make_user(auth, "bob")
    await make_project(auth, "strict", "alice")
    await add_role(auth, alice, "strict", "bob")
    bob_token = (await create_token(auth, bob, "bob-ci")).token

    def set_required(session, required=True):
        return auth.projects.SetTwoFactorRequired(projects_pb2.SetTwoFactorRequiredRequest(
            session_token=session, project_name="STRICT", required=required,
            client=common_pb2.ClientInfo(ip_address="192.0.2.9", user_agent="pytest")))

    await refused(set_required(bob), DENIED, "Only Owners of 'strict'")
    await refused(set_required(alice), grpc.StatusCode.FAILED_PRECONDITION, "to your own account before")
    assert not (await auth.projects.GetProject(projects_pb2.GetProjectRequest(name="strict"))).project \
        .two_factor_required
    await enrol_totp(auth, alice)
    reply = await set_required(alice)
    assert reply.project.two_factor_required and list(reply.usernames_without_two_factor) == ["bob"]
    await refused(verify(auth, bob_token, "strict"), DENIED, "User 'bob' has not enabled two-factor",
                  "'strict' requires two-factor authentication of its collaborators")
    assert list((await set_required(alice)).usernames_without_two_factor) == ["bob"]  # no change: no event
    await enrol_totp(auth, bob)
    assert (await verify(auth, bob_token, "strict")).username == "bob"
    assert list((await set_required(alice)).usernames_without_two_factor) == []
    assert not (await set_required(alice, False)).project.two_factor_required
    enabled, disabled = await events(auth, "project:owners_require_2fa:enabled", "project:owners_require_2fa:disabled")
    assert (enabled.tag, enabled.project_name, enabled.subject_username, enabled.ip_address) == (
        "project:owners_require_2fa:enabled", "strict", "alice", "192.0.2.9")
    assert disabled.tag == "project:owners_require_2fa:disabled"
    # Operators need no second factor of their own.
    reply = await auth.admin.SetProjectTwoFactorRequired(admin_pb2.AdminSetProjectTwoFactorRequiredRequest(
        project_name="strict", required=True))
    assert reply.project.two_factor_required
    await refused(auth.admin.SetProjectTwoFactorRequired(admin_pb2.AdminSetProjectTwoFactorRequiredRequest(
        project_name="nope", required=True)), grpc.StatusCode.NOT_FOUND)
