"""Two-factor policy at the token boundary: the site policy gates creating and using tokens; a
project's flag gates uploads by its collaborators. (The policy itself is the two-factor area's.)"""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import delete, update

from authsvc.projects.models import Project
from authsvc.twofactor.models import RecoveryCode, TotpCredential
from gatehouse.auth.v1 import admin_pb2, common_pb2, projects_pb2
from tests.authsvc.project_token_factories import create_token, make_project, make_user, refused, verify
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
    async with auth.running.app.db() as s, s.begin():  # no RPC sets the flag yet
        await s.execute(update(Project).where(Project.name == "strict").values(two_factor_required=True))
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
