"""Browser journeys on projects: a project-scoped token made on the page and used by twine; removing
a maintainer (their token refused); yanking and deleting a release (after confirming the password
again); deleting a project. Each action is then found in the security history."""

from __future__ import annotations

import datetime as dt
import re

import aiohttp
import pytest

from tests.pages.browse import add_totp, history_tags, log_in, notice, shot
from tests.pages.support import upload
from tests.uploadgw.conftest import twine
from tests.uploadgw.dists import make_wheel

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _project_history(page, name: str) -> list[str]:
    await page.goto(f"/projects/{name}/history")
    return await page.locator("table.history tbody tr").evaluate_all("rows => rows.map(r => r.dataset.tag)")


async def test_project_scoped_token_made_on_the_page_uploads_with_twine(system, new_context, tmp_path):
    owner = await system.person("tok")
    project = await system.project(owner)
    other = await system.project(owner)
    page = await (await new_context()).new_page()
    await log_in(page, owner)
    await page.goto("/account/tokens")
    await page.get_by_role("link", name="Add an API token").click()
    await page.get_by_label("Token name").fill(f"CI for {project}")
    await page.get_by_label("Only the projects chosen below").check()
    await page.get_by_role("button", name="Create token").click()
    assert "Choose at least one project" in await page.locator("#f-projects-error").inner_text()
    assert await page.get_by_label("Token name").input_value() == f"CI for {project}"
    await page.get_by_label(re.compile(f"^{project}")).check()
    await page.get_by_label("Expires on").fill((system.clock.now().date() + dt.timedelta(days=400)).isoformat())
    await page.get_by_role("button", name="Create token").click()  # past the site's maximum (365 days)
    assert "at most 365 days" in await page.locator("#f-expires-error").inner_text()
    expires = (system.clock.now().date() + dt.timedelta(days=200)).isoformat()
    await page.get_by_label("Expires on").fill(expires)
    await page.get_by_role("button", name="Create token").click()
    await page.get_by_role("heading", name="Your new API token").wait_for()
    await shot(page, "token-created-desktop")
    secret = await page.get_by_label(re.compile("^Token")).input_value()
    assert secret.startswith("pypi-") and secret not in page.url
    pypirc = await page.locator("#pypirc").inner_text()
    assert f"repository = {system.url}/legacy/" in pypirc and f"password = {secret}" in pypirc
    assert "twine upload --repository gatehouse" in await page.locator("#twine-command").inner_text()

    config = tmp_path / ".pypirc"
    config.write_text(pypirc + "\n")
    wheel = make_wheel(tmp_path, project, "1.0")
    result = await twine("", wheel, user=None, extra=("--config-file", str(config), "--repository", "gatehouse"))
    assert result.rc == 0, result.output
    refused = await twine("", make_wheel(tmp_path, other, "1.0"), user=None,
                          extra=("--config-file", str(config), "--repository", "gatehouse"))
    assert refused.rc != 0 and "403" in refused.flat, refused.output

    await page.goto("/account/tokens")
    row = page.get_by_role("row", name=re.compile(f"CI for {project}"))
    assert project in await row.locator('td[data-label="Scope"]').inner_text()
    assert expires in await row.locator('td[data-label="Expires"]').inner_text()
    assert (await row.locator('td[data-label="Last used"]').inner_text()).endswith("UTC")  # not "never"
    await page.goto(f"/projects/{project}/")
    assert wheel.name in await page.locator(".release-list").inner_text()
    assert {"project:release:add", "file:add"} & set(await _project_history(page, project))

    await page.goto("/account/tokens")
    await page.get_by_role("link", name=f"Delete CI for {project}").click()
    await page.get_by_role("button", name="Delete token").click()
    await page.wait_for_url("**/account/tokens")
    assert "no longer works" in await notice(page)
    status, reason = await upload(system, make_wheel(tmp_path, project, "1.1"), secret)
    assert status == 403, reason
    await system.wait_for_user_tags(owner.user_id, "account:api_token:added", "account:api_token:removed")
    assert {"account:api_token:added", "account:api_token:removed"} <= set(await history_tags(page))


