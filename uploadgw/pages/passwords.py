"""Passwords: change it (needs the current one), and forgot-password / reset by emailed link.

The reset link's token arrives in the URL; the landing page puts it in a hidden field of a form
that POSTs it and is sent with `Referrer-Policy: no-referrer`. Password fields are never filled
back in after an error.
"""

from __future__ import annotations

from aiohttp import web

from uploadgw.http.upload import origin_of
from uploadgw.pages.services.errors import PageError
from uploadgw.pages.common import PAGES, Form, read_form

NO_REFERRER = {"Referrer-Policy": "no-referrer"}


def _check_new(form: Form, new: str, confirm: str) -> None:
    if not new:
        form.errors["new_password"] = "Enter a new password."
    elif new != confirm:
        form.errors["new_password_confirm"] = "The two new passwords do not match."


async def change_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    return await pages.render(request, "password.html")


async def change(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    data = await read_form(request)
    form, status = Form(), 400
    if not data.get("current_password"):
        form.errors["current_password"] = "Enter your current password."
    _check_new(form, data.get("new_password", ""), data.get("new_password_confirm", ""))
    if form.ok:
        try:
            await pages.accounts.change_password(pages.session_token(request), data.get("current_password", ""),
                                                 data.get("new_password", ""), origin_of(request))
        except PageError as exc:
            form.fail(exc)
            status = exc.status
        else:
            return pages.redirect("/account/", notice="Your password has been changed. Your other sessions "
                                                      "were logged out.")
    return await pages.render(request, "password.html", status=status, form=form)


async def forgot_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    return await pages.render(request, "forgot_password.html")


async def forgot(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    data = await read_form(request)
    form = Form({"username_or_email": data.get("username_or_email", "").strip()})
    form.require("username_or_email", "Enter your username or email address.")
    if form.ok:
        try:
            await pages.accounts.request_reset(form.get("username_or_email"), origin_of(request))
        except PageError as exc:
            form.fail(exc)
            return await pages.render(request, "forgot_password.html", status=exc.status, form=form)
        return await pages.render(request, "forgot_password_sent.html", form=form)
    return await pages.render(request, "forgot_password.html", status=400, form=form)


async def reset_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    token = request.query.get("token", "")[:1000]
    form = Form({"token": token})
    if not token:
        form.errors[""] = "This link has no token. Open the link from the email again, or ask for a new one."
    return await pages.render(request, "reset_password.html", status=200 if token else 400, form=form,
                              headers=NO_REFERRER)


async def reset(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    data = await read_form(request)
    form = Form({"token": data.get("token", "")[:1000]})
    _check_new(form, data.get("new_password", ""), data.get("new_password_confirm", ""))
    if form.ok:
        try:
            second_factor = await pages.accounts.reset_password(form.get("token"), data.get("new_password", ""),
                                                                origin_of(request))
        except PageError as exc:
            if exc.status >= 500:
                raise
            form.errors[exc.field if exc.field == "new_password" else ""] = exc.message
        else:
            notice = "Your password has been reset. Log in with your new password"
            notice += " and your second factor." if second_factor else "."
            response = pages.redirect("/account/login", notice=notice)
            pages.cookies.clear(response, pages.cookies.names.session)
            return response
    return await pages.render(request, "reset_password.html", status=400, form=form, headers=NO_REFERRER)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/password", change_page, name="password")
    router.add_post("/password", change)
    router.add_get("/forgot-password", forgot_page, name="forgot_password")
    router.add_post("/forgot-password", forgot)
    router.add_get("/reset-password", reset_page, name="reset_password")
    router.add_post("/reset-password", reset)
