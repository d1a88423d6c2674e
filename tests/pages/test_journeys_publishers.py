"""Trusted publishers on the pages: an Owner adds and removes a project's publisher (browser, with
and without JavaScript), a user registers a pending publisher for a new project name; each change
is in the project's (or account's) history and mailed to the Owners. The error paths over plain
HTTP: every bad form is a form error (never a 500), a Maintainer and a stale session are refused,
a missing CSRF token is refused."""

from __future__ import annotations

import asyncio
import re

import pytest
import pytest_asyncio

from authsvc.settings import OidcIssuer
from gatehouse.auth.v1 import admin_pb2, common_pb2
from tests.pages.browse import log_in, notice, shot
from tests.pages.support import Client, upload
from tests.uploadgw.dists import make_wheel

pytestmark = pytest.mark.asyncio(loop_scope="session")

GITHUB = "https://token.actions.githubusercontent.com"
GITLAB = "https://gitlab.example.org"


@pytest.fixture(scope="module")
def system_auth_overrides():
    return {"oidc_audience": "gatehouse-pages", "oidc_issuers": (
        OidcIssuer(url=GITHUB, kind="github", name="GitHub"), OidcIssuer(url=GITLAB, kind="gitlab", name="Our GitLab"))}


@pytest_asyncio.fixture(loop_scope="session")
async def client(system):
    c = Client(system)
    yield c
    await c.close()


async def mails_to(system, address: str, subject_word: str, count: int = 1, timeout: float = 10.0) -> list:
    """The messages to `address` whose subject has `subject_word`, once there are `count` of them."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [m for m in system.mailbox.to(address) if subject_word.lower() in m["Subject"].lower()]
        if len(found) >= count:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"no {subject_word!r} mail to {address}"
        await asyncio.sleep(0.05)


async def project_history_has(system, page, project: str, *tags: str, timeout: float = 15.0) -> None:
    """Wait until the project's history page (as its Owner sees it) shows every tag."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for relay in system.relays:
            relay.notify()
        await page.goto(f"/projects/{project}/history")
        found = await page.locator("table.history tbody tr").evaluate_all("rows => rows.map(r => r.dataset.tag)")
        if set(tags) <= set(found):
            return
        assert asyncio.get_running_loop().time() < deadline, f"missing {set(tags) - set(found)}: {found}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
async def test_owner_adds_and_removes_a_publisher(system, new_context, js):
    owner, co_owner = await system.person("tpo"), await system.person("tpc")
    project = await system.project(owner)
    await system.admin.AddRole(admin_pb2.AdminAddRoleRequest(project_name=project, username=co_owner.username,
                                                             role=common_pb2.ROLE_OWNER))
    page = await (await new_context(js=js)).new_page()
    await log_in(page, owner)
    await page.goto(f"/projects/{project}/")
    await page.get_by_role("heading", name="Trusted publishers").wait_for()
    await page.get_by_label("CI system").select_option(GITHUB)
    await page.get_by_label("Owner", exact=True).fill("octo")
    await page.get_by_label("Workflow").fill("release.yml")
    await page.get_by_role("button", name="Add trusted publisher").click()
    assert "Enter the repository" in await page.locator("#f-repository-error").inner_text()
    assert await page.get_by_label("Owner", exact=True).input_value() == "octo"  # what was typed is kept
    await page.get_by_label("Repository").fill("widget")
    await page.get_by_label("Workflow").fill("release.sh")
    await page.get_by_role("button", name="Add trusted publisher").click()
    assert "release.yml" in await page.locator(".error-summary").inner_text()
    await page.get_by_label("Workflow").fill("release.yml")
    await page.get_by_label("Environment").fill("pypi")
    await page.get_by_role("button", name="Add trusted publisher").click()
    assert "may now publish" in await notice(page)
    listed = await page.locator(".publisher-list").inner_text()
    assert "GitHub octo/widget, workflow release.yml, environment pypi" in listed
    if js:
        await shot(page, "trusted-publisher-added")

    for person in (owner, co_owner):  # every Owner is told, with what changed and where to review it
        [mail] = await mails_to(system, person.email, "trusted publisher was added")
        body = mail.get_content()
        assert project in body and "octo/widget" in body and f"/projects/{project}/" in body

    await page.get_by_role("button", name=re.compile(r"^Remove GitHub octo\/widget")).click()
    assert "was removed" in await notice(page)
    assert await page.locator(".publisher-list").count() == 0
    await mails_to(system, co_owner.email, "trusted publisher was removed")
    await project_history_has(system, page, project, "project:publisher:add", "project:publisher:remove")


async def test_pending_publisher_on_the_projects_page(system, new_context):
    person = await system.person("tpp")
    taken = await system.project(person)
    page = await (await new_context()).new_page()
    await log_in(page, person)
    await page.goto("/projects/")
    await page.get_by_label("Project name").fill(taken)
    await page.get_by_label("CI system").select_option(GITLAB)
    await page.get_by_label("Owner", exact=True).fill("group/sub")
    await page.get_by_label("Repository").fill("widget")
    await page.get_by_label("Workflow").fill(".gitlab-ci.yml")
    await page.get_by_role("button", name="Add pending publisher").click()
    assert "exists already" in await page.locator("#f-project_name-error").inner_text()
    new_name = f"new-{taken}"
    await page.get_by_label("Project name").fill(new_name)
    await page.get_by_role("button", name="Add pending publisher").click()
    assert f"may now create {new_name}" in await notice(page)
    item = page.locator(".publisher-list li", has_text=new_name)
    assert "GitLab group/sub/widget, CI config .gitlab-ci.yml" in await item.inner_text()
    await page.get_by_role("button", name=f"Remove pending publisher for {new_name}").click()
    assert "pending publisher was removed" in await notice(page)
    await system.wait_for_user_tags(person.user_id, "account:pending_publisher:add",
                                    "account:pending_publisher:remove")


