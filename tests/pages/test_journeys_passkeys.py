"""Browser journeys for passkeys through Chrome's virtual authenticator (resident keys, user
verification): add a passkey on the two-factor page, log out, sign in with it and no password; a
project that accepts only security-key and passkey logins refuses a password + TOTP session its
Owner actions and its tokens."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.pages.browse import add_totp, enter_totp, history_tags, log_in, log_out, notice
from tests.pages.test_journeys_twofactor import _virtual_key

pytestmark = pytest.mark.asyncio(loop_scope="session")
NO_AUTOFILL = "PublicKeyCredential.isConditionalMediationAvailable = async () => false;"


async def add_passkey(page, label: str) -> None:
    await page.goto("/account/two-factor")
    await page.get_by_role("link", name="Add a passkey").click()
    await page.get_by_label("Name of the passkey").fill(label)
    await page.get_by_role("button", name="Add passkey").click()


async def test_add_a_passkey_log_out_and_sign_in_with_it_without_a_password(system, new_context):
    context = await new_context()
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    person = await system.person("passkeys")
    await log_in(page, person)
    authenticator = await _virtual_key(cdp)
    await add_passkey(page, "laptop")
    await page.get_by_role("heading", name=re.compile("Passkey .laptop. added")).wait_for()
    await page.get_by_role("link", name="I have saved them").click()
    stored = (await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator}))["credentials"]
    assert len(stored) == 1 and stored[0]["isResidentCredential"]
    assert await page.get_by_text("Passkey: also signs you in without your password.").count() == 1

    # The browser's autofill UI: Chrome's virtual authenticator answers the conditional request at
    # once (a person would pick the passkey under the username field), and the page signs in.
    await log_out(page)
    await page.wait_for_url("**/account/")
    assert person.username in await page.locator("body").inner_text()

    # The button, where the browser has no autofill UI for passkeys.
    await context.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = async () => false;")
    await log_out(page)
    assert await page.get_by_label("Username or email address").get_attribute("autocomplete") == "username webauthn"
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await page.wait_for_url("**/account/")

    await system.wait_for_user_tags(person.user_id, "account:two_factor:method_added", "account:login:success")
    rows = page.locator("table.history tbody tr")
    logins = rows.filter(has_text="method: passkey").filter(has_text="account:login:success")
    for _ in range(50):  # the audit log may hold the first login only for a moment
        await history_tags(page)
        if await logins.count() == 2:
            break
        await asyncio.sleep(0.1)
    assert await logins.count() == 2
    assert await rows.filter(has_text="method: passkey").filter(has_text="account:two_factor:method_added").count() == 1

    await log_out(page)
    await log_in(page, person)  # the password alone is no longer enough: the passkey is a second factor
    await page.wait_for_url("**/account/login/two-factor")


async def test_a_phishing_resistant_project_refuses_a_totp_session_and_accepts_a_passkey_one(system, new_context):
    context = await new_context()
    await context.add_init_script(NO_AUTOFILL)  # sign in with the passkey only when the button is pressed
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    owner = await system.person("guard")
    project = await system.project(owner)
    await log_in(page, owner)
    secret, _ = await add_totp(page, system.clock)
    await _virtual_key(cdp)
    await add_passkey(page, "phone")
    await page.wait_for_url("**/account/two-factor")

    # With the password and a code, the Owner cannot turn the policy on (it would lock them out).
    await log_out(page)
    await log_in(page, owner)
    await enter_totp(page, secret, system.clock)
    await page.goto(f"/projects/{project}/")
    await page.get_by_role("button", name="Accept security keys and passkeys only").click()
    assert "Log in with a security key or a passkey" in await page.locator("#phishing-resistant-error").inner_text()

    await log_out(page)
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await page.wait_for_url("**/account/")
    await page.goto(f"/projects/{project}/")
    await page.get_by_role("button", name="Accept security keys and passkeys only").click()
    assert "only logins with a security key or a passkey" in await notice(page)

    # The password + TOTP session: refused the project's Owner actions and tokens that reach it.
    await log_out(page)
    await log_in(page, owner)
    await enter_totp(page, secret, system.clock)
    await page.wait_for_url("**/account/")
    response = await page.goto(f"/projects/{project}/")
    assert response.status == 403
    assert "accepts only logins with a security key or a passkey" in await page.locator("main").inner_text()
    await page.goto("/account/tokens")
    await page.get_by_role("link", name="Add an API token").click()
    await page.get_by_label("Token name").fill(f"CI for {project}")
    await page.get_by_label("Only the projects chosen below").check()
    await page.get_by_label(re.compile(f"^{project}")).check()
    await page.get_by_role("button", name="Create token").click()
    assert "accepts only logins with a security key or a passkey" in await page.locator("main").inner_text()
    assert await page.get_by_role("button", name="Create token").count() == 1  # the form again, no secret
    assert await page.locator("input[value^='pypi-']").count() == 0

    # The passkey session: the token is created.
    await log_out(page)
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await page.wait_for_url("**/account/")
    await page.goto("/account/tokens")
    await page.get_by_role("link", name="Add an API token").click()
    await page.get_by_label("Token name").fill(f"CI for {project}")
    await page.get_by_label("Only the projects chosen below").check()
    await page.get_by_label(re.compile(f"^{project}")).check()
    await page.get_by_role("button", name="Create token").click()
    assert (await page.get_by_label(re.compile("^Token")).input_value()).startswith("pypi-")
    await system.wait_for_user_tags(owner.user_id, "project:phishing_resistant_only:enabled")
