"""Who must keep a second factor: the site's upload policy and projects that require it of their
collaborators. The last factor cannot be removed where a policy requires one."""

from __future__ import annotations

import grpc
import pytest
from gatehouse.auth.v1 import admin_pb2, common_pb2, tokens_pb2, twofactor_pb2
from gatehouse.infra.clock import FakeClock
from tests.authsvc.conftest import auth_settings
from tests.authsvc.softauthn import SoftAuthenticator
from tests.authsvc.twofactor_support import (
    PASSWORD,
    align_clock,
    client,
    enrol_key,
    enrol_totp,
    make_user,
    rpc_error,
    serve,
)


async def status(auth, session):
    return await auth.twofactor.GetTwoFactorStatus(twofactor_pb2.GetTwoFactorStatusRequest(session_token=session))


async def require_for_project(auth, project: str, owner: str) -> None:
    """An operator creates the project with `owner` and makes it require 2FA of its collaborators."""
    await auth.admin.AddRole(admin_pb2.AdminAddRoleRequest(project_name=project, username=owner,
                                                           role=common_pb2.ROLE_OWNER, create_project=True))
    await auth.admin.SetProjectTwoFactorRequired(admin_pb2.AdminSetProjectTwoFactorRequiredRequest(
        project_name=project, required=True))


class TestSitePolicy:
    @pytest.fixture
    def auth_overrides(self):
        return {"require_2fa_for_upload": True}

    async def test_last_factor_cannot_be_removed(self, auth):
        align_clock(auth)
        session = await make_user(auth, "alice")
        assert list((await status(auth, session)).required_by) == ["site"]
        await enrol_totp(auth, session)
        key = (await enrol_key(auth, session, SoftAuthenticator(), "Key")).key
        assert (await auth.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(
            session_token=session, password=PASSWORD))).two_factor_enabled
        err = await rpc_error(auth.twofactor.RemoveWebAuthnKey(twofactor_pb2.RemoveWebAuthnKeyRequest(
            session_token=session, key_id=key.id, password=PASSWORD)))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "last second factor" in err.details() and "requires two-factor authentication" in err.details()
        after = await status(auth, session)
        assert [k.label for k in after.webauthn_keys] == ["Key"] and after.recovery_codes_remaining == 8


async def test_project_flag_binds_its_collaborators(auth):
    align_clock(auth)
    alice = await make_user(auth, "alice")
    bob = await make_user(auth, "bob")
    await require_for_project(auth, "Strict-Project", "alice")
    await auth.admin.AddRole(admin_pb2.AdminAddRoleRequest(project_name="Strict-Project", username="bob",
                                                           role=common_pb2.ROLE_MAINTAINER))
    assert list((await status(auth, alice)).required_by) == ["Strict-Project"]
    assert list((await status(auth, bob)).required_by) == ["Strict-Project"]
    await enrol_totp(auth, alice)
    err = await rpc_error(auth.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(
        session_token=alice, password=PASSWORD)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "'Strict-Project'" in err.details()
    # Without the policy (no role on such a project) the last factor goes, with its recovery codes.
    carol = await make_user(auth, "carol")
    assert list((await status(auth, carol)).required_by) == []
    await enrol_totp(auth, carol)
    assert not (await auth.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(
        session_token=carol, password=PASSWORD))).two_factor_enabled
    assert (await status(auth, carol)).recovery_codes_remaining == 0


async def test_has_second_factor_for_other_parts(auth):
    align_clock(auth)
    alice = await make_user(auth, "alice")
    await make_user(auth, "bob")
    service = auth.running.app.twofactor
    ids = {}
    for name in ("alice", "bob"):
        ids[name] = (await auth.admin.GetUser(admin_pb2.AdminGetUserRequest(username=name))).user.id
    assert not await service.has_second_factor(ids["alice"])
    setup = await auth.twofactor.BeginTotpSetup(twofactor_pb2.BeginTotpSetupRequest(session_token=alice))
    assert setup.secret and not await service.has_second_factor(ids["alice"])  # not confirmed yet
    await enrol_key(auth, alice, SoftAuthenticator())
    assert await service.has_second_factor(ids["alice"])
    assert await service.users_with_second_factor([ids["alice"], ids["bob"], "nobody"]) == {ids["alice"]}


async def create_token(h, session: str, description: str = "ci"):
    return await h.tokens.CreateToken(tokens_pb2.CreateTokenRequest(
        session_token=session, description=description, scope=common_pb2.TokenScope(all_projects=True)))


async def verify_upload(h, token: str, project: str):
    return await h.tokens.VerifyUploadToken(tokens_pb2.VerifyUploadTokenRequest(
        token=token, project_name=project, client=client()))


async def test_site_policy_turned_on_refuses_tokens_and_uploads_without_2fa(make_database_url):
    """As PyPI did: tokens made before the policy stop uploading until their user adds a second
    factor, with a reason the uploader sees; new tokens need a second factor first."""
    url = make_database_url("authsvc")
    clock = FakeClock()
    base = auth_settings(url)
    async with serve(url, clock, base) as h:
        align_clock(h)
        alice = await make_user(h, "alice")
        old_token = (await create_token(h, alice)).token
        bob = await make_user(h, "bob")
        await enrol_key(h, bob, SoftAuthenticator())
        bob_token = (await create_token(h, bob)).token
    async with serve(url, clock, base, require_2fa_for_upload=True) as h:
        err = await rpc_error(verify_upload(h, old_token, "alpha"))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'alice' has not enabled two-factor authentication" in err.details()
        assert "this index requires" in err.details() and "/account/two-factor" in err.details()
        assert (await verify_upload(h, bob_token, "beta")).project_created
        refused = await rpc_error(create_token(h, alice, "second"))
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED and "before creating an API token" in refused.details()
        minted = await rpc_error(h.admin.MintToken(admin_pb2.AdminMintTokenRequest(
            username="alice", description="by operator", scope=common_pb2.TokenScope(all_projects=True))))
        assert minted.code() == grpc.StatusCode.PERMISSION_DENIED
        await enrol_totp(h, alice)
        assert (await verify_upload(h, old_token, "alpha")).project_created
        assert (await create_token(h, alice, "second")).token


async def test_project_policy_refuses_collaborators_without_2fa(auth):
    align_clock(auth)
    await make_user(auth, "alice")
    bob = await make_user(auth, "bob")
    await require_for_project(auth, "strict", "alice")
    await auth.admin.AddRole(admin_pb2.AdminAddRoleRequest(project_name="strict", username="bob",
                                                           role=common_pb2.ROLE_MAINTAINER))
    token = (await create_token(auth, bob)).token  # the site does not require it
    err = await rpc_error(verify_upload(auth, token, "strict"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'bob' has not enabled two-factor authentication" in err.details()
    assert "the project 'strict' requires two-factor authentication of its collaborators" in err.details()
    assert (await verify_upload(auth, token, "bobs-own")).project_created  # elsewhere bob may upload
    await enrol_totp(auth, bob)
    assert (await verify_upload(auth, token, "strict")).project_name == "strict"
