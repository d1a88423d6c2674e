"""`gatehouse admin publisher …` and `project trusted-publishing-only` as a real subprocess against a
real auth service trusting two issuers: add, list, remove (text and --json), pending publishers, and
the exit codes of the README's table for each refusal."""

from __future__ import annotations

import json
import secrets

import pytest

from authsvc.settings import OidcIssuer
from gatehouse.auth.v1 import admin_pb2, common_pb2
from tests.cli.support import run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")
GITHUB = "https://token.actions.githubusercontent.com"
CUSTOM = "https://ci.example.org"
SYSTEM_OPTIONS = {"with_gateway": False, "auth_options": {"oidc_issuers": (
    OidcIssuer(url=GITHUB, kind="github", name="GitHub"),
    OidcIssuer(url=CUSTOM, kind="custom", name="Our CI", claims=("sub", "pipeline")))}}
WIDGET = ("--issuer", GITHUB, "--owner", "octo", "--repository", "widget", "--workflow", "release.yml")


async def gh(system, *args: str):
    return await run_cli(system.cli_env(), "admin", *args)


async def owner_and_project(system) -> tuple[str, str]:
    username, project = f"op{secrets.token_hex(3)}", f"pub-{secrets.token_hex(3)}"
    await system.admin.CreateUser(admin_pb2.AdminCreateUserRequest(
        username=username, email=f"{username}@example.org", password="", email_verified=True))
    await system.admin.AddRole(admin_pb2.AdminAddRoleRequest(project_name=project, username=username,
                                                             role=common_pb2.ROLE_OWNER, create_project=True))
    return username, project


async def test_add_list_remove_and_trusted_publishing_only(system):
    _, project = await owner_and_project(system)
    rc, out, err = await gh(system, "project", "trusted-publishing-only", project)
    assert rc == 6 and "Add a trusted publisher" in err and "[NO_PUBLISHER]" in err

    rc, out, err = await gh(system, "publisher", "add", project, *WIDGET, "--environment", "pypi", "--json")
    assert rc == 0, err
    added = json.loads(out)
    assert added["display"] == "GitHub octo/widget, workflow release.yml, environment pypi"
    assert added["created_by"] == "operator" and added["project_name"] == project
    rc, out, err = await gh(system, "publisher", "add", project, "--issuer", CUSTOM, "--claim", "sub=repo:x",
                            "--claim", "pipeline=release")
    assert rc == 0 and out.startswith("added ") and "pipeline=release" in out, err
    rc, out, err = await gh(system, "publisher", "add", project, *WIDGET, "--repository-id", "1001",
                            "--owner-id", "2002", "--json")  # bound at once
    assert rc == 0 and (json.loads(out)["bound_repository_id"], json.loads(out)["bound_owner_id"]) == (
        "1001", "2002"), err

    rc, out, _ = await gh(system, "publisher", "list", project)
    assert rc == 0 and len(out.splitlines()) == 3 and out.startswith(added["id"]) and "(bound)" in out
    rc, out, _ = await gh(system, "publisher", "list", project, "--json")
    assert rc == 0 and [p["id"] for p in json.loads(out)][0] == added["id"]

    rc, out, _ = await gh(system, "project", "trusted-publishing-only", project, "--json")
    assert rc == 0 and json.loads(out)["project"]["trusted_publishing_only"] is True
    rc, out, _ = await gh(system, "project", "trusted-publishing-only", project, "--off")
    assert rc == 0 and out.strip() == f"{project} accepts uploads with API tokens"

    rc, out, _ = await gh(system, "publisher", "remove", project, added["id"])
    assert rc == 0 and out.strip() == f"removed trusted publisher {added['id']} from {project}"
    rc, out, err = await gh(system, "publisher", "remove", project, added["id"], "--json")
    assert rc == 3 and json.loads(out)["reason"] == "PUBLISHER_NOT_FOUND"


