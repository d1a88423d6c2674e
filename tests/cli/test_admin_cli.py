"""`gatehouse admin …` as a real subprocess against a real auth service (and the audit log it feeds):
users, tokens, roles, project deletion, `--json`, and the exit codes scripts branch on."""

from __future__ import annotations

import asyncio
import json
import secrets

import grpc
import pytest

from gatehouse.auth.v1 import accounts_pb2, admin_pb2, tokens_pb2
from gatehouse.infra.redis_embed import free_port
from tests.cli.support import run_cli
from tests.system import PASSWORD, client

pytestmark = pytest.mark.asyncio(loop_scope="module")
SYSTEM_OPTIONS = {"with_gateway": False}


def name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


async def gh(system, *args: str, stdin: str | None = None, **env: str):
    return await run_cli(system.cli_env(**env), "admin", *args,
                         stdin=stdin.encode() if stdin is not None else None)


async def gh_json(system, *args: str, stdin: str | None = None):
    rc, out, err = await gh(system, *args, "--json", stdin=stdin)
    assert rc == 0, (rc, out, err)
    return json.loads(out)


async def verify(system, token: str, project: str):
    return await system.tokens.VerifyUploadToken(tokens_pb2.VerifyUploadTokenRequest(
        token=token, project_name=project, client=client()))


async def test_user_create_show_disable_enable_set_admin(system):
    username = name("cli")
    created = await gh_json(system, "user", "create", username, "--email", f"{username}@example.org",
                            "--password-stdin", "--verified", stdin=PASSWORD + "\n")
    assert created["username"] == username and created["email_verified"] is True
    assert created["is_active"] is True and not created.get("is_admin")
    login = await system.accounts.Login(accounts_pb2.LoginRequest(username=username, password=PASSWORD,
                                                                  client=client()))
    assert login.session_token  # the password came through stdin intact

    rc, out, _ = await gh(system, "user", "show", username)
    assert rc == 0 and out.strip() == f"{username} <{username}@example.org> id={created['id']} verified"

    rc, out, _ = await gh(system, "user", "disable", username, "--reason", "stolen laptop")
    assert rc == 0 and out.startswith(f"disabled {username}") and "DISABLED" in out
    with pytest.raises(grpc.aio.AioRpcError):
        await system.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(
            session_token=login.session_token))
    assert (await gh_json(system, "user", "show", username))["is_active"] is False
    enabled = await gh_json(system, "user", "enable", username)
    assert enabled["is_active"] is True
    assert (await gh_json(system, "user", "set-admin", username))["is_admin"] is True
    assert not (await gh_json(system, "user", "set-admin", username, "--revoke")).get("is_admin")

    events = await system.wait_for_user_event(created["id"], "account:admin:revoke")
    tags = [e.tag for e in await system.user_events(created["id"])]
    for tag in ("account:create", "account:disable", "account:enable", "account:admin:grant"):
        assert tag in tags
    disable = next(e for e in await system.user_events(created["id"]) if e.tag == "account:disable")
    assert disable.details["reason"] == "stolen laptop" and events[0].actor.kind == 2  # OPERATOR


async def test_user_errors_have_their_exit_codes(system):
    username = name("dup")
    rc, _, _ = await gh(system, "user", "create", username, "--email", f"{username}@example.org", "--no-password")
    assert rc == 0
    exists, bad, missing, reason = await asyncio.gather(
        gh(system, "user", "create", username, "--email", f"x{username}@example.org", "--no-password", "--json"),
        gh(system, "user", "create", "bad name!", "--email", "bad@example.org", "--no-password"),
        gh(system, "user", "show", name("nobody"), "--json"),
        gh(system, "user", "disable", username, "--reason", "two\nlines"))
    rc, out, err = exists
    assert rc == 4 and "already in use" in err and json.loads(out)["status"] == "ALREADY_EXISTS"
    rc, _, err = bad
    assert rc == 2 and err.startswith("gatehouse: error:")
    rc, out, err = missing
    assert rc == 3 and json.loads(out)["status"] == "NOT_FOUND" and "no user" in err.lower()
    rc, _, err = reason
    assert rc == 2 and "reason" in err


