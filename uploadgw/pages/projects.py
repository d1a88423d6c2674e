"""Projects: the list, one project's releases and collaborators, and the Owners' actions on them.

Every action asks authsvc first (CheckPermission MANAGE, which also says when the password must
be confirmed again); only then does the gateway change its own tables (ReleaseService) or ask
authsvc to change roles. Destructive actions have a confirmation page; deleting a release or a
project means typing its version or name.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from uploadgw.http.upload import origin_of
from uploadgw.pages.services.errors import PageError, ReauthRequired
from uploadgw.pages.common import PAGES, Form, path_param, read_form
from uploadgw.pages.services.publishing import PENDING_FIELDS


def _role_phrase(role: str) -> str:
    return "an Owner" if role == "Owner" else f"a {role}"


def _url(name: str, *rest: str) -> str:
    return "/projects/" + "/".join(quote(part, safe="") for part in (name, *rest)) + ("" if rest else "/")


async def _index(request: web.Request, *, status: int = 200, form: Form | None = None) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    token = pages.session_token(request)
    projects = await pages.projects.mine(token)
    issuers = await pages.publishing.issuers()
    pending = await pages.publishing.pending(token) if issuers else []
    return await pages.render(request, "projects.html", status=status, projects=projects, issuers=issuers,
                              pending=pending, form=form or Form())


async def index(request: web.Request) -> web.Response:
    return await _index(request)


async def _detail(request: web.Request, name: str, *, status: int = 200, forms: dict | None = None) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    token = pages.session_token(request)
    access = await pages.projects.access(token, name, "upload")
    people = await pages.projects.collaborators(token, name)
    releases = await pages.projects.releases(access.project.id)
    issuers = await pages.publishing.issuers() if access.is_owner else []
    publishers = await pages.publishing.publishers(token, name) if issuers else []
    reaching, has_publisher = await pages.tokens.for_project(token, name) if access.is_owner else ([], False)
    return await pages.render(request, "project.html", status=status, access=access, people=people,
                              releases=releases, issuers=issuers, publishers=publishers, forms=forms or {},
                              reaching=reaching, has_publisher=has_publisher, url=_url)


async def detail(request: web.Request) -> web.Response:
    return await _detail(request, path_param(request, "name"))


async def _manage(request: web.Request, name: str, back: str):
    pages = request.config_dict[PAGES]
    await pages.require(request)
    try:
        return await pages.projects.manage(pages.session_token(request), name)
    except ReauthRequired as exc:
        raise exc.back_to(back) from None


# -- collaborators ---------------------------------------------------------------------------------
async def add_collaborator(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name = path_param(request, "name")
    await _manage(request, name, _url(name))
    data = await read_form(request)
    form = Form({"username": data.get("username", "").strip(), "role": data.get("role", "Maintainer")})
    try:
        await pages.projects.add_role(pages.session_token(request), name, form.get("username"), form.get("role"),
                                      origin_of(request))
    except PageError as exc:
        form.errors[exc.field or "username"] = exc.message
        return await _detail(request, name, status=exc.status, forms={"add": form})
    who = form.get("username")
    return pages.redirect(_url(name), notice=f"{who} is now {_role_phrase(form.get('role'))} of {name}.")


async def change_role(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name, username = path_param(request, "name"), path_param(request, "username")
    await _manage(request, name, _url(name))
    data = await read_form(request)
    role = data.get("role", "")
    try:
        await pages.projects.change_role(pages.session_token(request), name, username, role, origin_of(request))
    except PageError as exc:
        return await _detail(request, name, status=exc.status,
                             forms={f"role_{username}": Form({"role": role}, {"role": exc.message})})
    return pages.redirect(_url(name), notice=f"{username} is now {_role_phrase(role)} of {name}.")


async def remove_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name, username = path_param(request, "name"), path_param(request, "username")
    access = await _manage(request, name, _url(name, "collaborators", username, "remove"))
    return await pages.render(request, "collaborator_remove.html", access=access, username=username, url=_url)


async def remove(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name, username = path_param(request, "name"), path_param(request, "username")
    await _manage(request, name, _url(name, "collaborators", username, "remove"))
    await pages.projects.remove_role(pages.session_token(request), name, username, origin_of(request))
    return pages.redirect(_url(name), notice=f"{username} is no longer a collaborator of {name}. Their API tokens "
                                             "no longer work for it.")


async def two_factor(request: web.Request) -> web.Response:
    """Owners: require two-factor authentication of every collaborator, or stop requiring it."""
    pages = request.config_dict[PAGES]
    name = path_param(request, "name")
    await _manage(request, name, _url(name))
    required = (await read_form(request)).get("required") == "on"
    try:
        missing = await pages.projects.set_two_factor_required(pages.session_token(request), name, required,
                                                               origin_of(request))
    except PageError as exc:
        return await _detail(request, name, status=exc.status,
                             forms={"two_factor": Form({}, {"required": exc.message})})
    if not required:
        return pages.redirect(_url(name), notice=f"{name} no longer requires two-factor authentication.")
    notice = f"{name} now requires two-factor authentication of every collaborator."
    if missing:
        notice += (f" Uploads by {', '.join(missing)} are refused until they add an authenticator app or a "
                   "security key.")
    return pages.redirect(_url(name), notice=notice)


# -- trusted publishers ----------------------------------------------------------------------------
def _publisher_form(data) -> Form:
    return Form({name: data.get(name, "").strip()[:2000] for name in PENDING_FIELDS})


async def add_publisher(request: web.Request) -> web.Response:
    """Owners: trust a CI workflow (an issuer and what its identity tokens must say) to upload."""
    pages = request.config_dict[PAGES]
    name = path_param(request, "name")
    await _manage(request, name, _url(name))
    form = _publisher_form(await read_form(request))
    try:
        display = await pages.publishing.add(pages.session_token(request), name, form.values, origin_of(request))
    except PageError as exc:
        return await _detail(request, name, status=exc.status, forms={"publisher": form.fail(exc)})
    return pages.redirect(_url(name), notice=f"{display} may now publish {name}, with no API token.")


async def remove_publisher(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name, publisher_id = path_param(request, "name"), path_param(request, "publisher_id")
    await _manage(request, name, _url(name))
    await pages.publishing.remove(pages.session_token(request), name, publisher_id, origin_of(request))
    return pages.redirect(_url(name), notice=f"The trusted publisher was removed from {name}. Upload tokens it "
                                             "was given no longer work for it.")


async def trusted_publishing_only(request: web.Request) -> web.Response:
    """Owners: refuse uploads with long-lived API tokens (only the trusted publishers upload), or stop."""
    pages = request.config_dict[PAGES]
    name = path_param(request, "name")
    await _manage(request, name, _url(name))
    enabled = (await read_form(request)).get("enabled") == "on"
    try:
        await pages.publishing.set_only(pages.session_token(request), name, enabled, origin_of(request))
    except PageError as exc:
        return await _detail(request, name, status=exc.status, forms={"only": Form({}, {"enabled": exc.message})})
    if enabled:
        return pages.redirect(_url(name), notice=f"{name} now accepts uploads only from its trusted publishers: "
                                                 "uploads with API tokens are refused.")
    return pages.redirect(_url(name), notice=f"{name} accepts uploads with API tokens again.")


async def add_pending_publisher(request: web.Request) -> web.Response:
    """A publisher for a project that does not exist yet: its first upload creates the project."""
    pages = request.config_dict[PAGES]
    await pages.require_recent(request, "/projects/")
    form = _publisher_form(await read_form(request))
    try:
        display = await pages.publishing.add_pending(pages.session_token(request), form.values, origin_of(request))
    except PageError as exc:
        return await _index(request, status=exc.status, form=form.fail(exc))
    return pages.redirect("/projects/", notice=f"{display} may now create {form.get('project_name')} with its "
                                               "first upload; you will be its Owner.")


async def remove_pending_publisher(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require_recent(request, "/projects/")
    await pages.publishing.remove_pending(pages.session_token(request), path_param(request, "pending_id"),
                                          origin_of(request))
    return pages.redirect("/projects/", notice="The pending publisher was removed.")


# -- API tokens that can reach the project -----------------------------------------------------------
async def revoke_token(request: web.Request) -> web.Response:
    """Owners: revoke any token that can reach the project, a collaborator's account-wide one included."""
    pages = request.config_dict[PAGES]
    name, token_id = path_param(request, "name"), path_param(request, "token_id")
    await _manage(request, name, _url(name))
    try:
        revoked = await pages.tokens.revoke_for_project(pages.session_token(request), name, token_id,
                                                        origin_of(request))
    except PageError as exc:
        return await _detail(request, name, status=exc.status, forms={"tokens": Form({}, {"token": exc.message})})
    return pages.redirect(_url(name), notice=f"The API token '{revoked.description}' was revoked; its owner was "
                                             "told by email.")


