"""The API tokens that can reach a project, on its page: an Owner sees their collaborators' tokens
and revokes one (browser, with and without JavaScript; the collaborator is mailed, the project's
history shows it), then revokes the long-lived tokens at once once the project has a trusted
publisher. The error paths over plain HTTP: no CSRF token, an unknown token, no publisher, a
Maintainer, a stale session."""

from __future__ import annotations

import re
import secrets

import pytest
import pytest_asyncio

from gatehouse.auth.v1 import admin_pb2, common_pb2, publishing_pb2
from tests.pages.browse import log_in, notice, shot
from tests.pages.support import Client, Person, upload
from tests.pages.test_journeys_publishers import (  # noqa: F401  (system_auth_overrides: the issuers)
    GITHUB, mails_to, project_history_has, system_auth_overrides,
)
from tests.uploadgw.dists import make_wheel

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def client(system):
    c = Client(system)
    yield c
    await c.close()


async def mint(system, person: Person, *projects: str) -> tuple[str, str]:
    """A token of `person` (account-wide without projects): (its description, the secret)."""
    description = f"tok-{secrets.token_hex(3)}"
    reply = await system.admin.MintToken(admin_pb2.AdminMintTokenRequest(
        username=person.username, description=description,
        scope=common_pb2.TokenScope(all_projects=not projects, project_names=list(projects))))
    return description, reply.token


async def add_publisher(system, project: str) -> None:
    await system.admin.AddPublisher(admin_pb2.AdminAddPublisherRequest(project_name=project, spec=(
        publishing_pb2.PublisherSpec(issuer_url=GITHUB, owner="octo", repository="widget", workflow="release.yml"))))


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
async def test_owner_revokes_a_collaborators_token_then_the_long_lived_ones(system, new_context, tmp_path, js):
    owner, helper = await system.person("pto"), await system.person("ptm")
    project = await system.project(owner, maintainers=[helper])
    wide, wide_secret = await mint(system, helper)
    scoped, _ = await mint(system, helper, project)
    own, _ = await mint(system, owner)
    page = await (await new_context(js=js)).new_page()
    await log_in(page, owner)
    await page.goto(f"/projects/{project}/")
    table = page.get_by_role("table", name=f"API tokens that can upload to {project}")
    row = table.locator("tr", has_text=wide)
    assert helper.username in await row.inner_text() and "account-wide" in await row.inner_text()
    assert "This project only" in await table.locator("tr", has_text=scoped).inner_text()
    assert "revoking it here ends it there too" in await page.locator("section", has=table).inner_text()
    assert await page.get_by_role("button", name="Revoke long-lived tokens").count() == 0  # no publisher yet
    if js:
        await shot(page, "project-tokens")

    await page.get_by_role("button", name=f"Revoke {wide} of {helper.username}").click()
    assert f"'{wide}' was revoked" in await notice(page)
    assert await table.locator("tr", has_text=wide).count() == 0
    [mail] = await mails_to(system, helper.email, "was revoked")
    assert owner.username in mail.get_content() and project in mail.get_content()
    other = await system.project(helper)  # it reached the helper's other projects: it ends there too
    status, _ = await upload(system, make_wheel(tmp_path, other, "1.0"), wide_secret)
    assert status == 403

    await add_publisher(system, project)
    await page.goto(f"/projects/{project}/")
    await page.get_by_label(re.compile("^Also revoke the collaborators' account-wide tokens")).check()
    await page.get_by_role("button", name="Revoke long-lived tokens").click()
    assert "2 long-lived API tokens were revoked" in await notice(page)
    assert "No API token can upload to" in await page.locator("body").inner_text()
    await project_history_has(system, page, project, "project:api_token:removed")


# -- the error paths over plain HTTP (a browser without JavaScript sends the same forms) ----------

async def test_project_token_refusals(system, client):
    owner, helper = await system.person("ptr"), await system.person("ptx")
    project = await system.project(owner, maintainers=[helper])
    wide, _ = await mint(system, helper)
    await client.log_in(owner.username, owner.password)
    csrf = await client.token(f"/projects/{project}/")
    _, body = await client.get(f"/projects/{project}/")
    token_id = re.search(rf'/projects/{project}/tokens/([0-9a-f-]+)/revoke', body).group(1)
    revoke = f"/projects/{project}/tokens/{token_id}/revoke"
    bulk = f"/projects/{project}/tokens/revoke-long-lived"

    reply, _ = await client.post(revoke, {})
    assert reply.status == 403  # no CSRF token: refused, nothing revoked
    assert wide in (await client.get(f"/projects/{project}/"))[1]
    reply, body = await client.post(f"/projects/{project}/tokens/not-an-id/revoke", {"csrf_token": csrf})
    assert reply.status == 404 and 'id="tokens-error"' in body and "can reach" in body
    reply, body = await client.post(bulk, {"csrf_token": csrf, "include_account_wide": "on"})
    assert reply.status == 409 and 'id="bulk-error"' in body and "no trusted publisher" in body
    assert wide in body  # nothing was revoked

    maintainer = Client(system)
    try:
        await maintainer.log_in(helper.username, helper.password)
        mcsrf = await maintainer.token(f"/projects/{project}/")
        _, page = await maintainer.get(f"/projects/{project}/")
        assert "API tokens that can upload" not in page
        for path in (revoke, bulk):
            reply, body = await maintainer.post(path, {"csrf_token": mcsrf, "include_account_wide": "on"})
            assert reply.status == 403, body
    finally:
        await maintainer.close()
    assert wide in (await client.get(f"/projects/{project}/"))[1]

    system.clock.advance(system.auth_settings.reauth_seconds + 1)  # the password must be confirmed again
    for path in (revoke, bulk):
        reply, _ = await client.post(path, {"csrf_token": csrf})
        assert reply.status == 303 and reply.headers["Location"].startswith("/account/reauth")
    assert wide in (await client.get(f"/projects/{project}/"))[1]