async def test_token_mint_list_revoke(system):
    owner = await system.person("tok")
    project, _ = await system.project(owner)
    minted = await gh_json(system, "token", "mint", owner.username, "--description", "ci upload",
                           "--project", project, "--expires-in", "30d")
    token, info = minted["token"], minted["info"]
    assert token.startswith("pypi-") and info["scope"]["project_names"] == [project] and info["expires_at"]
    assert (await verify(system, token, project)).user_id == owner.user_id

    listed = await gh_json(system, "token", "list", owner.username)
    assert [t["id"] for t in listed] == [info["id"]] and token not in json.dumps(listed)
    rc, out, _ = await gh(system, "token", "list", owner.username)
    assert rc == 0 and info["id"] in out and f"[{project}]" in out and token not in out

    rc, out, _ = await gh(system, "token", "revoke", info["id"])
    assert rc == 0 and out.strip() == f"revoked {info['id']}"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await verify(system, token, project)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    rc, out, _ = await gh(system, "token", "list", owner.username)
    assert rc == 0 and out.strip() == "no tokens"
    rc, _, _ = await gh(system, "token", "revoke", info["id"])
    assert rc == 3

    removed = await system.wait_for_user_event(owner.user_id, "account:api_token:removed")
    assert removed[0].details["token_id"] == info["id"] and token not in str(removed[0])


async def test_token_mint_shows_the_expiry_and_takes_restrictions(system):
    owner = await system.person("tokexp")
    rc, out, err = await gh(system, "token", "mint", owner.username, "--description", "default life")
    assert rc == 0 and out.startswith("pypi-") and "; expires 20" in err and "shown once" in err
    minted = await gh_json(system, "token", "mint", owner.username, "--description", "narrow", "--ip", "192.0.2.0/24",
                           "--ip", "2001:db8::/32", "--release-version", "1.0")
    assert minted["info"]["scope"]["allowed_networks"] == ["192.0.2.0/24", "2001:db8::/32"]
    assert minted["info"]["scope"]["release_version"] == "1.0" and minted["info"]["expires_at"]
    rc, _, err = await gh(system, "token", "mint", owner.username, "--description", "long", "--expires-in", "400d")
    assert rc == 2 and "at most 365 days" in err


async def test_token_errors(system):
    unverified, owner = await system.person("unv", verified=False), await system.person("tokerr")
    unverified_rc, duration, ghost, no_project = await asyncio.gather(
        gh(system, "token", "mint", unverified.username, "--description", "x"),
        gh(system, "token", "mint", owner.username, "--description", "x", "--expires-in", "soon"),
        gh(system, "token", "mint", name("ghost"), "--description", "x"),
        gh(system, "token", "mint", owner.username, "--description", "x", "--project", name("noproj")))
    assert unverified_rc[0] == 6 and "verify" in unverified_rc[2].lower()
    assert duration[0] == 2 and "duration" in duration[2]
    assert ghost[0] == 3 and no_project[0] == 3


