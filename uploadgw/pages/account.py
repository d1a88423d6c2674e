"""Account settings: the overview, email addresses (verified state, add, resend verification, make primary)."""

from __future__ import annotations

from aiohttp import web

from uploadgw.http.upload import origin_of
from uploadgw.pages.services.errors import PageError
from uploadgw.pages.common import PAGES, Form, read_form


async def _overview(request: web.Request, *, status: int = 200, form: Form | None = None,
                    primary_form: Form | None = None) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    token = pages.session_token(request)
    account = await pages.accounts.account(token)
    twofactor = await pages.twofactor.status(token)
    return await pages.render(request, "account.html", status=status, account=account, twofactor=twofactor,
                              form=form or Form(), primary_form=primary_form or Form())


async def overview(request: web.Request) -> web.Response:
    return await _overview(request)


async def add_email(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require_recent(request, "/account/")
    data = await read_form(request)
    form = Form({"email": data.get("email", "").strip()})
    form.require("email", "Enter the email address to add.")
    if form.ok:
        try:
            await pages.accounts.add_email(pages.session_token(request), form.get("email"), origin_of(request))
        except PageError as exc:
            form.errors["email"] = exc.message
            return await _overview(request, status=exc.status, form=form)
        return pages.redirect("/account/", notice=f"We sent a verification link to {form.get('email')}.")
    return await _overview(request, status=400, form=form)


async def resend(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    data = await read_form(request)
    email = data.get("email", "").strip()
    try:
        await pages.accounts.resend_verification(pages.session_token(request), email, origin_of(request))
    except PageError as exc:
        return pages.redirect("/account/", notice=exc.message, kind="warning")
    return pages.redirect("/account/", notice=f"We sent a new verification link to {email or 'your primary address'}.")


async def make_primary(request: web.Request) -> web.Response:
    """Another verified address becomes the primary one; authsvc mails the old one (as PyPI)."""
    pages = request.config_dict[PAGES]
    await pages.require_recent(request, "/account/")
    email = (await read_form(request)).get("email", "").strip()
    try:
        await pages.accounts.set_primary_email(pages.session_token(request), email, origin_of(request))
    except PageError as exc:
        return await _overview(request, status=exc.status, primary_form=Form(errors={"": exc.message}))
    return pages.redirect("/account/", notice=f"{email} is now your primary email address.")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", overview, name="account")
    router.add_post("/emails", add_email, name="emails")
    router.add_post("/emails/resend", resend, name="emails_resend")
    router.add_post("/emails/primary", make_primary, name="emails_primary")
