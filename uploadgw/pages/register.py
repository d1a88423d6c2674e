"""Creating an account, and the landing page of the emailed verification link.

The link carries its token in the URL (email links have no other way); the landing page only
shows a button that POSTs the token, and it is sent with `Referrer-Policy: no-referrer` so the
token never leaks to another request.
"""

from __future__ import annotations

from aiohttp import web

from uploadgw.http.upload import origin_of
from uploadgw.pages.auth import device_token, finish_login
from uploadgw.pages.services.errors import PageError
from uploadgw.pages.common import PAGES, Form, read_form

NO_REFERRER = {"Referrer-Policy": "no-referrer"}


async def register_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    if await pages.current(request) is not None:
        return pages.redirect("/account/")
    return await pages.render(request, "register.html")


async def register(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    data = await read_form(request)
    form = Form({k: data.get(k, "").strip() for k in ("username", "name", "email")})
    form.require("username", "Enter a username.")
    form.require("email", "Enter an email address.")
    password, confirm = data.get("password", ""), data.get("password_confirm", "")
    if not password:
        form.errors["password"] = "Enter a password."
    elif password != confirm:
        form.errors["password_confirm"] = "The two passwords do not match."
    if not form.ok:
        return await pages.render(request, "register.html", status=400, form=form)
    origin = origin_of(request)
    try:
        await pages.accounts.register(form.get("username"), form.get("name"), form.get("email"), password, origin)
    except PageError as exc:
        form.fail(exc)
        return await pages.render(request, "register.html", status=exc.status, form=form)
    notice = (f"Welcome to Gatehouse. We sent a link to {form.get('email')}: open it to verify your email "
              "address.")
    try:
        outcome = await pages.accounts.login(form.get("username"), password, origin, device_token(pages, request))
    except PageError:
        return pages.redirect("/account/login", notice=notice + " Then log in.", kind="success")
    return await finish_login(pages, request, outcome, "/account/", notice=notice)


async def verify_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    token = request.query.get("token", "")[:1000]
    status = 200 if token else 400
    form = Form({"token": token}, {} if token else {"": "This link has no token. Open the link from the email "
                                                         "again, or request a new one from your account."})
    return await pages.render(request, "verify_email.html", status=status, form=form, headers=NO_REFERRER)


async def verify(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    data = await read_form(request)
    form = Form({"token": data.get("token", "")[:1000]})
    try:
        email = await pages.accounts.verify_email(form.get("token"), origin_of(request))
    except PageError as exc:
        form.errors[""] = exc.message
        return await pages.render(request, "verify_email.html", status=exc.status, form=form, headers=NO_REFERRER)
    return await pages.render(request, "verify_email_done.html", email=email, headers=NO_REFERRER)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/register", register_page, name="register")
    router.add_post("/register", register)
    router.add_get("/verify-email", verify_page, name="verify_email")
    router.add_post("/verify-email", verify)
