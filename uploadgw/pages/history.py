"""Security history: the signed-in user's own log (auditsvc), newest first, with paging.

(A project's log is on the project pages, for Owners only.)
"""

from __future__ import annotations

from aiohttp import web

from uploadgw.pages.common import PAGES


async def user_history(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    current = await pages.require(request)
    page = await pages.history.user_log(current.user.id, request.query.get("page", ""))
    return await pages.render(request, "history.html", page=page, title="Security history", project=None)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/history", user_history, name="history")