@pytest.mark.parametrize("args, code, fragment", [
    (("--issuer", "https://unknown.example", "--owner", "o", "--repository", "r", "--workflow", "w.yml"), 2,
     "not an issuer this index trusts"),
    (("--issuer", GITHUB, "--owner", "octo", "--repository", "widget"), 2, "workflow"),
    (("--issuer", GITHUB, "--owner", "octo", "--repository", "widget", "--workflow", "release.yml",
      "--email", "x@example.org"), 2, "has no email"),
    (("--issuer", CUSTOM, "--claim", "sub"), 2, "NAME=VALUE"),
    (("--issuer", CUSTOM, "--claim", "sub=a"), 2, "each of the claims"),
    ((*WIDGET, "--repository-id", "1001"), 2, "Give both ids"),
    ((*WIDGET, "--repository-id", "octo/widget", "--owner-id", "2002"), 2, "Give both ids"),
    (("--issuer", CUSTOM, "--claim", "sub=a", "--claim", "pipeline=b", "--repository-id", "1", "--owner-id", "2"),
     2, "no repository and owner ids"),
])
async def test_bad_publishers_exit_2_and_add_nothing(system, args, code, fragment):
    _, project = await owner_and_project(system)
    rc, out, err = await gh(system, "publisher", "add", project, *args)
    assert rc == code and fragment in err, (rc, err)
    rc, out, _ = await gh(system, "publisher", "list", project, "--json")
    assert rc == 0 and json.loads(out) == []


async def test_refusals_and_pending_publishers(system):
    username, project = await owner_and_project(system)
    rc, _, err = await gh(system, "publisher", "list", "no-such-project")
    assert rc == 3 and "no project named" in err
    assert (await gh(system, "publisher", "add", project, *WIDGET))[0] == 0
    rc, _, err = await gh(system, "publisher", "add", project, *WIDGET)
    assert rc == 4 and "already has this trusted publisher" in err

    rc, _, err = await gh(system, "publisher", "pending-add", username, project, *WIDGET)
    assert rc == 4 and "exists already" in err
    new = f"new-{project}"
    rc, out, err = await gh(system, "publisher", "pending-add", username, new, *WIDGET, "--json")
    assert rc == 0, err
    pending = json.loads(out)
    assert pending["project_name"] == new and pending["username"] == username
    rc, out, _ = await gh(system, "publisher", "pending-list", "--user", username)
    assert rc == 0 and out.strip() == f"{pending['id']}  {new}: {pending['display']}  for {username}"
    rc, _, err = await gh(system, "publisher", "pending-add", "nobody-" + username, f"x-{project}", *WIDGET)
    assert rc == 3
    rc, out, _ = await gh(system, "publisher", "pending-remove", pending["id"])
    assert rc == 0 and out.strip() == f"removed pending publisher {pending['id']}"
    rc, _, _ = await gh(system, "publisher", "pending-remove", pending["id"])
    assert rc == 3
    rc, out, _ = await gh(system, "publisher", "pending-list", "--user", username, "--json")
    assert rc == 0 and json.loads(out) == []


async def test_revoke_long_lived_tokens(system):
    username, project = await owner_and_project(system)

    async def mint(description: str, *projects: str):
        return (await system.admin.MintToken(admin_pb2.AdminMintTokenRequest(
            username=username, description=description,
            scope=common_pb2.TokenScope(all_projects=not projects, project_names=list(projects))))).info

    scoped, everywhere = await mint("scoped", project), await mint("everywhere")
    rc, out, err = await gh(system, "project", "revoke-long-lived-tokens", project)
    assert rc == 6 and "[NO_PUBLISHER]" in err, err
    rc, _, err = await gh(system, "publisher", "add", project, *WIDGET)
    assert rc == 0, err
    rc, out, err = await gh(system, "project", "revoke-long-lived-tokens", project)
    assert rc == 0 and out.strip() == f"revoked {scoped.id}  {username}  'scoped'", err
    rc, out, err = await gh(system, "project", "revoke-long-lived-tokens", project, "--include-account-wide", "--json")
    assert rc == 0 and [t["id"] for t in json.loads(out)["revoked"]] == [everywhere.id], err
    rc, out, _ = await gh(system, "project", "revoke-long-lived-tokens", project)
    assert rc == 0 and out.strip() == f"no long-lived token of {project} to revoke"
