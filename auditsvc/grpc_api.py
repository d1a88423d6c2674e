"""AuditService and AuditAdminService over gRPC: protobuf <-> AuditLog calls, nothing more.

The one check done here is ListAllEvents': the admin session is resolved through authsvc
(`AdminSessions`) before the same query as the operators' ListEvents runs.
"""

from __future__ import annotations

import datetime as dt
import logging

from google.protobuf.timestamp_pb2 import Timestamp

from auditsvc.admins import AdminSessions
from auditsvc.errors import PermissionDenied
from auditsvc.store.records import EventFilter, LogEntry, Page
from auditsvc.store.service import AuditLog
from gatehouse.audit.v1 import audit_pb2, audit_pb2_grpc
from gatehouse.events.v1 import event_pb2
from gatehouse.infra.clock import as_utc
from gatehouse.infra.grpcserver import CallerRole, current_caller_role

logger = logging.getLogger(__name__)
_KINDS = {"user": event_pb2.Actor.USER, "operator": event_pb2.Actor.OPERATOR,
          "system": event_pb2.Actor.SYSTEM, "anonymous": event_pb2.Actor.ANONYMOUS,
          "publisher": event_pb2.Actor.PUBLISHER}


def _ts(value: dt.datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(as_utc(value).replace(tzinfo=None))
    return out


def _from_ts(message, field: str) -> dt.datetime | None:
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=dt.timezone.utc)


def event_pb(entry: LogEntry) -> audit_pb2.AuditEvent:
    return audit_pb2.AuditEvent(
        event_id=entry.event_id, occurred_at=_ts(entry.occurred_at), tag=entry.tag,
        actor=event_pb2.Actor(kind=_KINDS.get(entry.actor_kind, event_pb2.Actor.KIND_UNSPECIFIED),
                              user_id=entry.actor_user_id, username=entry.actor_username),
        subject_user_id=entry.subject_user_id, subject_username=entry.subject_username,
        project_id=entry.project_id, project_name=entry.project_name, ip_address=entry.ip,
        ip_hashed=entry.ip_hashed, user_agent=entry.user_agent, details=dict(entry.details),
        source=entry.source, received_at=_ts(entry.received_at),
    )


def _page_pb(page: Page) -> audit_pb2.ListEventsResponse:
    return audit_pb2.ListEventsResponse(events=[event_pb(e) for e in page.entries],
                                        next_page_token=page.next_page_token)


def _window(request) -> dict:
    return dict(page_size=request.page_size, page_token=request.page_token,
                since=_from_ts(request, "since"), until=_from_ts(request, "until"))


def _filter(message: audit_pb2.EventFilter) -> EventFilter:
    return EventFilter(
        tag=message.tag, tag_prefix=message.tag_prefix, actor_user_id=message.actor_user_id,
        actor_username=message.actor_username, subject_user_id=message.subject_user_id,
        subject_username=message.subject_username, project_id=message.project_id,
        project_name=message.project_name, ip_address=message.ip_address,
    )


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """Called by the gateway, which resolved the session (and, for a project, checked Owner);
    for the full log, auditsvc resolves the admin's session itself."""

    def __init__(self, log: AuditLog, admins: AdminSessions):
        self.log = log
        self.admins = admins

    async def ListUserEvents(self, request, context):
        return _page_pb(await self.log.list_user_events(request.user_id, **_window(request)))

    async def ListProjectEvents(self, request, context):
        return _page_pb(await self.log.list_project_events(request.project_id, **_window(request)))

    async def ListAllEvents(self, request, context):
        admin = await self.admins.require_admin(request.session_token)
        page = await self.log.list_events(_filter(request.filter), **_window(request))
        logger.info("full audit log read by an admin", extra={"user_id": admin.user_id, "events": len(page.entries)})
        return _page_pb(page)


def _require_operator() -> None:
    # The interceptor already keeps this service for the operator credential; fail closed anyway.
    if current_caller_role() is not CallerRole.OPERATOR:
        raise PermissionDenied("this method needs the operator credential", reason="operator_only")


class AuditAdminServicer(audit_pb2_grpc.AuditAdminServiceServicer):
    def __init__(self, log: AuditLog, *, follow_poll_seconds: float = 0.5):
        self.log = log
        self.follow_poll_seconds = follow_poll_seconds

    async def ListEvents(self, request, context):
        _require_operator()
        return _page_pb(await self.log.list_events(_filter(request.filter), **_window(request)))

    async def FollowEvents(self, request, context):
        _require_operator()
        entries = self.log.follow(_filter(request.filter), since=_from_ts(request, "since"),
                                  poll_seconds=self.follow_poll_seconds)
        try:
            async for entry in entries:
                yield event_pb(entry)
        finally:
            await entries.aclose()