async def test_roles_and_project_delete(system):
    owner, maintainer = await system.person("own"), await system.person("mnt")
    project = name("cli-proj-")
    added = await gh_json(system, "role", "add", project, owner.username, "--role", "owner", "--create-project")
    project_id = added["project"]["id"]
    rc, out, _ = await gh(system, "role", "add", project, maintainer.username, "--role", "maintainer")
    assert rc == 0 and out.strip() == f"{maintainer.username} is now maintainer of {project}"
    token = (await system.admin.MintToken(admin_pb2.AdminMintTokenRequest(
        username=maintainer.username, description="m", scope={"project_names": [project]}))).token
    assert (await verify(system, token, project)).project_id == project_id
    owner_token = (await system.admin.MintToken(admin_pb2.AdminMintTokenRequest(
        username=owner.username, description="o", scope={"project_names": [project]}))).token

    rc, _, _ = await gh(system, "role", "remove", project, maintainer.username)
    assert rc == 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await verify(system, token, project)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    rc, _, err = await gh(system, "role", "remove", project, owner.username)
    assert rc == 6 and "owner" in err.lower()  # the last Owner stays
    rc, _, _ = await gh(system, "role", "add", name("nope-"), owner.username, "--role", "owner")
    assert rc == 3

    rc, out, _ = await gh(system, "project", "require-2fa", project)
    assert rc == 0 and out.strip() == (f"{project} requires two-factor authentication of its collaborators; "
                                       f"not yet enabled by: {owner.username}")
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # the Owner has no second factor
        await verify(system, owner_token, project)
    assert "requires two-factor authentication" in refused.value.details()
    off = await gh_json(system, "project", "require-2fa", project, "--off")
    assert off["project"]["name"] == project and not off["project"].get("two_factor_required")
    assert (await verify(system, owner_token, project)).project_id == project_id
    rc, _, _ = await gh(system, "project", "require-2fa", name("nope-"))
    assert rc == 3

    rc, _, err = await gh(system, "project", "delete", project)  # stdin is not a terminal
    assert rc == 2 and "--yes" in err
    deleted = await gh_json(system, "project", "delete", project, "--yes")
    assert deleted == {"deleted": project, "project_id": project_id}
    rc, _, _ = await gh(system, "project", "delete", project, "--yes")
    assert rc == 3

    await system.wait_for_project_event(project_id, "project:delete")
    tags = [e.tag for e in await system.project_events(project_id)]
    assert {"project:create", "project:role:add", "project:role:remove", "project:owners_require_2fa:enabled",
            "project:owners_require_2fa:disabled", "project:delete"} <= set(tags)
    log = await system.project_events(project_id)
    # All by the operator, but the refused upload of the removed maintainer's token (refusals are anonymous).
    assert all(e.actor.kind == 2 for e in log if e.tag != "project:upload:refused")
    assert [e.details["reason"] for e in log if e.tag == "project:upload:refused"] == ["no_role"]


async def test_credentials_and_reachability_exit_codes(system):
    no_key, gateway_key, wrong_key, unreachable = await asyncio.gather(
        gh(system, "user", "show", "anyone", AUTHSVC_OPERATOR_KEY=""),
        # The gateway's credential is not the operator's: AdminService refuses it.
        gh(system, "user", "show", "anyone", "--json", AUTHSVC_OPERATOR_KEY=system.auth_settings.gateway_key),
        gh(system, "user", "show", "anyone", AUTHSVC_OPERATOR_KEY="not-a-key"),
        gh(system, "user", "show", "anyone", GATEHOUSE_AUTHSVC_TARGET=f"127.0.0.1:{free_port()}",
           GATEHOUSE_CLI_TIMEOUT="2"))
    assert no_key[0] == 2 and "AUTHSVC_OPERATOR_KEY" in no_key[2]
    assert gateway_key[0] == 5 and json.loads(gateway_key[1])["status"] == "PERMISSION_DENIED"
    assert wrong_key[0] == 5 and "credential" in wrong_key[2]
    assert unreachable[0] == 7 and "did not answer" in unreachable[2]


async def test_an_error_shows_the_services_reason(system):
    """The reason from the refusal's ErrorInfo: in `--json` for scripts, in brackets on stderr."""
    rc, out, err = await gh(system, "user", "show", name("nobody"), "--json")
    assert rc == 3 and json.loads(out) == {"error": json.loads(out)["error"], "status": "NOT_FOUND",
                                           "reason": "USER_NOT_FOUND"}
    assert err.strip().endswith("[USER_NOT_FOUND]") and "no user" in err.lower()
    rc, _, err = await gh(system, "user", "create", "bad name!", "--email", "bad@example.org", "--no-password")
    assert rc == 2 and err.strip().endswith("[USERNAME_INVALID]")