async def revoke_long_lived(request: web.Request) -> web.Response:
    """Owners of a project with a trusted publisher: revoke its long-lived tokens at once."""
    pages = request.config_dict[PAGES]
    name = path_param(request, "name")
    await _manage(request, name, _url(name))
    include = (await read_form(request)).get("include_account_wide") == "on"
    try:
        count = await pages.tokens.revoke_long_lived(pages.session_token(request), name, include, origin_of(request))
    except PageError as exc:
        return await _detail(request, name, status=exc.status, forms={"bulk": Form({}, {"bulk": exc.message})})
    word = "token was" if count == 1 else "tokens were"
    return pages.redirect(_url(name), notice=f"{count} long-lived API {word} revoked; {name} now publishes through "
                                             "its trusted publishers.")


# -- releases ---------------------------------------------------------------------------------------
async def yank(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name, version = path_param(request, "name"), path_param(request, "version")
    access = await _manage(request, name, _url(name))
    data = await read_form(request)
    undo = request.match_info.get("action") == "unyank"
    await pages.projects.set_yanked(access, version, not undo, data.get("reason", ""), origin_of(request))
    done = "is no longer yanked" if undo else "is yanked: installers skip it unless it is pinned exactly"
    return pages.redirect(_url(name), notice=f"Release {version} {done}.")


async def delete_release_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name, version = path_param(request, "name"), path_param(request, "version")
    access = await _manage(request, name, _url(name, "releases", version, "delete"))
    return await pages.render(request, "release_delete.html", access=access, version=version, url=_url)


async def delete_release(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name, version = path_param(request, "name"), path_param(request, "version")
    access = await _manage(request, name, _url(name, "releases", version, "delete"))
    data = await read_form(request)
    typed = data.get("confirm_version", "").strip()
    if typed != version:
        form = Form({"confirm_version": typed}, {"confirm_version": f"Type the version {version} exactly to confirm."})
        return await pages.render(request, "release_delete.html", status=400, access=access, version=version,
                                  url=_url, form=form)
    await pages.projects.delete_release(access, version, origin_of(request))
    return pages.redirect(_url(name), notice=f"Release {version} of {name} and its files were deleted.")


# -- the project itself ----------------------------------------------------------------------------
async def delete_project_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name = path_param(request, "name")
    access = await _manage(request, name, _url(name, "delete"))
    return await pages.render(request, "project_delete.html", access=access, url=_url)


async def delete_project(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    name = path_param(request, "name")
    access = await _manage(request, name, _url(name, "delete"))
    data = await read_form(request)
    form = Form({"confirm_name": data.get("confirm_name", "").strip()})
    try:
        await pages.projects.delete_project(pages.session_token(request), access, form.get("confirm_name"),
                                            origin_of(request))
    except PageError as exc:
        form.errors["confirm_name"] = exc.message
        return await pages.render(request, "project_delete.html", status=exc.status, access=access, url=_url,
                                  form=form)
    return pages.redirect("/projects/", notice=f"The project {access.project.name} was deleted, with all its "
                                               "releases and files.")


async def history(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    name = path_param(request, "name")
    access = await pages.projects.access(pages.session_token(request), name, "view_log")
    page = await pages.history.project_log(access.project.id, request.query.get("page", ""))
    return await pages.render(request, "history.html", page=page, title=f"History of {access.project.name}",
                              project=access.project, url=_url)


async def no_slash(request: web.Request) -> web.Response:
    return request.config_dict[PAGES].redirect(_url(path_param(request, "name")))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", index, name="projects")
    router.add_post("/pending-publishers", add_pending_publisher)
    router.add_post("/pending-publishers/{pending_id}/remove", remove_pending_publisher)
    router.add_get("/{name}/", detail, name="project")
    router.add_get("/{name}", no_slash)
    router.add_post("/{name}/collaborators", add_collaborator)
    router.add_post("/{name}/collaborators/{username}/role", change_role)
    router.add_post("/{name}/two-factor", two_factor)
    router.add_post("/{name}/publishers", add_publisher)
    router.add_post("/{name}/trusted-publishing-only", trusted_publishing_only)
    router.add_post("/{name}/publishers/{publisher_id}/remove", remove_publisher)
    router.add_post("/{name}/tokens/revoke-long-lived", revoke_long_lived)
    router.add_post("/{name}/tokens/{token_id}/revoke", revoke_token)
    router.add_get("/{name}/collaborators/{username}/remove", remove_page)
    router.add_post("/{name}/collaborators/{username}/remove", remove)
    router.add_post("/{name}/releases/{version}/{action:yank|unyank}", yank)
    router.add_get("/{name}/releases/{version}/delete", delete_release_page)
    router.add_post("/{name}/releases/{version}/delete", delete_release)
    router.add_get("/{name}/delete", delete_project_page)
    router.add_post("/{name}/delete", delete_project)
    router.add_get("/{name}/history", history, name="project_history")