# -- the error paths over plain HTTP (a browser without JavaScript sends the same forms) ----------

def _form(token: str, **fields: str) -> dict[str, str]:
    return {"csrf_token": token, "issuer": GITHUB, "owner": "octo", "repository": "widget",
            "workflow": "release.yml", **fields}


@pytest.mark.parametrize("fields, status, message", [
    ({"issuer": "https://evil.example"}, 400, "Choose the CI system"),
    ({"issuer": ""}, 400, "Choose the CI system"),
    ({"owner": ""}, 400, "Enter the owner"),
    ({"owner": "octo/cat"}, 400, "without"),
    ({"workflow": "x" * 300 + ".yml"}, 400, "too long"),
    ({"environment": "bad\x07env"}, 400, "control characters"),
    ({"issuer": GITLAB, "workflow": ""}, 400, "Enter the workflow"),
    ({"claims": "a=b"}, 200, "may now publish"),  # fields of another kind are left out, not refused
])
async def test_publisher_form_errors(system, client, fields, status, message):
    owner = await system.person("tpf")
    project = await system.project(owner)
    await client.log_in(owner.username, owner.password)
    token = await client.token(f"/projects/{project}/")
    reply, body = await client.post(f"/projects/{project}/publishers", _form(token, **fields))
    if status == 200:
        assert reply.status == 303, body
        _, body = await client.get(f"/projects/{project}/")
    else:
        assert reply.status == status, body
        assert "There is a problem" in body
    assert message in body


async def test_publisher_refusals(system, client):
    owner, helper = await system.person("tpr"), await system.person("tpm")
    project = await system.project(owner, maintainers=[helper])
    await client.log_in(owner.username, owner.password)
    token = await client.token(f"/projects/{project}/")
    reply, _ = await client.post(f"/projects/{project}/publishers", {k: v for k, v in _form(token).items()
                                                                     if k != "csrf_token"})
    assert reply.status == 403  # no CSRF token: refused, nothing added
    assert "octo/widget" not in (await client.get(f"/projects/{project}/"))[1]
    assert (await client.post(f"/projects/{project}/publishers", _form(token)))[0].status == 303
    reply, body = await client.post(f"/projects/{project}/publishers", _form(token))
    assert reply.status == 409 and "already has this trusted publisher" in body
    reply, body = await client.post(f"/projects/{project}/publishers/not-an-id/remove", {"csrf_token": token})
    assert reply.status == 404 and "no trusted publisher" in body
    reply, body = await client.post("/projects/pending-publishers", _form(token, project_name="-bad-"))
    assert reply.status == 400 and 'id="f-project_name-error"' in body
    reply, body = await client.post("/projects/pending-publishers/not-an-id/remove", {"csrf_token": token})
    assert reply.status == 404 and "no pending publisher" in body

    maintainer = Client(system)
    try:
        await maintainer.log_in(helper.username, helper.password)
        mtoken = await maintainer.token(f"/projects/{project}/")
        _, page = await maintainer.get(f"/projects/{project}/")
        assert "Trusted publishers" not in page
        reply, body = await maintainer.post(f"/projects/{project}/publishers", _form(mtoken, repository="other"))
        assert reply.status == 403, body
    finally:
        await maintainer.close()

    system.clock.advance(system.auth_settings.reauth_seconds + 1)  # the password must be confirmed again
    reply, _ = await client.post(f"/projects/{project}/publishers", _form(token, repository="again"))
    assert reply.status == 303 and reply.headers["Location"].startswith("/account/reauth")
    reply, _ = await client.post("/projects/pending-publishers", _form(token, project_name="brand-new-x"))
    assert reply.status == 303 and reply.headers["Location"].startswith("/account/reauth")


async def test_trusted_publishing_only_on_the_project_page(system, client, tmp_path):
    owner = await system.person("tpt")
    project = await system.project(owner)
    token = await system.mint(owner, projects=[project])
    await client.log_in(owner.username, owner.password)
    csrf = await client.token(f"/projects/{project}/")
    only = f"/projects/{project}/trusted-publishing-only"
    reply, body = await client.post(only, {"csrf_token": csrf, "enabled": "on"})
    assert reply.status == 409 and 'id="only-error"' in body and "Add a trusted publisher" in body
    assert (await client.post(f"/projects/{project}/publishers", _form(csrf)))[0].status == 303
    reply, _ = await client.post(only, {"csrf_token": csrf, "enabled": "on"})
    assert reply.status == 303
    _, body = await client.get(f"/projects/{project}/")
    assert "Accept API tokens again" in body and "uploads with API tokens are refused" in body
    status, reason = await upload(system, make_wheel(tmp_path, project, "1.0"), token)
    assert status == 403 and "only from its trusted publishers" in reason
    reply, _ = await client.post(only, {"csrf_token": csrf})
    assert reply.status == 303
    assert (await upload(system, make_wheel(tmp_path, project, "1.1"), token))[0] == 200
    mail = await mails_to(system, owner.email, "long-lived API token")  # it has a publisher: Owners are told
    assert project in mail[0]["Subject"]
