"""Browser journeys for two-factor authentication: an authenticator app (also without JavaScript on
a phone-sized screen), two security keys through Chrome's virtual authenticator, recovery codes."""

from __future__ import annotations

import re

import pytest

from tests.pages.browse import add_totp, enter_totp, history_tags, log_in, log_out, notice, shot
from tests.pages.support import totp_code

pytestmark = pytest.mark.asyncio(loop_scope="session")

AUTHENTICATOR = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                 "hasUserVerification": True, "isUserVerified": True}


@pytest.mark.parametrize("variant", ["desktop", "phone-nojs"])
async def test_add_totp_log_out_log_in_with_a_code_remove_totp(system, new_context, variant):
    phone = variant == "phone-nojs"
    context = await new_context(phone=phone, js=not phone)
    page = await context.new_page()
    person = await system.person("totp")
    await log_in(page, person)
    await page.wait_for_url("**/account/")
    secret, codes = await add_totp(page, system.clock, screenshots=variant)
    assert len(codes) == 8 and all(re.fullmatch(r"[0-9a-f]{4}(-?[0-9a-f]{4}){3}", c) for c in codes), codes
    assert "Two-factor authentication is on" in await page.locator(".lead").inner_text()
    if phone:
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scroll"

    await log_out(page)
    await log_in(page, person)
    await page.wait_for_url("**/account/login/two-factor")
    assert "token" not in page.url and "pending" not in page.url
    await shot(page, f"login-two-factor-{variant}")
    await page.get_by_label("Code from your authenticator app").fill("000000")
    await page.get_by_role("button", name="Log in").click()
    code_field = page.get_by_label("Code from your authenticator app")
    assert await code_field.get_attribute("aria-invalid") == "true"
    assert "incorrect" in await page.locator("#f-code-error").inner_text()
    await enter_totp(page, secret, system.clock)
    await page.wait_for_url("**/account/")

    await page.goto("/account/two-factor")
    await page.locator("#f-totp-password").fill("not my password")
    await page.get_by_role("button", name="Remove authenticator app").click()
    assert "incorrect" in await page.locator("#f-totp-password-error").inner_text()
    await page.locator("#f-totp-password").fill(person.password)
    await page.get_by_role("button", name="Remove authenticator app").click()
    assert "removed" in await notice(page)
    assert "Two-factor authentication is off" in await page.locator(".lead").inner_text()

    await log_out(page)  # no second step any more
    await log_in(page, person)
    await page.wait_for_url("**/account/")
    wanted = ("account:two_factor:method_added", "account:recovery_codes:generated",
              "account:two_factor:method_removed", "account:login:failure", "account:login:success")
    await system.wait_for_user_tags(person.user_id, *wanted)
    tags = await history_tags(page)
    assert set(wanted) <= set(tags)
    if phone:
        await shot(page, "security-history-phone")
    rows = page.locator("table.history tbody tr")
    assert "method: totp" in await rows.filter(has_text="account:login:success").nth(1).inner_text()


async def session_cookie(page) -> str:
    return next(c["value"] for c in await page.context.cookies() if c["name"].endswith("gh_session"))


async def _virtual_key(cdp, credentials=()) -> str:
    reply = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    for credential in credentials:
        await cdp.send("WebAuthn.addCredential", {"authenticatorId": reply["authenticatorId"],
                                                   "credential": credential})
    return reply["authenticatorId"]


async def _unplug(cdp, authenticator: str) -> list[dict]:
    """Remove a virtual key from the browser, keeping its credentials to plug them in again."""
    found = (await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator}))["credentials"]
    await cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
    return found


