"""Security history for the pages: a user's own log, a project's log and (admins) the full log.

auditsvc trusts the gateway for the ids it passes, so callers pass only what authsvc resolved:
the session's own user id, and a project id after CheckPermission(VIEW_LOG) said Owner. The full
log is different: the gateway passes the admin's session token and auditsvc asks authsvc itself.
"""

from __future__ import annotations

import datetime as dt

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from gatehouse.audit.v1 import audit_pb2, audit_pb2_grpc
from gatehouse.events.v1 import event_pb2
from gatehouse.infra.clock import as_utc
from uploadgw.pages.services.errors import PageError
from uploadgw.pages.services.rpc import Caller
from uploadgw.pages.services.views import Event, EventPage, LogQuery, when

PAGE_SIZE = 50
LOG_FIELDS = ("until",)  # the filter that may show a refusal, by its reason
_KINDS = {event_pb2.Actor.OPERATOR: "an operator", event_pb2.Actor.SYSTEM: "Gatehouse",
          event_pb2.Actor.ANONYMOUS: "someone not logged in"}


def _timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(as_utc(value).replace(tzinfo=None))
    return out


def event_filter(query: LogQuery) -> audit_pb2.EventFilter:
    """The admin's filters for auditsvc: a tag ending in ':' (or '*') matches every tag it begins."""
    flt = audit_pb2.EventFilter(actor_username=query.actor, subject_username=query.user,
                                project_name=query.project, ip_address=query.ip_address)
    if query.tag.endswith((":", "*")):
        flt.tag_prefix = query.tag.rstrip("*")
    else:
        flt.tag = query.tag
    return flt


def _event(pb: audit_pb2.AuditEvent) -> Event:
    actor = pb.actor.username or _KINDS.get(pb.actor.kind, "")
    if pb.actor.kind == event_pb2.Actor.OPERATOR and pb.actor.username:
        actor = f"operator {pb.actor.username}"
    return Event(occurred_at=when(pb, "occurred_at"), tag=pb.tag, actor=actor, subject=pb.subject_username,
                 project=pb.project_name, ip_address=pb.ip_address, ip_hashed=pb.ip_hashed,
                 user_agent=pb.user_agent, details=sorted(pb.details.items()))


class HistoryPages:
    def __init__(self, channel: grpc.aio.Channel | None, *, timeout: float):
        self._stub = audit_pb2_grpc.AuditServiceStub(channel) if channel is not None else None
        self._call = Caller(timeout)

    def _require(self):
        if self._stub is None:
            raise PageError("The security history is not available on this index (no audit service is "
                            "configured).", status=503)
        return self._stub

    async def user_log(self, user_id: str, page_token: str = "") -> EventPage:
        stub = self._require()
        reply = await self._call(stub.ListUserEvents, audit_pb2.ListUserEventsRequest(
            user_id=user_id, page_size=PAGE_SIZE, page_token=page_token[:500]), session_call=False)
        return EventPage(events=[_event(e) for e in reply.events], next_page=reply.next_page_token)

    async def project_log(self, project_id: str, page_token: str = "") -> EventPage:
        stub = self._require()
        reply = await self._call(stub.ListProjectEvents, audit_pb2.ListProjectEventsRequest(
            project_id=project_id, page_size=PAGE_SIZE, page_token=page_token[:500]), session_call=False)
        return EventPage(events=[_event(e) for e in reply.events], next_page=reply.next_page_token)

    async def full_log(self, session_token: str, query: LogQuery, page_token: str = "") -> EventPage:
        """Every event matching the filters, for an admin's session (auditsvc asks authsvc)."""
        stub = self._require()
        reply = await self._call(stub.ListAllEvents, audit_pb2.ListAllEventsRequest(
            session_token=session_token, filter=event_filter(query), page_size=PAGE_SIZE,
            page_token=page_token[:500], since=_timestamp(query.since), until=_timestamp(query.until)),
            fields=LOG_FIELDS)
        return EventPage(events=[_event(e) for e in reply.events], next_page=reply.next_page_token)
