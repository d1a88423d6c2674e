"""The account pages' shared machinery: who is visiting, forms, rendering, redirects, the middleware.

Handlers stay small: read the form (`read_form`), call a page service, and answer with
`pages.render(...)` or `pages.redirect(...)`. Every failure a service raises is a `PageError`;
the middleware turns those the handler does not show on its own form into an HTML page with the
right status (a login redirect for an ended session, the password prompt for re-authentication).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.typedefs import Handler, Middleware
from multidict import MultiDict, MultiDictProxy

from gatehouse.infra.clock import Clock
from uploadgw.http.upload import origin_of
from uploadgw.pages import filters
from uploadgw.pages.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    CookiePolicy,
    Csrf,
    Signer,
    add_security_headers,
    decode_notice,
    encode_notice,
    same_origin,
    visit,
)
from uploadgw.pages.services.accounts import AccountPages
from uploadgw.pages.services.errors import PageError, ReauthRequired, SessionExpired
from uploadgw.pages.services.history import HistoryPages
from uploadgw.pages.services.projects import ProjectPages
from uploadgw.pages.services.publishing import PublishingPages
from uploadgw.pages.services.tokens import TokenPages
from uploadgw.pages.services.twofactor import TwoFactorPages
from uploadgw.pages.services.views import CurrentSession

log = logging.getLogger(__name__)
MAX_FIELD = 8192


def safe_next(value: str | None, default: str = "/account/") -> str:
    """A local path to return to after a login; anything else (other sites, odd forms) is ignored."""
    value = (value or "").strip()
    if (not value.startswith("/") or value.startswith(("//", "/\\")) or len(value) > 500
            or any(ord(ch) < 32 or ch == "\\" for ch in value)):
        return default
    return value


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """The POSTed form (cached); unreadable bodies and text that is not valid Unicode are a 400."""
    cached = visit(request).form
    if cached is not None:
        return cached
    try:
        raw = await request.post()
    except web.HTTPException:
        raise
    except (ValueError, UnicodeError, AssertionError, BadHttpMessage, LookupError, RuntimeError, ConnectionError,
            ClientPayloadError):
        # aiohttp's refusals of a form: an unknown charset is a LookupError, an unknown
        # Content-Transfer-Encoding a RuntimeError, bad multipart part headers a BadHttpMessage;
        # a body that ended before its Content-Length a ConnectionError.
        raise PageError("The form could not be read. Reload the page and try again.") from None
    clean: MultiDict[str] = MultiDict()
    for key, value in raw.items():
        if not isinstance(value, str):
            continue
        try:
            key.encode("utf-8")
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PageError("The form contains characters that are not valid text.") from None
        clean.add(key, value[:MAX_FIELD])
    form = MultiDictProxy(clean)
    visit(request).form = form
    return form


def path_param(request: web.Request, name: str, limit: int = 200) -> str:
    value = request.match_info.get(name, "")
    if len(value) > limit or any(ord(ch) < 32 for ch in value):
        raise PageError("There is no such page.", status=404)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PageError("There is no such page.", status=404) from None
    return value


class Form:
    """What the user typed (never passwords: templates do not echo them) and the errors per field."""

    def __init__(self, values: Mapping[str, object] | None = None, errors: dict[str, str] | None = None) -> None:
        self.values = {k: v for k, v in (values or {}).items() if isinstance(v, str)}
        self.errors = dict(errors or {})
        self.retry_after: int | None = None  # from a refusal that says when to try again

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def error(self, name: str) -> str:
        return self.errors.get(name, "")

    @property
    def form_error(self) -> str:
        return self.errors.get("", "")

    def fail(self, exc: PageError) -> "Form":
        self.errors[exc.field or ""] = exc.message
        self.retry_after = exc.retry_after or self.retry_after
        return self

    def require(self, name: str, message: str) -> None:
        if not self.get(name).strip():
            self.errors.setdefault(name, message)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclasses.dataclass
class Pages:
    """Everything a page handler needs, built once when the gateway starts."""

    public_url: str
    clock: Clock
    signer: Signer
    cookies: CookiePolicy
    templates: jinja2.Environment
    accounts: AccountPages
    twofactor: TwoFactorPages
    tokens: TokenPages
    projects: ProjectPages
    history: HistoryPages
    publishing: PublishingPages

    def __post_init__(self) -> None:
        self.csrf = Csrf(self.signer, self.cookies)

    # -- the visitor -----------------------------------------------------------------------------
    def session_token(self, request: web.Request) -> str:
        return request.cookies.get(self.cookies.names.session, "")[:512]

    async def current(self, request: web.Request) -> CurrentSession | None:
        state = visit(request)
        if state.resolved:
            return state.current
        token = self.session_token(request)
        current = None
        if token:
            try:
                current = await self.accounts.session(token, origin_of(request))
            except SessionExpired:
                state.clear_session = True
        state.current, state.resolved = current, True
        return current

    async def require(self, request: web.Request) -> CurrentSession:
        current = await self.current(request)
        if current is None:
            raise SessionExpired("Log in to see this page.")
        return current

    async def require_recent(self, request: web.Request, back: str) -> CurrentSession:
        """A signed-in user whose password was entered within the re-authentication window
        (authsvc's window, as ValidateSession reports it: the gateway keeps no clock of its own)."""
        current = await self.require(request)
        if current.reauth_required:
            raise ReauthRequired().back_to(back)
        return current

    async def require_admin(self, request: web.Request) -> CurrentSession:
        """A signed-in administrator (auditsvc checks again with authsvc before showing the full log)."""
        current = await self.require(request)
        if not current.user.is_admin:
            raise PageError("Only administrators can see the full log.", status=403)
        return current

    # -- answers -----------------------------------------------------------------------------------
    async def render(self, request: web.Request, template: str, *, status: int = 200,
                     headers: dict[str, str] | None = None, **context: Any) -> web.Response:
        try:
            await self.current(request)
        except PageError:
            visit(request).resolved = True
        notice = None
        raw = request.cookies.get(self.cookies.names.notice)
        if raw:
            notice = decode_notice(self.signer, raw)
            visit(request).notice_taken = True
        form = context.setdefault("form", Form())
        if status == 429 and getattr(form, "retry_after", None) and "Retry-After" not in (headers or {}):
            headers = {**(headers or {}), "Retry-After": str(form.retry_after)}  # a refused form: when to retry
        body = self.templates.get_template(template).render(
            current=visit(request).current, csrf_token=self.csrf.token(request, self._bound_session(request)),
            csrf_field=CSRF_FIELD,
            notice=notice, public_url=self.public_url.rstrip("/"), path=request.path, **context)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8", headers=headers)

    def _bound_session(self, request: web.Request) -> str:
        """The session the next POST will carry: none when this answer clears an ended one."""
        return "" if visit(request).clear_session else self.session_token(request)

    def redirect(self, location: str, *, notice: str = "", kind: str = "success") -> web.Response:
        response = web.Response(status=303, headers={"Location": location})
        if notice:
            self.cookies.set(response, self.cookies.names.notice, encode_notice(self.signer, notice, kind), max_age=120)
        return response

    def set_session(self, response: web.StreamResponse, session_token: str) -> None:
        """A new session (a login): the browser's cookie is replaced, never reused."""
        self.cookies.set(response, self.cookies.names.session, session_token)

    async def error_page(self, request: web.Request, status: int, message: str, *,
                         retry_after: int | None = None) -> web.Response:
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        titles = {400: "The request could not be used", 401: "Please log in", 403: "Not allowed",
                  404: "Page not found", 405: "Not allowed", 409: "Not possible right now",
                  413: "Too large", 429: "Too many attempts", 503: "Temporarily unavailable"}
        title = titles.get(status, "Something went wrong" if status >= 500 else "The request could not be used")
        try:
            return await self.render(request, "error.html", status=status, headers=headers, title=title,
                                     message=message)
        except Exception:  # noqa: BLE001 - the error page itself must not fail
            log.exception("error page failed")
            return web.Response(status=status, text=message, headers=headers)

    def to_login(self, request: web.Request, exc: SessionExpired) -> web.Response:
        back = request.path_qs if request.method == "GET" else "/account/"
        response = self.redirect(f"/account/login?next={quote(safe_next(back), safe='/')}", notice=exc.message,
                                 kind="info")
        self.cookies.clear(response, self.cookies.names.session)
        return response

    def to_reauth(self, request: web.Request, exc: ReauthRequired) -> web.Response:
        back = exc.back or (request.path_qs if request.method == "GET" else "/account/")
        return self.redirect(f"/account/reauth?next={quote(safe_next(back), safe='/')}", notice=exc.message,
                             kind="info")

    # -- the checks every request goes through -----------------------------------------------------
    async def check_csrf(self, request: web.Request) -> None:
        if not same_origin(request, self.public_url):
            raise PageError("This form was sent from another site, so it was refused.", status=403)
        presented = request.headers.get(CSRF_HEADER) or (await read_form(request)).get(CSRF_FIELD) or ""
        if not self.csrf.valid(request, presented):
            if not request.cookies.get(self.cookies.names.csrf):
                raise PageError("This form needs cookies. Allow cookies for this site, reload the page and send "
                                "the form again.", status=403)
            raise PageError("This form has expired or was changed. Reload the page and send it again.", status=403)

    def finish(self, request: web.Request, response: web.StreamResponse, *, cacheable: bool) -> None:
        self.csrf.finish(request, response)
        names = self.cookies.names
        state = visit(request)
        if state.clear_session and names.session not in response.cookies:
            self.cookies.clear(response, names.session)
        if state.notice_taken and names.notice not in response.cookies:
            self.cookies.clear(response, names.notice)
        add_security_headers(response, secure=self.cookies.secure, cacheable=cacheable)


PAGES = web.AppKey("pages", Pages)


def make_middleware(*, static: bool = False) -> Middleware:
    @web.middleware
    async def pages_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        pages = request.config_dict[PAGES]
        try:
            if request.method == "POST":
                await pages.check_csrf(request)
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                response = web.Response(status=exc.status, headers={"Location": exc.headers.get("Location", "/")})
            else:
                response = await pages.error_page(request, exc.status, _http_message(exc.status))
        except SessionExpired as exc:
            response = pages.to_login(request, exc)
        except ReauthRequired as exc:
            response = pages.to_reauth(request, exc)
        except PageError as exc:
            response = await pages.error_page(request, exc.status, exc.message, retry_after=exc.retry_after)
        except Exception:  # noqa: BLE001 - a bug: logged, and a page instead of a bare 500
            log.exception("page failed", extra={"path": request.path})
            response = await pages.error_page(request, 500, "Something went wrong on our side. Try again later.")
        pages.finish(request, response, cacheable=static and response.status == 200)
        return response

    return pages_middleware


def _http_message(status: int) -> str:
    return {404: "There is no such page.", 405: "This page does not accept that kind of request.",
            413: "What you sent is too large."}.get(status, "The request could not be used.")


def build_templates(directory: str | os.PathLike[str]) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(directory)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    filters.install(env)
    return env
