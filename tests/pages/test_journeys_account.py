"""Browser journeys: register and confirm the email address; forgot password and reset it."""

from __future__ import annotations

import secrets

import pytest

from gatehouse.auth.v1 import admin_pb2

from tests.pages.browse import history_tags, log_in, notice, shot

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_register_and_confirm_the_email_address(system, new_context):
    page = await (await new_context()).new_page()
    username = f"reg{secrets.token_hex(3)}"
    email = f"{username}@example.org"
    await page.goto("/account/register")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Your name").fill("Reg Istered")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password", exact=True).fill("a long and unusual pass phrase")
    await page.get_by_label("Password again").fill("a different pass phrase")
    await page.get_by_role("button", name="Create account").click()
    # The mismatch is tied to its field; what was typed stays, the passwords do not.
    confirm = page.get_by_label("Password again")
    assert await confirm.get_attribute("aria-invalid") == "true"
    assert "do not match" in await page.locator("#" + await confirm.get_attribute("aria-describedby")).inner_text()
    assert await page.get_by_label("Username").input_value() == username
    assert await page.get_by_label("Password", exact=True).input_value() == ""
    await page.get_by_label("Password", exact=True).fill("a long and unusual pass phrase")
    await page.get_by_label("Password again").fill("a long and unusual pass phrase")
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("**/account/")
    assert "Welcome" in await notice(page)
    row = page.get_by_role("row", name=email)
    assert "Not verified" in await row.inner_text()

    link = await system.link_in_mail(email, "verify")
    assert link.startswith(system.url + "/account/verify-email?token=")
    await page.goto(link)
    await shot(page, "verify-email-landing-desktop")
    await page.get_by_role("button", name="Verify email address").click()
    await page.get_by_role("heading", name="Email address verified").wait_for()
    assert "token" not in page.url
    await page.goto("/account/")
    assert "Verified" in await page.get_by_role("row", name=email).inner_text()
    # The used link does not work twice.
    await page.goto(link)
    await page.get_by_role("button", name="Verify email address").click()
    assert "already used" in (await page.locator(".error-summary").inner_text())

    second = f"second-{email}"
    await page.goto("/account/")
    await page.get_by_role("textbox", name="Email address").fill(second)
    await page.get_by_role("button", name="Add email address").click()
    assert second in await notice(page)
    assert "Not verified" in await page.get_by_role("row", name=second).inner_text()
    await page.get_by_role("button", name=f"Resend verification to {second}").click()
    assert "new verification link" in await notice(page)
    await system.link_in_mail(second, "verify")
    assert len(system.mailbox.to(second)) == 2

    user_id = (await system.admin.GetUser(admin_pb2.AdminGetUserRequest(username=username))).user.id
    wanted = ("account:create", "account:email:verified", "account:login:success", "account:email:add")
    await system.wait_for_user_tags(user_id, *wanted)
    tags = await history_tags(page)
    assert set(wanted) <= set(tags)
    await shot(page, "security-history-desktop")


async def test_forgot_password_and_reset_it(system, new_context):
    person = await system.person("reset")
    page = await (await new_context()).new_page()
    await page.goto("/account/login")
    await page.get_by_role("link", name="Forgot your password?").click()
    await page.get_by_label("Username or email address").fill(person.email)
    await page.get_by_role("button", name="Send the link").click()
    await page.get_by_role("heading", name="Check your email").wait_for()

    link = await system.link_in_mail(person.email, "reset")
    await page.goto(link)
    await page.get_by_label("New password", exact=True).fill("short")
    await page.get_by_label("New password again").fill("short")
    await page.get_by_role("button", name="Set the new password").click()
    error = page.locator("#f-new_password-error")
    assert "too short" in await error.inner_text()
    assert await page.get_by_label("New password", exact=True).get_attribute("aria-invalid") == "true"
    new_password = "a brand new pass phrase"
    await page.get_by_label("New password", exact=True).fill(new_password)
    await page.get_by_label("New password again").fill(new_password)
    await page.get_by_role("button", name="Set the new password").click()
    await page.wait_for_url("**/account/login")
    assert "has been reset" in await notice(page)

    await log_in(page, person)  # the old password no longer works
    assert "incorrect" in await page.locator(".error-summary").inner_text()
    await log_in(page, person, password=new_password)
    await page.wait_for_url("**/account/")
    await system.wait_for_user_tags(person.user_id, "account:password:reset:request", "account:password:reset")
    await page.goto("/account/password")
    await page.get_by_label("Current password").fill(new_password)
    await page.get_by_label("New password", exact=True).fill("yet another pass phrase")
    await page.get_by_label("New password again").fill("yet another pass phrase")
    await page.get_by_role("button", name="Change password").click()
    await page.wait_for_url("**/account/")
    assert "has been changed" in await notice(page)
    await system.wait_for_user_tags(person.user_id, "account:password:change")
    tags = await history_tags(page)
    assert {"account:password:reset:request", "account:password:reset", "account:login:failure",
            "account:login:success", "account:password:change"} <= set(tags)
