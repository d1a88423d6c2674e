"""Logging in (password, then the second factor), logging out, and confirming the password again
(the password alone, on the current session).

The pending-login token of the second step lives in a short-lived HttpOnly cookie, never in a
URL. Every completed login replaces the browser's session cookie with the new session (and ends
the one it had), so a session id never survives a login. A login whose password was right also
leaves authsvc's device token in a long-lived HttpOnly cookie, sent with the browser's next
logins (OWASP's device cookie: its owner keeps logging in while someone else guesses at the
account); it outlives logging out, and authsvc alone decides whether it is still valid.

A login that authsvc holds for new-device confirmation leaves instead a short-lived HttpOnly
cookie binding the mailed link to this browser, and the "check your email" page; the link's page
posts its token back, and only this browser's cookie makes it a session.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from uploadgw.http.upload import origin_of
from uploadgw.pages.services.errors import PageError
from uploadgw.pages.services.views import LoginOutcome
from uploadgw.pages.common import PAGES, Form, Pages, read_form, safe_next

PENDING_SECONDS = 300
HELD_SECONDS = 3600  # longer than any link lifetime; authsvc alone decides whether the link still works
DEVICE_SECONDS = 400 * 86400  # browsers' longest; the token's own lifetime is authsvc's to check
MAX_DEVICE_TOKEN = 200
METHODS = ("totp", "webauthn", "recovery_code")


def _pending(pages: Pages, request: web.Request) -> tuple[str, tuple[str, ...]]:
    raw = request.cookies.get(pages.cookies.names.pending, "")
    methods, sep, token = raw.partition("~")
    if not sep or not token:
        return "", ()
    return token[:512], tuple(m for m in methods.split(",") if m in METHODS)


def device_token(pages: Pages, request: web.Request) -> str:
    token = request.cookies.get(pages.cookies.names.device, "")
    return token if len(token) <= MAX_DEVICE_TOKEN else ""


def _keep_device(pages: Pages, response: web.StreamResponse, outcome: LoginOutcome) -> None:
    if outcome.device_token:
        pages.cookies.set(response, pages.cookies.names.device, outcome.device_token, max_age=DEVICE_SECONDS)


def _next_query(next_path: str) -> str:
    return f"?next={quote(next_path, safe='/')}" if next_path != "/account/" else ""


async def finish_login(pages: Pages, request: web.Request, outcome: LoginOutcome, next_path: str,
                        notice: str = "") -> web.Response:
    """Start the new session in this browser and end the one it had before (if any); or, for a
    login held for new-device confirmation, keep its browser token and ask to check the mail."""
    if outcome.held_token:
        held = pages.redirect("/account/login/check-email", kind="info")
        pages.cookies.set(held, pages.cookies.names.held, outcome.held_token, max_age=HELD_SECONDS)
        pages.cookies.clear(held, pages.cookies.names.pending)
        _keep_device(pages, held, outcome)
        return held
    old = pages.session_token(request)
    if old and old != outcome.session_token:
        try:
            await pages.accounts.logout(old, origin_of(request))
        except PageError:
            pass
    if outcome.recovery_codes_remaining is not None:
        notice = (f"You logged in with a recovery code. You have {outcome.recovery_codes_remaining} left: "
                  "generate a new set in your two-factor settings if you are running low.")
    response = pages.redirect(next_path, notice=notice, kind="warning" if notice else "success")
    pages.set_session(response, outcome.session_token)
    pages.cookies.clear(response, pages.cookies.names.pending)
    pages.cookies.clear(response, pages.cookies.names.held)
    _keep_device(pages, response, outcome)
    return response


def to_second_step(pages: Pages, outcome: LoginOutcome, next_path: str, notice: str = "") -> web.Response:
    response = pages.redirect("/account/login/two-factor" + _next_query(next_path), notice=notice, kind="info")
    pages.cookies.set(response, pages.cookies.names.pending, f"{','.join(outcome.methods)}~{outcome.pending_token}",
                      max_age=PENDING_SECONDS)
    _keep_device(pages, response, outcome)
    return response


async def login_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    next_path = safe_next(request.query.get("next"))
    if await pages.current(request) is not None:
        return pages.redirect(next_path)
    return await pages.render(request, "login.html", form=Form({"next": next_path}))


async def login(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    data = await read_form(request)
    form = Form({"username": data.get("username", "").strip(), "next": safe_next(data.get("next"))})
    form.require("username", "Enter your username or email address.")
    if not data.get("password"):
        form.errors.setdefault("password", "Enter your password.")
    if form.ok:
        try:
            outcome = await pages.accounts.login(form.get("username"), data.get("password", ""), origin_of(request),
                                                 device_token(pages, request))
        except PageError as exc:
            form.fail(exc)
            return await pages.render(request, "login.html", status=exc.status, form=form)
        if outcome.pending_token:
            return to_second_step(pages, outcome, form.get("next"))
        return await finish_login(pages, request, outcome, form.get("next"))
    return await pages.render(request, "login.html", status=400, form=form)


async def second_step_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    token, methods = _pending(pages, request)
    next_path = safe_next(request.query.get("next"))
    if not token:
        return pages.redirect("/account/login" + _next_query(next_path),
                              notice="Your login has expired. Log in again with your password.", kind="info")
    return await pages.render(request, "login_two_factor.html", methods=methods, form=Form({"next": next_path}))


async def second_step(request: web.Request) -> web.Response:
    """A code from the authenticator app, or (sent by webauthn.js) a security key's assertion."""
    pages = request.config_dict[PAGES]
    token, methods = _pending(pages, request)
    data = await read_form(request)
    form = Form({"next": safe_next(data.get("next"))})
    method = "webauthn" if data.get("method") == "webauthn" else "totp"
    value = data.get("credential", "") if method == "webauthn" else data.get("code", "")
    if not token:
        return pages.redirect("/account/login" + _next_query(form.get("next")),
                              notice="Your login has expired. Log in again with your password.", kind="info")
    if method == "totp" and not value.strip():
        form.errors["code"] = "Enter the 6-digit code shown by your authenticator app."
        return await pages.render(request, "login_two_factor.html", status=400, methods=methods, form=form)
    try:
        outcome = await pages.accounts.complete_login(token, method, value, origin_of(request),
                                                      device_token(pages, request))
    except PageError as exc:
        form.errors["code" if method == "totp" else "credential"] = exc.message
        return await pages.render(request, "login_two_factor.html", status=exc.status, methods=methods, form=form)
    return await finish_login(pages, request, outcome, form.get("next"))


