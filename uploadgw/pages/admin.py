"""The full audit log for administrators (a flag operators set with the CLI), with filters and paging.

The filters are a GET form, so a filtered view can be bookmarked and paged; nothing secret goes in
the URL. The gateway shows the page only to admins, and auditsvc checks again with authsvc (it is
given the session, not a user id) before it answers.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from urllib.parse import urlencode

from aiohttp import web

from uploadgw.pages.common import PAGES, Form
from uploadgw.pages.services.errors import PageError
from uploadgw.pages.services.views import EventPage, LogQuery

LOG = "/account/admin/log"
TEXT_FIELDS = ("tag", "actor", "user", "project", "ip")
DATE_FIELDS = ("since", "until")
MAX_TEXT = 200
FIRST_YEAR, LAST_YEAR = 1970, 9998


def _date(form: Form, name: str) -> dt.datetime | None:
    raw = form.get(name)
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        form.errors[name] = "Enter a date as YYYY-MM-DD, for example 2026-05-01."
        return None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        form.errors[name] = f"Enter a date between the years {FIRST_YEAR} and {LAST_YEAR}."
        return None
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)


def read_query(query: Mapping[str, str]) -> tuple[Form, LogQuery]:
    """The filters from the query string, checked: the form (with errors) and what to ask for."""
    form = Form({name: " ".join(query.get(name, "").split()) for name in TEXT_FIELDS + DATE_FIELDS})
    for name in TEXT_FIELDS + DATE_FIELDS:
        if len(form.get(name)) > MAX_TEXT or any(ord(ch) < 32 for ch in form.get(name)):
            form.errors[name] = f"Enter at most {MAX_TEXT} characters."
    if form.get("ip") and "ip" not in form.errors:
        try:
            ipaddress.ip_address(form.get("ip"))
        except ValueError:
            form.errors["ip"] = "Enter an IP address such as 192.0.2.1 or 2001:db8::1."
    since, until = _date(form, "since"), _date(form, "until")
    if until is not None:
        until += dt.timedelta(days=1)  # the whole "until" day is included
    if since is not None and until is not None and until <= since:
        form.errors["until"] = "The end date cannot be before the start date."
    return form, LogQuery(tag=form.get("tag"), actor=form.get("actor"), user=form.get("user"),
                          project=form.get("project"), ip_address=form.get("ip"), since=since, until=until)


def older_link(form: Form, next_page: str) -> str:
    kept = [(name, form.get(name)) for name in TEXT_FIELDS + DATE_FIELDS if form.get(name)]
    return f"{LOG}?{urlencode(kept + [('page', next_page)])}"


async def full_log(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require_admin(request)
    form, query = read_query(request.query)
    page, status = EventPage(events=[], next_page=""), 200
    if form.ok:
        try:
            page = await pages.history.full_log(pages.session_token(request), query,
                                                request.query.get("page", ""))
        except PageError as exc:
            if exc.status not in (400, 429):
                raise
            form.fail(exc)
            status = exc.status
    else:
        status = 400
    filtered = any(form.get(name) for name in TEXT_FIELDS + DATE_FIELDS)
    return await pages.render(request, "admin_log.html", status=status, form=form, page=page,
                              filtered=filtered, title="Full log",
                              older=older_link(form, page.next_page) if page.next_page else "")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/admin/log", full_log, name="admin_log")
