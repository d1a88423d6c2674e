"""A JSON API for a logged-in user's tooling: create a (project-scoped) API token (PyPI #6396).

`POST /api/tokens` with the account pages' session cookie and a JSON body; the answer is JSON.
It sits behind what the token page sits behind: a session, and a password entered within the
re-authentication window (the body may carry `"password"` to confirm it on the spot, as the reauth
page does). Cross-site requests are refused without a CSRF token: the body must be sent as
`application/json`, which an HTML form of another site cannot send (and no CORS preflight is ever
granted), and an `Origin` header, when present, must be this site's. README.md documents it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from uploadgw.http.upload import origin_of
from uploadgw.pages import tokens as token_pages
from uploadgw.pages.common import PAGES
from uploadgw.pages.security import add_security_headers, same_origin
from uploadgw.pages.services.errors import PageError, ReauthRequired, SessionExpired
from uploadgw.pages.services.views import NewToken

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024


def _answer(status: int, body: dict[str, Any], *, secure: bool) -> web.Response:
    response = web.json_response(body, status=status)
    add_security_headers(response, secure=secure)  # no-store: the token is in the body
    return response


def _refusal(status: int, error: str, message: str, *, secure: bool, field: str = "") -> web.Response:
    return _answer(status, {"error": error, "message": message, **({"field": field} if field else {})},
                   secure=secure)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise PageError("Send the request body as JSON (Content-Type: application/json).", status=415)
    if (request.content_length or 0) > MAX_BODY:
        raise PageError(f"The request body is too large: at most {MAX_BODY} bytes.", status=413)
    raw = b""
    while chunk := await request.content.read(MAX_BODY + 1 - len(raw)):  # read() may return less than asked
        raw += chunk
        if len(raw) > MAX_BODY:
            raise PageError(f"The request body is too large: at most {MAX_BODY} bytes.", status=413)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise PageError("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise PageError("The request body must be a JSON object.")
    return data


def _text(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise PageError(f"'{name}' must be a string.", field=name)
    return value.strip()[:limit]


def _texts(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 100:
        raise PageError(f"'{name}' must be a list of at most 100 strings.", field=name)
    return [v.strip()[:200] for v in value if v.strip()]


async def create_token(request: web.Request) -> web.Response:
    """Body: description (required), projects (list; empty: the whole account), expires (YYYY-MM-DD,
    optional), networks (list, optional), release_version (optional), password (optional)."""
    pages = request.config_dict[PAGES]
    data = await _body(request)
    current = await pages.require(request)
    session = pages.session_token(request)
    if current.reauth_required:
        password = _text(data, "password", 4096)
        if not password:
            raise ReauthRequired("Confirm your password: send it as \"password\" with this request.")
        await pages.accounts.reauthenticate(session, password, origin_of(request))
    projects = _texts(data, "projects")
    created: NewToken = await pages.tokens.create(
        session, _text(data, "description", 100), all_projects=not projects, project_names=projects,
        expires_at=token_pages.parse_expiry(_text(data, "expires", 20), pages.clock.now().date()),
        origin=origin_of(request), networks=_texts(data, "networks"),
        release_version=_text(data, "release_version", 100))
    info = created.info
    return _answer(201, {
        "token": created.secret, "id": info.id, "description": info.description,
        "projects": [] if info.all_projects else info.project_names, "all_projects": info.all_projects,
        "expires_at": info.expires_at.isoformat() if info.expires_at else None,
        "networks": info.networks, "release_version": info.release_version,
    }, secure=pages.cookies.secure)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as JSON `{"error", "message", "field"?}` with its HTTP status; never a page."""
    pages = request.config_dict[PAGES]
    secure = pages.cookies.secure
    if request.method == "POST" and not same_origin(request, pages.public_url):
        return _refusal(403, "cross_origin", "This request was sent from another site, so it was refused.",
                        secure=secure)
    try:
        return await handler(request)
    except SessionExpired as exc:
        return _refusal(401, "session_required", exc.message, secure=secure)
    except ReauthRequired as exc:
        return _refusal(403, "reauth_required", exc.message, secure=secure)
    except PageError as exc:
        response = _refusal(exc.status, exc.reason or "invalid_request", exc.message, secure=secure, field=exc.field)
        if exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        return _refusal(exc.status, "http", exc.reason, secure=secure)
    except Exception:  # noqa: BLE001 - a bug: logged, and a JSON answer instead of a bare 500
        log.exception("api request failed", extra={"path": request.path})
        return _refusal(500, "internal", "Something went wrong on our side. Try again later.", secure=secure)


def build_api_app() -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY)
    app.router.add_post("/tokens", create_token)
    return app
