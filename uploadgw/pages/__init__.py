"""The account pages, served by the gateway: `setup_pages(app, ...)` mounts them on the gateway app.

Pages live in sub-applications (`/account`, `/projects`, `/static`) so that their middleware
(sessions, CSRF, security headers, HTML error pages) applies to them and never to the upload API
or the simple index. Their gRPC channels open when the gateway starts, after its own resources.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler

from gatehouse.infra.clock import Clock
from gatehouse.infra.grpcserver import open_channel
from uploadgw.pages import (account, admin, api, auth, history, passkeys, passwords, project_policy, projects,
                           register, tokens, twofactor)
from uploadgw.pages.security import CookiePolicy, Signer, add_security_headers, derive_key
from uploadgw.pages.services.accounts import AccountPages
from uploadgw.pages.services.history import HistoryPages
from uploadgw.pages.services.projects import ProjectPages
from uploadgw.pages.services.publishing import PublishingPages
from uploadgw.pages.services.tokens import TokenPages
from uploadgw.pages.services.twofactor import TwoFactorPages
from uploadgw.pages.common import PAGES, Pages, build_templates, make_middleware
from uploadgw.settings import Settings

if TYPE_CHECKING:
    from uploadgw.app import Gateway

log = logging.getLogger(__name__)
HERE = pathlib.Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

__all__ = ["PAGES", "Pages", "setup_pages"]


@web.middleware
async def _unusable_file_names(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A static file name the file system refuses (longer than it allows: ENAMETOOLONG) names no
    file: a 404, where aiohttp's static handler let the OSError through (a 500)."""
    try:
        return await handler(request)
    except ConnectionError:
        raise
    except OSError:
        raise web.HTTPNotFound() from None


def setup_pages(app: web.Application, *, settings: Settings, clock: Clock, gateway_key: web.AppKey[Gateway]) -> None:
    """Mount the pages on the gateway app (call after the gateway's own cleanup context is added)."""
    key = derive_key(settings.session_key)
    cookies = CookiePolicy.for_public_url(settings.public_url)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        gateway = app[gateway_key]
        timeout = settings.auth_timeout
        auth_channel = open_channel(settings.authsvc_target, settings.authsvc_key, default_timeout=timeout,
                                    tls=settings.tls)
        audit_channel = (open_channel(settings.auditsvc_target, settings.auditsvc_key, default_timeout=timeout,
                                      tls=settings.tls)
                         if settings.auditsvc_target and settings.auditsvc_key else None)
        if audit_channel is None:
            log.warning("UPLOADGW_AUDITSVC_TARGET/UPLOADGW_AUDITSVC_KEY not set: the security history is off")
        app[PAGES] = Pages(
            public_url=settings.public_url, clock=clock, signer=Signer(key), cookies=cookies,
            templates=build_templates(TEMPLATES),
            accounts=AccountPages(auth_channel, timeout=timeout),
            twofactor=TwoFactorPages(auth_channel, timeout=timeout),
            tokens=TokenPages(auth_channel, timeout=timeout),
            projects=ProjectPages(auth_channel, timeout=timeout, releases=gateway.releases, db=gateway.db),
            history=HistoryPages(audit_channel, timeout=timeout),
            publishing=PublishingPages(auth_channel, timeout=timeout),
        )
        try:
            yield
        finally:
            await auth_channel.close()
            if audit_channel is not None:
                await audit_channel.close()

    app.cleanup_ctx.append(resources)

    async def home(request: web.Request) -> web.Response:
        response = web.Response(status=303, headers={"Location": "/account/"})
        add_security_headers(response, secure=cookies.secure)
        return response

    app.router.add_get("/", home, name="pages_home")

    account_app = web.Application(middlewares=[make_middleware()])
    for module in (auth, passkeys, register, passwords, account, twofactor, tokens, history, admin):
        module.add_routes(account_app.router)
    app.add_subapp("/account", account_app)

    projects_app = web.Application(middlewares=[make_middleware()])
    projects.add_routes(projects_app.router)
    project_policy.add_routes(projects_app.router)
    app.add_subapp("/projects", projects_app)

    # The JSON API for a logged-in user's tooling (same session and re-authentication, JSON errors).
    app.add_subapp("/api", api.build_api_app())

    static_app = web.Application(middlewares=[make_middleware(static=True), _unusable_file_names])
    static_app.router.add_static("/", STATIC, name="static", append_version=False)
    app.add_subapp("/static", static_app)