async def recovery_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    token, _ = _pending(pages, request)
    next_path = safe_next(request.query.get("next"))
    if not token:
        return pages.redirect("/account/login" + _next_query(next_path),
                              notice="Your login has expired. Log in again with your password.", kind="info")
    return await pages.render(request, "login_recovery.html", form=Form({"next": next_path}))


async def recovery(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    token, _ = _pending(pages, request)
    data = await read_form(request)
    form = Form({"next": safe_next(data.get("next"))})
    if not token:
        return pages.redirect("/account/login" + _next_query(form.get("next")),
                              notice="Your login has expired. Log in again with your password.", kind="info")
    code = data.get("recovery_code", "")
    if not code.strip():
        form.errors["recovery_code"] = "Enter one of your recovery codes."
        return await pages.render(request, "login_recovery.html", status=400, form=form)
    try:
        outcome = await pages.accounts.complete_login(token, "recovery_code", code, origin_of(request),
                                                      device_token(pages, request))
    except PageError as exc:
        form.errors["recovery_code"] = exc.message
        return await pages.render(request, "login_recovery.html", status=exc.status, form=form)
    return await finish_login(pages, request, outcome, form.get("next"))


async def check_email_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    return await pages.render(request, "login_check_email.html")


async def confirm_page(request: web.Request) -> web.Response:
    """The mailed link's page: a button that posts the token (a GET changes nothing, so mail
    scanners that open links confirm nothing)."""
    pages = request.config_dict[PAGES]
    return await pages.render(request, "login_confirm.html", form=Form({"token": request.query.get("token", "")}))


async def confirm(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    data = await read_form(request)
    form = Form({"token": data.get("token", "")})
    try:
        held = request.cookies.get(pages.cookies.names.held, "")[:512]
        outcome = await pages.accounts.confirm_login(form.get("token"), held, origin_of(request))
    except PageError as exc:
        form.errors[""] = exc.message
        return await pages.render(request, "login_confirm.html", status=exc.status, form=form)
    return await finish_login(pages, request, outcome, "/account/", notice="Thank you: your login is confirmed.")


async def webauthn_login_options(request: web.Request) -> web.Response:
    """JSON for webauthn.js: the assertion options for the pending login's security keys."""
    pages = request.config_dict[PAGES]
    token, _ = _pending(pages, request)
    try:
        options = await pages.accounts.webauthn_login_options(token, origin_of(request))
    except PageError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    return web.Response(text=options, content_type="application/json")


async def logout(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    try:
        await pages.accounts.logout(pages.session_token(request), origin_of(request))
    except PageError:
        pass  # the cookie goes anyway; authsvc ends the session when it expires
    response = pages.redirect("/account/login", notice="You have logged out.", kind="info")
    pages.cookies.clear(response, pages.cookies.names.session)
    pages.cookies.clear(response, pages.cookies.names.pending)
    return response


async def reauth_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    return await pages.render(request, "reauth.html", form=Form({"next": safe_next(request.query.get("next"))}))


async def reauth(request: web.Request) -> web.Response:
    """The password alone, for the session this browser already has (no new session, no second step)."""
    pages = request.config_dict[PAGES]
    await pages.require(request)
    data = await read_form(request)
    form = Form({"next": safe_next(data.get("next"))})
    try:
        await pages.accounts.reauthenticate(pages.session_token(request), data.get("password", ""),
                                            origin_of(request))
    except PageError as exc:
        form.fail(exc)
        return await pages.render(request, "reauth.html", status=exc.status, form=form,
                                  headers={"Retry-After": str(exc.retry_after)} if exc.retry_after else None)
    return pages.redirect(form.get("next"), notice="Thank you: your password is confirmed.")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/login", login_page, name="login")
    router.add_post("/login", login)
    router.add_get("/login/two-factor", second_step_page, name="login_two_factor")
    router.add_post("/login/two-factor", second_step)
    router.add_get("/login/recovery-code", recovery_page, name="login_recovery")
    router.add_post("/login/recovery-code", recovery)
    router.add_post("/login/webauthn-options", webauthn_login_options)
    router.add_get("/login/check-email", check_email_page, name="login_check_email")
    router.add_get("/login/confirm", confirm_page, name="login_confirm")
    router.add_post("/login/confirm", confirm)
    router.add_post("/logout", logout, name="logout")
    router.add_get("/reauth", reauth_page, name="reauth")
    router.add_post("/reauth", reauth)
