"""The Owners' switch of a project's "phishing-resistant second factor only" policy (kept apart from
projects.py; authsvc enforces the policy, this only turns it on or off)."""

from __future__ import annotations

from aiohttp import web

from uploadgw.http.upload import origin_of
from uploadgw.pages.common import PAGES, Form, path_param, read_form
from uploadgw.pages.projects import _detail, _manage, _url
from uploadgw.pages.services.errors import PageError


async def phishing_resistant_only(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name = path_param(request, "name")
    await _manage(request, name, _url(name))
    enabled = (await read_form(request)).get("enabled") == "on"
    try:
        await pages.projects.set_phishing_resistant_only(pages.session_token(request), name, enabled,
                                                         origin_of(request))
    except PageError as exc:
        return await _detail(request, name, status=exc.status,
                             forms={"phishing_resistant": Form({}, {"enabled": exc.message})})
    if enabled:
        return pages.redirect(_url(name), notice=f"{name} now accepts only logins with a security key or a passkey.")
    return pages.redirect(_url(name), notice=f"{name} accepts logins with any second factor again.")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/{name}/phishing-resistant-only", phishing_resistant_only)
