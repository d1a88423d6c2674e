"""The account pages over plain HTTP: security headers, cookie flags, CSRF refusals, and no 500 for
any garbage a client may send."""

from __future__ import annotations

import re
import secrets

import aiohttp
import pytest
import pytest_asyncio

from tests.pages.support import PASSWORD, Client
from uploadgw.pages.security import CSP, CookiePolicy

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def client(system):
    c = Client(system)
    yield c
    await c.close()


def assert_security_headers(reply, *, html: bool = True):
    h = reply.headers
    assert h["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "unsafe-inline" not in CSP
    assert h["Referrer-Policy"] in ("same-origin", "no-referrer")
    assert "camera=()" in h["Permissions-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "DENY"
    if html:
        assert h["Cache-Control"] == "no-store"


def assert_no_inline_script(body: str):
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", body), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", body), "inline event handler"
    assert "style=" not in body


async def test_every_kind_of_answer_carries_the_security_headers(client):
    for path in ("/account/login", "/account/register", "/account/forgot-password", "/account/reset-password",
                 "/account/verify-email?token=abc"):
        reply, body = await client.get(path)
        assert reply.status in (200, 400), path
        assert_security_headers(reply)
        assert_no_inline_script(body)
    reply, _ = await client.get("/account/")  # not logged in: a redirect, with the headers too
    assert reply.status == 303 and reply.headers["Location"].startswith("/account/login?next=")
    assert_security_headers(reply)
    reply, body = await client.get("/account/no-such-page")
    assert reply.status == 404 and "Page not found" in body
    assert_security_headers(reply)
    reply, body = await client.get("/static/site.css")
    assert reply.status == 200 and "text/css" in reply.headers["Content-Type"]
    assert_security_headers(reply, html=False)
    reply, body = await client.get("/static/webauthn.js")
    assert reply.status == 200 and "javascript" in reply.headers["Content-Type"]
    reply, _ = await client.get("/")
    assert reply.status == 303 and reply.headers["Location"] == "/account/"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


async def test_links_with_a_token_send_no_referrer_and_post_the_token(client):
    for path in ("/account/verify-email?token=secret-ish", "/account/reset-password?token=secret-ish"):
        reply, body = await client.get(path)
        assert reply.headers["Referrer-Policy"] == "no-referrer"
        assert re.search(r'<form method="post"[^>]*>', body)
        assert 'type="hidden" name="token" value="secret-ish"' in body


async def test_cookies_are_httponly_lax_and_the_session_rotates_at_login(system, client):
    person = await system.person("cookie")
    reply, _ = await client.get("/account/login")
    csrf = reply.cookies["gh_csrf"]
    assert csrf["httponly"] and csrf["samesite"] == "Lax" and csrf["path"] == "/" and not csrf["secure"]
    reply, _ = await client.log_in(person.username)
    assert reply.status == 303 and reply.headers["Location"] == "/account/"
    session = reply.cookies["gh_session"]
    assert session["httponly"] and session["samesite"] == "Lax" and session["path"] == "/"
    assert not session["expires"] and not session["max-age"]
    first = session.value
    reply, body = await client.get("/account/")
    assert reply.status == 200 and person.username in body
    reply, _ = await client.log_in(person.username)  # logging in again: a new session, the old one ended
    second = reply.cookies["gh_session"].value
    assert second != first
    other = Client(system)
    try:
        other.http.cookie_jar.update_cookies({"gh_session": first}, aiohttp.client.URL(other.base))
        reply, _ = await other.get("/account/")
        assert reply.status == 303 and "/account/login" in reply.headers["Location"]
    finally:
        await other.close()
    assert "gh_session" not in str(reply.headers.get("Location"))


async def test_cookies_are_secure_with_the_host_prefix_unless_plain_http_on_localhost():
    assert not CookiePolicy.for_public_url("http://localhost:8000").secure
    assert not CookiePolicy.for_public_url("http://127.0.0.1:8000").secure
    for url in ("https://pypi.example.org", "http://pypi.example.org", "https://localhost:8443"):
        policy = CookiePolicy.for_public_url(url)
        assert policy.secure and policy.names.session == "__Host-gh_session"


async def test_posts_without_a_valid_csrf_token_are_refused(system, client):
    person = await system.person("csrf")
    token = await client.token("/account/login")
    form = {"username": person.username, "password": PASSWORD}
    reply, body = await client.post("/account/login", form)
    assert reply.status == 403 and "expired" in body and "gh_session" not in reply.cookies
    reply, _ = await client.post("/account/login", {**form, "csrf_token": token + "x"})
    assert reply.status == 403 and "gh_session" not in reply.cookies
    reply, body = await client.post("/account/login", {**form, "csrf_token": token},
                                    headers={"Origin": "https://evil.example"})
    assert reply.status == 403 and "another site" in body
    stranger = Client(system)  # a token from another browser does not fit this browser's cookie
    try:
        reply, body = await stranger.post("/account/login", {**form, "csrf_token": token})
        assert reply.status == 403 and "cookies" in body
    finally:
        await stranger.close()
    reply, _ = await client.post("/account/login", {**form, "csrf_token": token})
    assert reply.status == 303
    reply, _ = await client.post("/account/logout", {})  # logging out is a POST with a token too
    assert reply.status == 403
    reply, _ = await client.get("/account/")
    assert reply.status == 200
    # The token is bound to the session: one from before the login no longer works.
    reply, _ = await client.post("/account/logout", {"csrf_token": token})
    assert reply.status == 403
    reply, _ = await client.post("/account/logout", {"csrf_token": await client.token("/account/")})
    assert reply.status == 303
    reply, _ = await client.get("/account/")
    assert reply.status == 303


async def test_form_errors_are_specific_and_keep_what_was_typed_but_never_the_password(system, client):
    token = await client.token("/account/register")
    reply, body = await client.post("/account/register", {
        "csrf_token": token, "username": "alice-" + "x", "email": "not-an-email", "password": "hunter2hunter2",
        "password_confirm": "hunter2hunter2", "name": "Alice <b>"})
    assert reply.status == 400
    assert 'aria-describedby="f-email-hint f-email-error" aria-invalid="true"' in body
    assert 'id="f-email-error"' in body and "email address is not valid" in body
    assert 'value="alice-x"' in body and "Alice &lt;b&gt;" in body and "hunter2hunter2" not in body
    reply, body = await client.post("/account/register", {
        "csrf_token": token, "username": "bob", "email": "bob@example.org", "password": "long enough one",
        "password_confirm": "another"})
    assert reply.status == 400 and "do not match" in body and 'id="f-password_confirm-error"' in body



async def test_an_authsvc_refusal_reaches_its_form_field_by_its_reason(system, client):
    """authsvc's ErrorInfo reason picks the form field (uploadgw.refusals), never the message's words.
    Regression: "There is no project named 'x'" was shown at the description field (the word "named")."""
    person = await system.person("fld")
    await client.log_in(person.username)
    missing = f"no-such-{secrets.token_hex(3)}"
    reply, body = await client.post("/account/tokens/new", {
        "csrf_token": await client.token("/account/tokens/new"), "description": "ci", "scope": "projects",
        "projects": missing})
    assert reply.status == 404 and 'id="f-projects-error"' in body and missing in body  # PROJECT_NOT_FOUND
    assert 'id="f-description-error"' not in body
    reply, body = await client.post("/account/tokens/new", {
        "csrf_token": await client.token("/account/tokens/new"), "description": "d\x07", "scope": "all"})
    assert reply.status == 400 and 'id="f-description-error"' in body and "control characters" in body

    registering = Client(system)
    try:
        reply, body = await registering.post("/account/register", {
            "csrf_token": await registering.token("/account/register"), "username": "fld-" + secrets.token_hex(3),
            "email": "fld@example.org", "password": "short1", "password_confirm": "short1",
            "name": "Fld"})
        assert reply.status == 400 and 'id="f-password-error"' in body and "too short" in body
        reply, body = await registering.post("/account/register", {
            "csrf_token": await registering.token("/account/register"), "username": person.username,
            "email": "new-" + person.email, "password": PASSWORD, "password_confirm": PASSWORD})
        assert reply.status == 409 and 'id="f-username-error"' in body and "already in use" in body
    finally:
        await registering.close()


GARBAGE = [
    ("/account/login", {"username": "\x00\x01", "password": "x" * 9000}),
    ("/account/login", {"username": "a" * 9000}),
    ("/account/register", {"username": "☃" * 300, "email": "@@@", "password": "p", "password_confirm": "p"}),
    ("/account/forgot-password", {"username_or_email": "\r\n" * 50}),
    ("/account/reset-password", {"token": "\x00garbage", "new_password": "a new pass phrase",
                                 "new_password_confirm": "a new pass phrase"}),
    ("/account/verify-email", {"token": "%%%%"}),
    ("/account/login/two-factor", {"code": "abc"}),
    ("/account/login/recovery-code", {"recovery_code": "zz"}),
    ("/account/login/webauthn-options", {}),
]


async def test_garbage_input_never_gets_a_500(system, client):
    person = await system.person("garbage")
    for path, data in GARBAGE:
        token = await client.token("/account/login")
        reply, body = await client.post(path, {**data, "csrf_token": token})
        assert reply.status < 500, (path, reply.status, body[:300])
    # Not valid UTF-8, a JSON body and a file part: refused, not crashed.
    token = await client.token("/account/login")
    reply, _ = await client.post("/account/login", f"csrf_token={token}&username=%ff%fe&password=x",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status < 500
    reply, _ = await client.post("/account/login", b'{"a": 1}', headers={"Content-Type": "application/json"})
    assert reply.status == 403
    form = aiohttp.FormData()
    form.add_field("csrf_token", token)
    form.add_field("username", b"\xff\xfe", filename="x.bin")
    reply, _ = await client.post("/account/login", form)
    assert reply.status < 500
    await client.log_in(person.username)
    account_token = await client.token("/account/")
    for path, data in [
        ("/account/emails", {"email": "x" * 5000}),
        ("/account/emails/resend", {"email": "nobody@example.org"}),
        ("/account/password", {"current_password": "wrong", "new_password": "n", "new_password_confirm": "m"}),
        ("/account/tokens/new", {"description": "t", "scope": "projects", "projects": "no-such-project"}),
        ("/account/tokens/new", {"description": "t", "expires": "31/12/2099"}),
        ("/account/tokens/new", {"description": "t", "expires": "2001-01-01"}),
        ("/account/tokens/nonexistent/delete", {}),
        ("/account/two-factor/totp", {"code": "12 34 56"}),
        ("/account/two-factor/totp/remove", {"password": "x"}),
        ("/account/two-factor/security-keys", {"label": "k", "credential": "{not json"}),
        ("/account/two-factor/security-keys", {"label": "k", "credential": "[]"}),
        ("/account/two-factor/security-keys/%00/rename", {"label": "x" * 500}),
        ("/account/two-factor/security-keys/abc/remove", {"password": ""}),
        ("/account/two-factor/recovery-codes", {"password": "wrong"}),
        ("/projects/%00/collaborators", {"username": "x", "role": "King"}),
        ("/projects/no-such/collaborators", {"username": "x", "role": "Owner"}),
        ("/projects/no-such/releases/not a version/delete", {"confirm_version": "x"}),
        ("/projects/no-such/releases/1.0/yank", {"reason": "\x00"}),
        ("/projects/no-such/delete", {"confirm_name": "no-such"}),
    ]:
        reply, body = await client.post(path, {**data, "csrf_token": account_token})
        assert reply.status < 500, (path, reply.status, body[:300])
        assert reply.headers.get("Content-Type", "").startswith("text/html") or reply.status in (303,), path
    for path in ("/projects/no-such/", "/projects/%ff%fe/", "/projects/x/history", "/account/history?page=garbage",
                 "/account/tokens/%00/delete", "/account/login?next=//evil.example", "/account/reauth?next=http://x"):
        reply, body = await client.get(path)
        assert reply.status < 500, (path, reply.status, body[:300])


async def test_next_after_login_stays_on_this_site(system, client):
    person = await system.person("next")
    token = await client.token("/account/login?next=//evil.example/x")
    reply, _ = await client.post("/account/login", {"csrf_token": token, "username": person.username,
                                                    "password": PASSWORD, "next": "//evil.example/x"})
    assert reply.status == 303 and reply.headers["Location"] == "/account/"


async def test_a_key_answer_backed_up_but_not_backup_eligible_is_a_form_error(system, client):
    """WebAuthn L3 §6.1 (BS without BE): the registration form and the login's second step say why."""
    from tests.authsvc.softauthn import BS, SoftAuthenticator

    person = await system.person("backup")
    await client.log_in(person.username)
    key = SoftAuthenticator(origin=system.url)

    async def add(flags: int):
        token = await client.token("/account/two-factor/security-keys")
        _, options = await client.post("/account/two-factor/security-keys/options", headers={"X-CSRF-Token": token})
        return await client.post("/account/two-factor/security-keys", {
            "csrf_token": token, "label": "blue key", "credential": key.create(options, flags=flags)})

    reply, body = await add(BS)
    assert reply.status == 400 and "backed up" in body and 'value="blue key"' in body
    reply, body = await add(0)
    assert reply.status in (200, 303) and "backed up" not in body

    second = Client(system)
    try:
        reply, _ = await second.log_in(person.username)
        assert reply.headers["Location"].startswith("/account/login/two-factor")
        token = await second.token("/account/login/two-factor")
        _, options = await second.post("/account/login/webauthn-options", headers={"X-CSRF-Token": token})
        reply, body = await second.post("/account/login/two-factor", {
            "csrf_token": token, "method": "webauthn", "credential": key.get(options, flags=BS)})
        assert reply.status == 400 and "backed up" in body
        reply, _ = await second.post("/account/login/two-factor", {
            "csrf_token": token, "method": "webauthn", "credential": key.get(options)})
        assert reply.status == 303 and reply.headers["Location"].startswith("/account/")
    finally:
        await second.close()