async def test_two_security_keys_and_a_login_with_each(system, new_context):
    context = await new_context()
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    person = await system.person("keys")
    await log_in(page, person)
    keys = {}
    for label in ("blue key", "green key"):
        authenticator = await _virtual_key(cdp)
        await page.goto("/account/two-factor")
        await page.get_by_role("link", name="Add a security key").click()
        await page.get_by_label("Name of the key").fill(label)
        await page.get_by_role("button", name="Add security key").click()
        if label == "blue key":
            await page.get_by_role("heading", name=re.compile("blue key")).wait_for()
            assert await page.locator("#recovery-codes code").count() == 8
            await page.get_by_role("link", name="I have saved them").click()
        else:
            await page.wait_for_url("**/account/two-factor")
            assert "green key" in await notice(page)
        keys[label] = await _unplug(cdp, authenticator)
    assert await page.get_by_role("heading", name="blue key").count() == 1
    await shot(page, "security-keys-desktop")

    for label in ("blue key", "green key"):
        await log_out(page)
        authenticator = await _virtual_key(cdp, keys[label])
        await log_in(page, person)
        await page.wait_for_url("**/account/login/two-factor")
        if label == "blue key":
            await shot(page, "login-security-key-desktop")
        await page.get_by_role("button", name="Use security key").click()
        await page.wait_for_url("**/account/")
        keys[label] = await _unplug(cdp, authenticator)

    await page.goto("/account/two-factor")
    for label in ("blue key", "green key"):
        item = page.locator("li.key", has=page.get_by_role("heading", name=label))
        assert "last used: never" not in await item.inner_text()
    green = page.locator("li.key", has=page.get_by_role("heading", name="green key"))
    await green.get_by_label("New name for green key").fill("green key (backup)")
    await green.get_by_role("button", name="Rename").click()
    assert "green key (backup)" in await notice(page)
    blue = page.locator("li.key", has=page.get_by_role("heading", name="blue key"))
    await blue.get_by_label(re.compile("Your password")).fill(person.password)
    await blue.get_by_role("button", name="Remove").click()
    assert "removed" in await notice(page)
    assert await page.get_by_role("heading", name="blue key").count() == 0

    await system.wait_for_user_tags(person.user_id, "account:two_factor:method_added",
                                    "account:two_factor:method_removed")
    await history_tags(page)
    rows = page.locator("table.history tbody tr")
    assert await rows.filter(has_text="method: webauthn").filter(has_text="account:login:success").count() == 2
    added = await rows.filter(has_text="account:two_factor:method_added").all_inner_texts()
    assert any("blue key" in text for text in added) and any("green key" in text for text in added)


async def test_log_in_with_a_recovery_code(system, new_context):
    page = await (await new_context()).new_page()
    person = await system.person("recovery")
    await log_in(page, person)
    secret, codes = await add_totp(page, system.clock)
    await log_out(page)
    await log_in(page, person)
    await page.get_by_role("link", name="Use a recovery code").click()
    await page.get_by_label("Recovery code").fill(codes[0])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/account/")
    assert "7 left" in await notice(page)

    await log_out(page)  # a used code does not work twice
    await log_in(page, person)
    await page.get_by_role("link", name="Use a recovery code").click()
    await page.get_by_label("Recovery code").fill(codes[0])
    await page.get_by_role("button", name="Log in").click()
    assert "already used" in await page.locator("#f-recovery_code-error").inner_text()
    await page.get_by_role("link", name="Use another method").click()
    await enter_totp(page, secret, system.clock)
    await page.wait_for_url("**/account/")

    system.clock.advance(minutes=31)  # the login is now too old to skip the password
    await page.goto("/account/two-factor")
    assert "7" in await page.locator("#codes-heading + p").inner_text()
    await page.get_by_role("button", name="Generate new recovery codes").click()
    assert "Confirm your password" in await page.locator("#f-codes-password-error").inner_text()
    await page.locator("#f-codes-password").fill(person.password)
    await page.get_by_role("button", name="Generate new recovery codes").click()
    fresh = await page.locator("#recovery-codes code").all_inner_texts()
    assert len(fresh) == 8 and not set(fresh) & set(codes)
    # Confirming the password for a sensitive page keeps this session: the password alone, no second step.
    system.clock.advance(minutes=31)  # (entering the password above counted as a fresh authentication)
    await page.goto("/account/tokens/new")
    await page.wait_for_url("**/account/reauth?next=**")
    session = await session_cookie(page)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url("**/account/tokens/new")
    await page.get_by_role("heading", name="Add an API token").wait_for()
    assert await session_cookie(page) == session

    await system.wait_for_user_tags(person.user_id, "account:recovery_codes:used",
                                    "account:recovery_codes:regenerated")
    tags = await history_tags(page)
    assert {"account:recovery_codes:used", "account:recovery_codes:regenerated"} <= set(tags)
    assert totp_code(secret, system.clock)  # the app still works alongside the codes
