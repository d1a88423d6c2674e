"""The main pages on a desktop and a phone-sized screen: screenshots (test artifacts) and automatic
accessibility checks (headings in order, labelled controls, contrast, visible focus, no sideways
scrolling)."""

from __future__ import annotations

import pathlib

import pytest

from gatehouse.auth.v1 import admin_pb2
from tests.pages.browse import add_totp, log_in, shot
from tests.pages.support import upload
from tests.uploadgw.dists import make_wheel

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHECKS = (pathlib.Path(__file__).parent / "a11y.js").read_text()
LOGGED_OUT = {"login": "/account/login", "register": "/account/register",
              "forgot-password": "/account/forgot-password"}


async def check(page, name: str) -> None:
    problems = await page.evaluate(CHECKS)
    assert not problems, f"{name}: {problems}"
    await page.keyboard.press("Tab")  # the first Tab reaches the skip link, with a visible focus ring
    focused = await page.evaluate("""() => { const el = document.activeElement, s = getComputedStyle(el);
        return [el.className, s.outlineStyle, s.outlineWidth, el.getBoundingClientRect().left >= 0]; }""")
    assert focused[0] == "skip-link" and focused[1] != "none" and focused[2] != "0px" and focused[3], focused
    await page.keyboard.press("Shift+Tab")


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_main_pages_are_accessible_on_desktop_and_phone(system, new_context, tmp_path, screen):
    owner, helper = await system.person("look"), await system.person("helper")
    project = await system.project(owner, maintainers=[helper])
    token = await system.mint(owner, projects=[project])
    for version in ("0.9", "1.0"):
        assert (await upload(system, make_wheel(tmp_path, project, version), token))[0] == 200
    await system.admin.SetAdmin(admin_pb2.AdminSetAdminRequest(username=owner.username, is_admin=True))
    page = await (await new_context(phone=screen == "phone")).new_page()
    for name, path in LOGGED_OUT.items():
        await page.goto(path)
        await check(page, name)
        await shot(page, f"{name}-{screen}")
    await log_in(page, owner)
    await add_totp(page, system.clock)
    pages = {"account": "/account/", "two-factor": "/account/two-factor", "tokens": "/account/tokens",
             "token-new": "/account/tokens/new", "password": "/account/password", "projects": "/projects/",
             "project": f"/projects/{project}/", "project-history": f"/projects/{project}/history",
             "history": "/account/history", "security-key-add": "/account/two-factor/security-keys",
             "admin-log": "/account/admin/log", "admin-log-filtered": f"/account/admin/log?project={project}",
             "admin-log-errors": "/account/admin/log?ip=nope&since=yesterday"}
    for name, path in pages.items():
        await page.goto(path)
        await check(page, name)
        await shot(page, f"{name}-{screen}")
    # A form with errors: each error tied to its field, and the summary links to it.
    await page.goto("/account/password")
    await page.get_by_role("button", name="Change password").click()
    await check(page, "password-errors")
    for field in ("current_password", "new_password"):
        described = await page.locator(f"#f-{field}").get_attribute("aria-describedby")
        assert f"f-{field}-error" in described
    await shot(page, f"form-errors-{screen}")
