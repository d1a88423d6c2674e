"""`gatehouse audit …`: read the audit logs with the operator credential.

    gatehouse audit user USERNAME_OR_ID      the user's own log (what the user sees)
    gatehouse audit project NAME_OR_ID       the project's log (what its Owners see)
    gatehouse audit all [filters]            the full log (operators only)

`user` and `project` show exactly the logs of AuditService (a project log never lists the other
projects of a token's scope); `all` is AuditAdminService's full log, details unredacted. A user or
project NAME is resolved to its id by authsvc (AdminService.GetUser / ProjectService.GetProject,
operator credential), so renames do not matter; an id (a UUID) works too. A deleted project
has no name any more: `audit all --project NAME` finds its events, and its id, by the name recorded
at the time. The filters of `all` match names as recorded at the time of each event.

Output: one line per event (UTC time, tag, actor, user, project, IP, details, user agent) with
control and line-separator characters removed, or with `--json` one JSON object per line.
`--follow` keeps the call open and prints events as they are stored, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import re
import signal
import sys
import unicodedata
import uuid

import grpc

from gatehouse.audit.v1 import audit_pb2, audit_pb2_grpc
from gatehouse.auth.v1 import admin_pb2, admin_pb2_grpc, projects_pb2, projects_pb2_grpc
from gatehouse.cli.output import fail, rpc_error, to_dict
from gatehouse.cli.settings import DATA_DIR_HELP, CliSettings
from gatehouse.events.v1 import event_pb2
from gatehouse.infra.grpcserver import open_channel

DEFAULT_LIMIT = 100
PAGE_SIZE = 500
# `--follow` calls stay open until the operator stops them; open_channel's default deadline is 5 s.
FOLLOW_DEADLINE = 365 * 24 * 3600.0
_AGO = re.compile(r"^(\d+)([smhdw])$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_KINDS = {event_pb2.Actor.OPERATOR: "operator", event_pb2.Actor.SYSTEM: "system",
          event_pb2.Actor.ANONYMOUS: "anonymous"}


class UsageError(Exception):
    """Bad input found before or between calls: exit code 2 (or `code`) with this message."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def add_parser(sub) -> None:
    audit = sub.add_parser("audit", help="read the audit logs (operator)",
                           description="\n\n".join(__doc__.split("\n\n")[:3]),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    logs = audit.add_subparsers(dest="log", required=True, metavar="LOG")
    p = logs.add_parser("user", help="a user's log: events about the account or performed by it")
    p.add_argument("user", metavar="USERNAME_OR_ID")
    _common(p)
    p = logs.add_parser("project", help="a project's log, as its Owners see it")
    p.add_argument("project", metavar="NAME_OR_ID")
    _common(p)
    p = logs.add_parser("all", help="the full log, with filters (all given filters must match)")
    p.add_argument("--tag", default="", help="exact tag, e.g. account:login:failure")
    p.add_argument("--tag-prefix", default="", help="tag prefix, e.g. account:two_factor:")
    p.add_argument("--actor", default="", help="who acted: username (as at the time) or user id")
    p.add_argument("--user", default="", help="whose account: username (as at the time) or user id")
    p.add_argument("--project", default="", help="project name (as at the time) or project id")
    p.add_argument("--ip", default="", help="client IP address (also matches IPs stored hashed)")
    _common(p)
    audit.set_defaults(handler=_handle)


def _common(p) -> None:
    p.add_argument("--since", help="from this time: ISO 8601 (UTC unless it says otherwise) or an age "
                                   "such as 90m, 12h, 30d (default: the service's window, 14 days)")
    p.add_argument("--until", help="before this time (same forms as --since)")
    p.add_argument("--limit", type=_count, default=None,
                   help=f"at most this many events (default {DEFAULT_LIMIT}; 0: all; with --follow: no limit)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    p.add_argument("--json", action="store_true", help="one JSON object per event, one per line (JSON Lines)")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return int(text)


# -- parsing and printing ----------------------------------------------------------------------


def parse_time(text: str, now: dt.datetime) -> dt.datetime:
    """An ISO 8601 time (naive means UTC) or an age before `now` (`30m`, `12h`, `7d`, `2w`)."""
    text = text.strip()
    match = _AGO.match(text)
    if match:
        return now - dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"not a time: {text!r} (use e.g. 2026-05-01, 2026-05-01T12:00:00Z, 90m, 12h, 30d)") \
            from None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def is_id(text: str) -> bool:
    """Whether `text` is written as Gatehouse writes ids (a UUID, 8-4-4-4-12 hex digits)."""
    return bool(_UUID.match(text.strip()))


def clean(value: str) -> str:
    """The text without control, format and line/paragraph separator characters: one line, no tricks."""
    if value.isprintable():
        return value
    return "".join(ch for ch in value if unicodedata.category(ch) not in _DROPPED)


def _quote(value: str) -> str:
    value = clean(value)
    if value and not any(ch.isspace() or ch in '"=\\' for ch in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _actor(actor) -> str:
    kind = _KINDS.get(actor.kind)
    if kind is None:
        return _quote(actor.username or actor.user_id or "-")
    if kind == "operator" and actor.username and actor.username != "operator":
        return f"operator:{_quote(actor.username)}"
    return kind


def format_event(event: audit_pb2.AuditEvent) -> str:
    """One line: UTC time, tag, actor, user, project, IP, details, user agent."""
    when = event.occurred_at.ToDatetime(tzinfo=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    parts = [when, _quote(event.tag or "-"), f"by={_actor(event.actor)}"]
    if event.subject_user_id or event.subject_username:
        parts.append(f"user={_quote(event.subject_username or event.subject_user_id)}")
    if event.project_id or event.project_name:
        parts.append(f"project={_quote(event.project_name or event.project_id)}")
    if event.ip_address:
        parts.append(f"ip=hash:{clean(event.ip_address)[:16]}" if event.ip_hashed else f"ip={_quote(event.ip_address)}")
    for key, value in sorted(event.details.items()):
        key = "".join(ch if ch.isalnum() or ch in "._:-" else "_" for ch in clean(key)) or "_"
        parts.append(f"{key}={_quote(value)}")
    if event.user_agent:
        parts.append(f"ua={_quote(event.user_agent)}")
    return "  ".join(parts)


def _print_event(args, event) -> None:
    if args.json:
        print(json.dumps(to_dict(event), sort_keys=True), flush=True)
    else:
        print(format_event(event), flush=True)


# -- running -----------------------------------------------------------------------------------


def _handle(args) -> int:
    settings = CliSettings.load(args.data_dir)
    if not settings.audit_operator_key:
        return fail(args, settings.no_credential("AUDITSVC_OPERATOR_KEY"), 2)
    try:
        return asyncio.run(_main(args, settings))
    except UsageError as exc:
        return fail(args, str(exc), exc.code)
    except grpc.aio.AioRpcError as exc:
        return rpc_error(args, exc)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 0


async def _main(args, settings: CliSettings) -> int:
    """Run the command; SIGINT/SIGTERM end a `--follow` (or a long listing) cleanly with code 0."""
    task = asyncio.current_task()
    if task is None:  # asyncio.run always runs this in a task
        raise RuntimeError("the audit command must run in an asyncio task")
    loop = asyncio.get_running_loop()
    stopping = []

    def stop() -> None:
        stopping.append(True)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        return await _run(args, settings)
    except asyncio.CancelledError:
        if stopping:
            return 0
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _run(args, settings: CliSettings) -> int:
    now = dt.datetime.now(dt.timezone.utc)
    since = parse_time(args.since, now) if args.since else None
    until = parse_time(args.until, now) if args.until else None
    if args.follow and until is not None:
        raise UsageError("--until cannot be used with --follow")
    if since and until and until <= since:
        raise UsageError("--until must be after --since")
    limit = args.limit if args.limit is not None else (0 if args.follow else DEFAULT_LIMIT)
    subject = ""
    if args.log == "user":
        subject = await _resolve(settings, args.user, "user", _user_by_name)
    elif args.log == "project":
        subject = await _resolve(settings, args.project, "project", _project_by_name)
    async with open_channel(settings.auditsvc_target, settings.audit_operator_key,
                            default_timeout=settings.timeout, tls=settings.tls) as channel:
        if args.follow:
            stub = audit_pb2_grpc.AuditAdminServiceStub(channel)
            shown = await _follow(args, stub, _follow_filters(args, subject), since, limit)
        else:
            call, make = _lister(channel, args, subject)
            shown = await _list(args, call, make, since, until, limit)
    if not shown and not args.json and not args.follow:
        print("no events" + ("" if args.since else " in the default window (see --since)"), file=sys.stderr)
    return 0


def _lister(channel, args, subject: str):
    """The list RPC of the chosen log, and a request builder that takes the paging fields."""
    if args.log == "user":
        return (audit_pb2_grpc.AuditServiceStub(channel).ListUserEvents,
                functools.partial(audit_pb2.ListUserEventsRequest, user_id=subject))
    if args.log == "project":
        return (audit_pb2_grpc.AuditServiceStub(channel).ListProjectEvents,
                functools.partial(audit_pb2.ListProjectEventsRequest, project_id=subject))
    return (audit_pb2_grpc.AuditAdminServiceStub(channel).ListEvents,
            functools.partial(audit_pb2.AdminListEventsRequest, filter=_filter(args)))


def _follow_filters(args, subject: str) -> list[audit_pb2.EventFilter]:
    if args.log == "user":
        # A user's log is "subject or actor"; a filter matches all its fields, so two streams, merged.
        return [audit_pb2.EventFilter(subject_user_id=subject), audit_pb2.EventFilter(actor_user_id=subject)]
    if args.log == "project":
        return [audit_pb2.EventFilter(project_id=subject)]
    return [_filter(args)]


def _by_name_or_id(text: str, name_field: str, id_field: str) -> dict:
    text = text.strip()
    return {id_field: str(uuid.UUID(text))} if is_id(text) else {name_field: text}


def _filter(args) -> audit_pb2.EventFilter:
    fields = {"tag": args.tag.strip(), "tag_prefix": args.tag_prefix.strip(), "ip_address": args.ip.strip()}
    for value, name_field, id_field in ((args.actor, "actor_username", "actor_user_id"),
                                        (args.user, "subject_username", "subject_user_id"),
                                        (args.project, "project_name", "project_id")):
        if value.strip():
            fields.update(_by_name_or_id(value, name_field, id_field))
    return audit_pb2.EventFilter(**{k: v for k, v in fields.items() if v})


def _set_window(request, since, until) -> None:
    for field, value in (("since", since), ("until", until)):
        if value is not None:
            getattr(request, field).FromDatetime(value.astimezone(dt.timezone.utc).replace(tzinfo=None))


async def _list(args, call, make, since, until, limit: int) -> int:
    """Print the log newest first, page by page, up to `limit` events (0: all)."""
    shown, token = 0, ""
    while True:
        size = min(PAGE_SIZE, limit - shown) if limit else PAGE_SIZE
        request = make(page_size=size, page_token=token)
        _set_window(request, since, until)
        reply = await call(request)
        for event in reply.events:
            _print_event(args, event)
            shown += 1
        token = reply.next_page_token
        if not token or (limit and shown >= limit):
            return shown


async def _follow(args, stub, filters, since, limit: int) -> int:
    """Print events from every FollowEvents stream (deduplicated by event id) until stopped."""
    queue: asyncio.Queue = asyncio.Queue()
    done = object()
    calls = []
    for flt in filters:
        request = audit_pb2.FollowEventsRequest(filter=flt)
        if since is not None:
            request.since.FromDatetime(since.astimezone(dt.timezone.utc).replace(tzinfo=None))
        calls.append(stub.FollowEvents(request, timeout=FOLLOW_DEADLINE))

    async def pump(call) -> None:
        try:
            async for event in call:
                await queue.put(event)
            await queue.put(done)
        except grpc.aio.AioRpcError as exc:
            await queue.put(exc)

    pumps = [asyncio.create_task(pump(call)) for call in calls]
    seen: dict[str, None] = {}
    open_streams, shown = len(pumps), 0
    try:
        while open_streams:
            item = await queue.get()
            if item is done:
                open_streams -= 1
                continue
            if isinstance(item, grpc.aio.AioRpcError):
                raise item
            if item.event_id in seen:
                continue
            seen[item.event_id] = None
            if len(seen) > 10_000:
                del seen[next(iter(seen))]
            _print_event(args, item)
            shown += 1
            if limit and shown >= limit:
                break
    finally:
        for call in calls:
            call.cancel()
        for task in pumps:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pumps, return_exceptions=True)
    return shown


async def _resolve(settings: CliSettings, text: str, what: str, lookup) -> str:
    """The id of the user or project named `text`, asked of authsvc; `text` itself when it is an id
    (a name that looks like an id is looked up first, so such names still work)."""
    text = text.strip()
    if not text:
        raise UsageError(f"give a {what} name or id")
    if not settings.operator_key:
        if is_id(text):
            return str(uuid.UUID(text))
        raise UsageError(f"to find a {what} by name set AUTHSVC_OPERATOR_KEY (or pass the {what}'s id)")
    async with open_channel(settings.authsvc_target, settings.operator_key,
                            default_timeout=settings.timeout, tls=settings.tls) as channel:
        try:
            return await lookup(channel, text)
        except grpc.aio.AioRpcError as exc:
            # An id needs no lookup: use it when it names no one, or when authsvc cannot answer.
            if is_id(text) and exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                                              grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return str(uuid.UUID(text))
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
    if what == "project":
        raise UsageError(f"no project named {clean(text)!r} exists now; for a deleted project use "
                         "`gatehouse audit all --project NAME` (or pass its id)", 3)
    raise UsageError(f"no user named {clean(text)!r}", 3)


async def _user_by_name(channel, name: str) -> str:
    stub = admin_pb2_grpc.AdminServiceStub(channel)
    return (await stub.GetUser(admin_pb2.AdminGetUserRequest(username=name))).user.id


async def _project_by_name(channel, name: str) -> str:
    stub = projects_pb2_grpc.ProjectServiceStub(channel)
    return (await stub.GetProject(projects_pb2.GetProjectRequest(name=name))).project.id
