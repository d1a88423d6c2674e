"""The seed's workflows that end at the gateway, through the whole system: "Upload a package using
API token, and verify that you see this in the project log" (twine as a real subprocess) and "Delete
a release from a project: verify that the project log lists the event" (the Owner's account pages
over plain HTTP; a Maintainer may neither delete it nor read the project's history)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys

import aiohttp
import pytest
import pytest_asyncio

from gatehouse.auth.v1 import admin_pb2, common_pb2, projects_pb2
from tests.e2e.journeys import assert_not_in_project_log, assert_untouched
from tests.system import Person, System, gateway_available

pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.skipif(not gateway_available(), reason="the upload gateway is not installed")]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bystander(system) -> Person:
    return await system.person("by")


async def twine_upload(system: System, token: str, *files) -> str:
    """`twine upload` to the gateway as a real subprocess: its output (asserts success)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWINE_", "PIP_"))}
    env.update(NO_COLOR="1", TERM="dumb", COLUMNS="200")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
        "--repository-url", f"{system.gateway_url}/legacy/", "-u", "__token__", "-p", token, *map(str, files),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def wheel(tmp_path, name: str, version: str):
    from tests.uploadgw.dists import make_wheel

    return make_wheel(tmp_path, name, version)


class Pages:
    """The account pages as a browser without JavaScript uses them: cookies, CSRF fields, forms."""

    def __init__(self, system: System, http: aiohttp.ClientSession):
        self.base = system.public_url
        self.http = http

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.base + path, allow_redirects=False) as response:
            return response.status, await response.text()

    async def submit(self, path: str, fields: dict[str, str], *, form_path: str | None = None) -> tuple[int, str]:
        """GET the form page (for its CSRF field), then POST the form: (status, Location or body)."""
        status, page = await self.get(form_path or path)
        assert status == 200, (status, page[:500])
        data = {**fields, "csrf_token": CSRF.search(page).group(1)}
        async with self.http.post(self.base + path, data=data, allow_redirects=False) as response:
            return response.status, response.headers.get("Location") or await response.text()

    async def login(self, person: Person) -> None:
        status, where = await self.submit("/account/login", {"username": person.username,
                                                              "password": person.password, "next": "/account/"})
        assert status in (302, 303) and where.endswith("/account/"), (status, where[:500])


@pytest_asyncio.fixture(loop_scope="module")
async def browser(system):
    """`await browser()`: a fresh cookie jar on the gateway's public URL."""
    sessions = []

    async def make() -> Pages:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        return Pages(system, http)

    yield make
    for http in sessions:
        await http.close()


async def test_upload_with_a_token_shows_in_the_project_log(system, bystander, tmp_path):
    """Seed: "Upload a package using API token, and verify that you see this in the project log"."""
    owner = await system.person("up")
    other, other_id = await system.project(owner)
    session = await system.session(owner)
    account_token = await system.create_token(session, "laptop")
    name = f"e2e-up-{secrets.token_hex(3)}"
    await twine_upload(system, account_token.token, wheel(tmp_path, name, "1.0"))  # creates the project
    project_id = (await system.projects.GetProject(projects_pb2.GetProjectRequest(name=name))).project.id
    scoped = await system.create_token(session, "ci", projects=[name])
    await twine_upload(system, scoped.token, wheel(tmp_path, name, "1.1"))

    added = await system.wait_for_project_event(project_id, "file:add", count=2)
    by_file = {e.details["filename"]: e for e in added}
    assert set(by_file) == {f"{name.replace('-', '_')}-{v}-py3-none-any.whl" for v in ("1.0", "1.1")}
    first, second = (by_file[f"{name.replace('-', '_')}-{v}-py3-none-any.whl"] for v in ("1.0", "1.1"))
    assert first.details["token_id"] == account_token.info.id and second.details["token_id"] == scoped.info.id
    for event in added:
        assert event.actor.user_id == owner.user_id and event.details["uploader"] == owner.username
        assert event.user_agent.startswith("twine/") and event.project_id == project_id
        assert event.user_agent not in event.details.values()  # stored once: the event's field, no detail
        assert account_token.token not in str(event) and scoped.token not in str(event)
    log = await system.project_events(project_id)
    tags = [e.tag for e in reversed(log)]
    assert tags[:2] == ["project:create", "project:role:add"]  # created by the first upload
    assert tags.count("project:release:add") == 2 and all(e.project_id == project_id for e in log)
    await assert_not_in_project_log(system, other_id, log)
    await assert_untouched(system, bystander, log)


async def test_delete_a_release_shows_in_the_project_log(system, bystander, browser, tmp_path):
    """Seed: "Delete a release from a project: verify that the project log lists the event"."""
    owner, maintainer = await system.person("rel"), await system.person("relm")
    name, project_id = await system.project(owner, f"e2e-rel-{secrets.token_hex(3)}")
    await system.admin.AddRole(admin_pb2.AdminAddRoleRequest(
        project_name=name, username=maintainer.username, role=common_pb2.ROLE_MAINTAINER))
    token = await system.create_token(await system.session(maintainer), "ci", projects=[name])
    await twine_upload(system, token.token, wheel(tmp_path, name, "2.0"), wheel(tmp_path, name, "2.1"))
    await system.wait_for_project_event(project_id, "file:add", count=2)

    as_maintainer = await browser()
    await as_maintainer.login(maintainer)
    status, _ = await as_maintainer.get(f"/projects/{name}/releases/2.0/delete")
    assert status in (403, 404)  # Maintainers upload only
    status, _ = await as_maintainer.get(f"/projects/{name}/history")
    assert status in (403, 404)  # and cannot read the project's log

    as_owner = await browser()
    await as_owner.login(owner)
    status, where = await as_owner.submit(f"/projects/{name}/releases/2.0/delete", {"confirm_version": "2.0"})
    assert status in (302, 303), (status, where[:500])
    removed = (await system.wait_for_project_event(project_id, "project:release:remove"))[0]
    assert removed.details["version"] == "2.0" and removed.actor.user_id == owner.user_id
    status, history = await as_owner.get(f"/projects/{name}/history")
    assert status == 200 and "2.0" in history

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{system.gateway_url}/simple/{name}/") as response:
            index = await response.text()
    assert "-2.1-" in index and "-2.0-" not in index
    log = await system.project_events(project_id)
    other, other_id = await system.project(owner)
    await assert_not_in_project_log(system, other_id, log)
    await assert_untouched(system, bystander, log)
