"""Signing in with a passkey, without a password: the login page's "Sign in with a passkey" button
(and the browser's autofill) asks for options here, and posts the passkey's answer back; authsvc
checks it and starts the session, which replaces the browser's as any other login does."""

from __future__ import annotations

from aiohttp import web

from uploadgw.http.upload import origin_of
from uploadgw.pages.auth import finish_login
from uploadgw.pages.common import PAGES, Form, read_form, safe_next
from uploadgw.pages.services.errors import PageError


async def passkey_options(request: web.Request) -> web.Response:
    """JSON for webauthn.js: request options with no allowCredentials and user verification required."""
    pages = request.config_dict[PAGES]
    try:
        options = await pages.accounts.passkey_login_options(origin_of(request))
    except PageError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    return web.Response(text=options, content_type="application/json")


async def passkey_login(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    data = await read_form(request)
    form = Form({"next": safe_next(data.get("next"))})
    credential = data.get("credential", "")
    if not credential:
        form.errors[""] = ("The browser did not send the passkey's answer. Signing in with a passkey needs "
                           "JavaScript: allow it for this site, or sign in with your password.")
        return await pages.render(request, "login.html", status=400, form=form)
    try:
        outcome = await pages.accounts.complete_passkey_login(credential, origin_of(request))
    except PageError as exc:
        form.fail(exc)
        return await pages.render(request, "login.html", status=exc.status, form=form)
    return await finish_login(pages, request, outcome, form.get("next"))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/login/passkey-options", passkey_options)
    router.add_post("/login/passkey", passkey_login)