async def test_remove_a_maintainer_and_their_token_is_refused(system, new_context, tmp_path):
    owner, helper = await system.person("own"), await system.person("mnt")
    project = await system.project(owner, maintainers=[helper])
    token = await system.mint(helper, projects=[project])
    assert (await upload(system, make_wheel(tmp_path, project, "1.0"), token))[0] == 200

    helper_page = await (await new_context()).new_page()  # a Maintainer sees the project, manages nothing
    await log_in(helper_page, helper)
    await helper_page.goto(f"/projects/{project}/")
    assert "Maintainer" in await helper_page.locator(".lead").inner_text()
    assert await helper_page.get_by_role("link", name=re.compile("^Delete")).count() == 0
    await helper_page.goto(f"/projects/{project}/history")
    assert await helper_page.get_by_role("heading", name="Not allowed").count() == 1

    page = await (await new_context()).new_page()
    await log_in(page, owner)
    await page.goto(f"/projects/{project}/")
    newcomer = await system.person("new")
    await page.get_by_label("Username").fill("nobody-" + newcomer.username)
    await page.get_by_role("button", name="Add collaborator").click()
    assert "no user named" in await page.locator("#f-username-error").inner_text()
    assert await page.get_by_label("Username").input_value() == "nobody-" + newcomer.username
    await page.get_by_label("Username").fill(newcomer.username)
    await page.get_by_role("button", name="Add collaborator").click()
    assert f"{newcomer.username} is now a Maintainer" in await notice(page)
    await page.get_by_label(f"Role of {newcomer.username}").select_option("Owner")
    await page.get_by_role("button", name=f"Change role of {newcomer.username}").click()
    assert f"{newcomer.username} is now an Owner" in await notice(page)
    await page.get_by_role("link", name=f"Remove {helper.username}").click()
    await page.get_by_role("button", name=f"Remove {helper.username}").click()
    await page.wait_for_url(f"**/projects/{project}/")
    assert "no longer a collaborator" in await notice(page)
    assert helper.username not in await page.locator("table").inner_text()

    result = await twine(system.url + "/legacy/", make_wheel(tmp_path, project, "1.1"), password=token)
    assert result.rc != 0 and "403" in result.flat, result.output
    wanted = ("project:role:add", "project:role:change", "project:role:remove")
    await system.wait_for_user_tags(owner.user_id, *wanted)
    assert set(wanted) <= set(await history_tags(page))
    assert set(wanted) <= set(await _project_history(page, project))


async def test_yank_then_delete_a_release_after_confirming_the_password(system, new_context, tmp_path):
    owner = await system.person("rel")
    project = await system.project(owner)
    token = await system.mint(owner, projects=[project])
    for version in ("1.0", "2.0"):
        assert (await upload(system, make_wheel(tmp_path, project, version), token))[0] == 200
    page = await (await new_context()).new_page()
    await log_in(page, owner)
    await page.goto(f"/projects/{project}/")
    release = page.locator(".release-list > li", has=page.get_by_role("heading", name=re.compile("^1.0")))
    await release.get_by_label(re.compile("Reason for yanking")).fill("broken on Windows")
    await release.get_by_role("button", name=re.compile("^Yank")).click()
    assert "yanked" in await notice(page)
    assert "Yanked" in await release.inner_text() and "broken on Windows" in await release.inner_text()
    await release.get_by_role("button", name=re.compile("^Un-yank")).click()
    assert "no longer yanked" in await notice(page)

    system.clock.advance(minutes=31)  # the last password entry is now too old for deleting
    await release.get_by_role("link", name=re.compile("^Delete")).click()
    await page.wait_for_url("**/account/reauth?next=**")
    await shot(page, "reauth-desktop")
    await page.get_by_label("Password").fill(owner.password)
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url(f"**/projects/{project}/releases/1.0/delete")
    await page.get_by_label(re.compile("Type the version")).fill("2.0")
    await page.get_by_role("button", name="Delete release 1.0").click()
    assert "exactly" in await page.locator("#f-confirm_version-error").inner_text()
    await page.get_by_label(re.compile("Type the version")).fill("1.0")
    await page.get_by_role("button", name="Delete release 1.0").click()
    await page.wait_for_url(f"**/projects/{project}/")
    assert "were deleted" in await notice(page)
    headings = await page.locator(".release-list h3").all_inner_texts()
    assert [h.split()[0] for h in headings] == ["2.0"]
    async with aiohttp.ClientSession() as http:
        async with http.get(system.url.replace("localhost", "127.0.0.1") + f"/simple/{project}/") as reply:
            index = await reply.text()
    assert "-1.0-" not in index and "-2.0-" in index

    wanted = ("project:release:yank", "project:release:unyank", "project:release:remove")
    await system.wait_for_user_tags(owner.user_id, *wanted)
    assert set(wanted) <= set(await history_tags(page))
    assert set(wanted) <= set(await _project_history(page, project))


