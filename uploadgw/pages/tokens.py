"""API tokens: list (with last use), create (shown once, with a ready .pypirc and the twine command),
delete after a confirmation page. Creating and deleting need a recent password entry."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from uploadgw.http.upload import origin_of
from uploadgw.pages.services.errors import PageError
from uploadgw.pages.common import PAGES, Form, path_param, read_form

LIST = "/account/tokens"


async def index(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    tokens = await pages.tokens.list(pages.session_token(request))
    return await pages.render(request, "tokens.html", tokens=tokens)


async def _new_form(request: web.Request, form: Form, status: int = 200) -> web.Response:
    pages = request.config_dict[PAGES]
    projects = await pages.projects.mine(pages.session_token(request))
    return await pages.render(request, "token_new.html", status=status, form=form, projects=projects,
                              chosen=set(form.values.get("projects_list", "").split("\n")) - {""})


async def new_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require_recent(request, LIST + "/new")
    return await _new_form(request, Form({"scope": "all"}))


def parse_expiry(value: str, today: dt.date) -> dt.datetime | None:
    """The end (UTC) of the chosen day; None when no date was chosen."""
    value = value.strip()
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise PageError("Enter the expiry date as year-month-day, for example 2030-12-31.", field="expires") from None
    if day < today:
        raise PageError("The expiry date must be in the future.", field="expires")
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=dt.timezone.utc)


async def create(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require_recent(request, LIST + "/new")
    data = await read_form(request)
    chosen = [p.strip() for p in data.getall("projects", []) if p.strip()][:100]
    scope = "projects" if data.get("scope") == "projects" else "all"
    form = Form({"description": data.get("description", "").strip(), "scope": scope,
                 "expires": data.get("expires", "").strip()[:20], "projects_list": "\n".join(chosen),
                 "networks": data.get("networks", "").strip()[:2000],
                 "release_version": data.get("release_version", "").strip()[:100]})
    form.require("description", "Enter a name for the token, for example what it is for.")
    if scope == "projects" and not chosen:
        form.errors["projects"] = "Choose at least one project, or give the token the whole account."
    expires = None
    try:
        expires = parse_expiry(form.get("expires"), pages.clock.now().date())
    except PageError as exc:
        form.fail(exc)
    if not form.ok:
        return await _new_form(request, form, status=400)
    try:
        created = await pages.tokens.create(pages.session_token(request), form.get("description"),
                                            all_projects=scope == "all", project_names=chosen if scope == "projects"
                                            else [], expires_at=expires, origin=origin_of(request),
                                            networks=form.get("networks").replace(",", " ").split(),
                                            release_version=form.get("release_version"))
    except PageError as exc:
        form.fail(exc)
        return await _new_form(request, form, status=exc.status)
    return await pages.render(request, "token_created.html", token=created,
                              upload_url=pages.public_url.rstrip("/") + "/legacy/")


async def delete_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    token_id = path_param(request, "token_id")
    await pages.require_recent(request, f"{LIST}/{token_id}/delete")
    token = await pages.tokens.get(pages.session_token(request), token_id)
    return await pages.render(request, "token_delete.html", token=token)


async def delete(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    token_id = path_param(request, "token_id")
    await pages.require_recent(request, f"{LIST}/{token_id}/delete")
    token = await pages.tokens.get(pages.session_token(request), token_id)
    await pages.tokens.delete(pages.session_token(request), token_id, origin_of(request))
    return pages.redirect(LIST, notice=f"The API token \u201c{token.description}\u201d was deleted. "
                                       "It no longer works.")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/tokens", index, name="tokens")
    router.add_get("/tokens/new", new_page, name="token_new")
    router.add_post("/tokens/new", create)
    router.add_get("/tokens/{token_id}/delete", delete_page, name="token_delete")
    router.add_post("/tokens/{token_id}/delete", delete)
