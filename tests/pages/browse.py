"""Steps the browser journeys share: logging in, reading the security history, screenshots."""

from __future__ import annotations

import re

from tests.pages.support import Person, screenshot_path, totp_code


async def log_in(page, person: Person, *, password: str | None = None, next_path: str = "") -> None:
    await page.goto("/account/login" + (f"?next={next_path}" if next_path else ""))
    await page.get_by_label("Username or email address").fill(person.username)
    await page.get_by_label("Password", exact=True).fill(password or person.password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()


async def log_out(page) -> None:
    await page.get_by_role("button", name=re.compile("^Log out")).click()
    await page.wait_for_url("**/account/login")


async def history_tags(page) -> list[str]:
    """The event tags on the user's security history page, newest first."""
    await page.goto("/account/history")
    return await page.locator("table.history tbody tr").evaluate_all("rows => rows.map(r => r.dataset.tag)")


async def shot(page, name: str) -> None:
    await page.screenshot(path=str(screenshot_path(name)), full_page=True)


async def notice(page) -> str:
    return (await page.locator(".notice").inner_text()).strip()


async def add_totp(page, clock, *, screenshots: str = "") -> tuple[str, list[str]]:
    """Set up the authenticator app on the two-factor page; returns (secret, recovery codes)."""
    await page.goto("/account/two-factor")
    await page.get_by_role("link", name="Add an authenticator app").click()
    await page.get_by_role("img", name=re.compile("QR code")).wait_for()
    secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
    if screenshots:
        await shot(page, f"totp-setup-{screenshots}")
    await page.get_by_label("6-digit code").fill(totp_code(secret, clock))
    await page.get_by_role("button", name="Confirm and turn on").click()
    codes = await page.locator("#recovery-codes code").all_inner_texts()
    if screenshots:
        await shot(page, f"recovery-codes-{screenshots}")
    await page.get_by_role("link", name="I have saved them").click()
    await page.wait_for_url("**/account/two-factor")
    return secret, codes


async def enter_totp(page, secret: str, clock) -> None:
    """The second login step with a fresh code (the clock moves on a step: codes are single-use)."""
    clock.advance(30)
    await page.get_by_label("Code from your authenticator app").fill(totp_code(secret, clock))
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()
