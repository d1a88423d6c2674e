"""New-device confirmation through the gateway's pages: a login from a browser and network the
account has not used is held ("check your email"); the mailed link logs in only the browser that
started the login, once, however many times it is sent at once."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc
from gatehouse.infra.grpcserver import open_channel
from tests.authsvc.accounts_support import client as client_info
from tests.pages.browse import log_in, notice, shot
from tests.pages.support import PASSWORD, Client

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def system_auth_overrides():
    return {"new_device_confirmation": True}


async def person_known_elsewhere(system):
    """An account whose one login so far came from another network (so this browser and the
    loopback network are new to it)."""
    person = await system.person("nd")
    async with open_channel(f"127.0.0.1:{system.auth_running.port}", system.auth_settings.gateway_key) as channel:
        reply = await accounts_pb2_grpc.AccountServiceStub(channel).Login(accounts_pb2.LoginRequest(
            username=person.username, password=PASSWORD, client=client_info("198.51.100.20")))
    assert reply.session_token
    return person


async def held_login(system, person) -> tuple[Client, str]:
    """A browser whose login is held: the client and the path of the mailed link."""
    browser = Client(system)
    reply, _ = await browser.log_in(person.username)
    assert reply.status == 303 and reply.headers["Location"] == "/account/login/check-email"
    assert browser.cookie("gh_held") and not browser.cookie("gh_session")
    link = await system.link_in_mail(person.email, "new device")
    return browser, link.removeprefix(system.url)


async def test_the_link_logs_in_the_browser_that_started_the_login_and_no_other(system):
    person = await person_known_elsewhere(system)
    owner, other = None, Client(system)
    try:
        owner, path = await held_login(system, person)
        reply, body = await owner.get("/account/login/check-email")
        assert reply.status == 200 and "Check your email" in body
        reply, body = await owner.get("/account/")
        assert reply.status == 303  # no session yet

        reply, body = await other.get(path)  # opening the link changes nothing by itself
        assert reply.status == 200 and "Confirm your login" in body
        token = path.split("token=", 1)[1]
        reply, body = await other.post("/account/login/confirm", {"csrf_token": await other.token(path),
                                                                  "token": token})
        assert reply.status == 400 and "browser where you logged in" in body and not other.cookie("gh_session")

        reply, _ = await owner.post("/account/login/confirm", {"csrf_token": await owner.token(path), "token": token})
        assert reply.status == 303 and reply.headers["Location"] == "/account/"
        assert owner.cookie("gh_session") and not owner.cookie("gh_held")
        reply, body = await owner.get("/account/")
        assert reply.status == 200 and person.username in body
        tags = await system.wait_for_user_tags(person.user_id, "account:login:held", "account:login:confirmed")
        assert tags.count("account:login:held") == 1 and tags.count("account:login:confirmed") == 1

        # This browser is known now: logging out and in again is not held.
        await owner.post("/account/logout", {"csrf_token": await owner.token("/account/")})
        reply, _ = await owner.log_in(person.username)
        assert reply.status == 303 and reply.headers["Location"] == "/account/"
    finally:
        if owner is not None:
            await owner.close()
        await other.close()


async def test_a_hundred_follows_sent_at_once_log_in_once(system):
    person = await person_known_elsewhere(system)
    owner, path = await held_login(system, person)
    try:
        form = {"csrf_token": await owner.token(path), "token": path.split("token=", 1)[1]}
        # The browser's cookies as they are now, on every request (a jar would take the new session
        # of the first answer into the later requests).
        cookies = "; ".join(f"{c.key}={c.value}" for c in owner.http.cookie_jar)

        async def follow() -> tuple[int, str]:
            async with session.post(owner.base + "/account/login/confirm", data=form, allow_redirects=False,
                                    headers={"Cookie": cookies}) as reply:
                return reply.status, await reply.text()

        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            answers = await asyncio.gather(*(follow() for _ in range(100)))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [303] + [400] * 99
        assert all("already used" in body for status, body in answers if status == 400)
        tags = await system.wait_for_user_tags(person.user_id, "account:login:confirmed")
        assert tags.count("account:login:confirmed") == 1 and tags.count("account:login:success") == 2
    finally:
        await owner.close()


async def test_journey_in_chromium_check_your_email_then_the_link(system, new_context):
    person = await person_known_elsewhere(system)
    page = await (await new_context()).new_page()
    await log_in(page, person)
    await page.wait_for_url("**/account/login/check-email")
    assert "Check your email" in await page.locator("h1").inner_text()
    await shot(page, "login-check-email")
    link = await system.link_in_mail(person.email, "new device")

    stranger = await (await new_context()).new_page()  # the link forwarded to another browser
    await stranger.goto(link)
    await stranger.get_by_role("button", name="Confirm and log in").click()
    await stranger.wait_for_load_state()
    assert "browser where you logged in" in await stranger.locator(".error-summary").inner_text()

    await page.goto(link)
    await shot(page, "login-confirm")
    await page.get_by_role("button", name="Confirm and log in").click()
    await page.wait_for_url("**/account/")
    assert "your login is confirmed" in await notice(page)
    await stranger.goto("/account/")
    await stranger.wait_for_url("**/account/login**")  # still not logged in