async def test_delete_a_project_after_typing_its_name(system, new_context, tmp_path):
    owner = await system.person("del")
    project = await system.project(owner)
    token = await system.mint(owner, projects=[project])
    assert (await upload(system, make_wheel(tmp_path, project, "1.0"), token))[0] == 200
    page = await (await new_context()).new_page()
    await log_in(page, owner)
    await page.goto(f"/projects/{project}/")
    await page.get_by_role("link", name=f"Delete {project}").click()
    await shot(page, "project-delete-desktop")
    await page.get_by_label(re.compile("Type the project's name")).fill(project + "x")
    await page.get_by_role("button", name=f"Delete {project}").click()
    assert "exactly" in await page.locator("#f-confirm_name-error").inner_text()
    await page.get_by_label(re.compile("Type the project's name")).fill(project)
    await page.get_by_role("button", name=f"Delete {project}").click()
    await page.wait_for_url("**/projects/")
    assert "was deleted" in await notice(page)
    assert await page.get_by_role("link", name=project).count() == 0

    status, reason = await upload(system, make_wheel(tmp_path, project, "1.1"), token)
    assert status == 403, reason
    async with aiohttp.ClientSession() as http:
        async with http.get(system.url.replace("localhost", "127.0.0.1") + f"/simple/{project}/") as reply:
            assert reply.status == 404
    await system.wait_for_user_tags(owner.user_id, "project:delete")
    assert "project:delete" in await history_tags(page)


async def test_owner_requires_two_factor_of_collaborators(system, new_context, tmp_path):
    owner = await system.person("req")
    helper = await system.person("hlp")
    project = await system.project(owner, maintainers=[helper])
    helper_token = await system.mint(helper, projects=[project])
    page = await (await new_context()).new_page()
    await log_in(page, owner)
    await page.goto(f"/projects/{project}/")
    await page.get_by_role("button", name="Require two-factor authentication").click()
    assert "to your own account before" in await page.locator("#two-factor-error").inner_text()
    await add_totp(page, system.clock)
    await page.goto(f"/projects/{project}/")
    await page.get_by_role("button", name="Require two-factor authentication").click()
    text = await notice(page)
    assert "now requires two-factor authentication" in text and helper.username in text
    assert "Collaborators must use two-factor authentication" in await page.locator(".lead").inner_text()
    status, reason = await upload(system, make_wheel(tmp_path, project, "1.0"), helper_token)
    assert status == 403 and "has not enabled two-factor authentication" in reason, (status, reason)
    await page.get_by_role("button", name="Stop requiring two-factor authentication").click()
    assert "no longer requires" in await notice(page)
    assert (await upload(system, make_wheel(tmp_path, project, "1.0"), helper_token))[0] == 200
    wanted = ("project:owners_require_2fa:enabled", "project:owners_require_2fa:disabled")
    await system.wait_for_user_tags(owner.user_id, *wanted)
    assert set(wanted) <= set(await _project_history(page, project))
