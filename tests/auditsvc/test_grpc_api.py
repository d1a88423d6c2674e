"""The audit log query API over gRPC on a real port: pagination, windows, filters, privacy, access."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from auditsvc.store.models import events
from gatehouse.audit.v1 import audit_pb2
from gatehouse.events.v1 import event_pb2
from gatehouse.infra.outbox import ActorRef
from tests.auditsvc.conftest import NOW, build_event, ingest_events


def ts(when: dt.datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when.replace(tzinfo=None))
    return out


async def all_pages(call, request, page_size):
    pages, token = [], ""
    while True:
        request.page_size = page_size
        request.page_token = token
        reply = await call(request)
        pages.append([e.event_id for e in reply.events])
        token = reply.next_page_token
        if not token:
            return pages


async def test_calls_need_a_credential_and_the_admin_log_needs_the_operator(audit):
    stub, channel = audit.stub(None)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-alice"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await channel.close()
    admin_as_gateway, channel = audit.stub(audit.settings.gateway_key, admin=True)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_as_gateway.ListEvents(audit_pb2.AdminListEventsRequest())
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await anext(aiter(admin_as_gateway.FollowEvents(audit_pb2.FollowEventsRequest())))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await channel.close()
    assert (await audit.admin.ListEvents(audit_pb2.AdminListEventsRequest())).events == []


async def test_user_log_is_paginated_newest_first_and_only_theirs(audit):
    mine = [build_event(at=NOW - dt.timedelta(minutes=i), details={"i": str(i)}) for i in range(25)]
    # alice acting on bob's account is in alice's log (actor) and bob's (subject)
    acted = build_event("account:role:change", at=NOW - dt.timedelta(seconds=30),
                        actor=ActorRef.user("u-alice", "alice"), user=("u-bob", "bob"))
    others = [build_event(user=("u-bob", "bob"), at=NOW - dt.timedelta(minutes=i)) for i in range(3)]
    await ingest_events(audit.log, mine + [acted] + others)
    pages = await all_pages(audit.audit.ListUserEvents, audit_pb2.ListUserEventsRequest(user_id="u-alice"), 10)
    assert [len(p) for p in pages] == [10, 10, 6]
    expected = [mine[0].event_id, acted.event_id] + [e.event_id for e in mine[1:]]
    assert [i for p in pages for i in p] == expected
    bob = await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-bob"))
    assert {e.event_id for e in bob.events} == {acted.event_id} | {e.event_id for e in others}


async def test_pages_never_skip_or_repeat_events_with_the_same_time(audit):
    same = [build_event(at=NOW - dt.timedelta(hours=1)) for _ in range(7)]
    await ingest_events(audit.log, same)
    pages = await all_pages(audit.audit.ListUserEvents, audit_pb2.ListUserEventsRequest(user_id="u-alice"), 2)
    flat = [i for p in pages for i in p]
    assert len(flat) == 7 and set(flat) == {e.event_id for e in same}


async def test_an_entry_carries_utc_time_tag_actor_subject_ip_agent_and_details(audit):
    event = build_event("account:login:success", at=NOW - dt.timedelta(hours=2), ip="198.51.100.7",
                        ua="Mozilla/5.0", details={"method": "password"})
    await ingest_events(audit.log, [event])
    [entry] = (await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-alice"))).events
    assert entry.occurred_at.ToDatetime(tzinfo=dt.timezone.utc) == NOW - dt.timedelta(hours=2)
    assert entry.tag == "account:login:success" and entry.source == "testsvc"
    assert entry.actor.kind == event_pb2.Actor.USER and entry.actor.username == "alice"
    assert entry.subject_user_id == "u-alice" and entry.subject_username == "alice"
    assert entry.ip_address == "198.51.100.7" and not entry.ip_hashed
    assert entry.user_agent == "Mozilla/5.0" and dict(entry.details) == {"method": "password"}


async def test_default_window_is_two_weeks_and_a_window_can_be_asked_for(audit):
    recent = build_event(at=NOW - dt.timedelta(days=13))
    old = build_event(at=NOW - dt.timedelta(days=15))
    await ingest_events(audit.log, [recent, old])
    default = await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-alice"))
    assert [e.event_id for e in default.events] == [recent.event_id]
    wide = await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(
        user_id="u-alice", since=ts(NOW - dt.timedelta(days=20))))
    assert [e.event_id for e in wide.events] == [recent.event_id, old.event_id]
    only_old = await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(
        user_id="u-alice", since=ts(NOW - dt.timedelta(days=20)), until=ts(NOW - dt.timedelta(days=14))))
    assert [e.event_id for e in only_old.events] == [old.event_id]


async def test_project_log_shows_the_project_and_hides_other_projects_of_a_token_scope(audit):
    upload = build_event("project:release:add", project=("p-1", "alpha"), details={"version": "1.0"})
    token = build_event("project:api_token:add", project=("p-1", "alpha"),
                        details={"token_name": "ci", "scope": "projects:alpha,secret-beta",
                                 "token_projects": "alpha,secret-beta", "caveats": "[...]"})
    elsewhere = build_event("project:release:add", project=("p-2", "beta"))
    await ingest_events(audit.log, [upload, token, elsewhere])
    reply = await audit.audit.ListProjectEvents(audit_pb2.ListProjectEventsRequest(project_id="p-1"))
    by_id = {e.event_id: e for e in reply.events}
    assert set(by_id) == {upload.event_id, token.event_id}
    assert dict(by_id[token.event_id].details) == {"token_name": "ci"}
    assert "secret-beta" not in str(reply)
    # The token's owner still sees the whole scope in their own log.
    mine = await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-alice"))
    assert {e.event_id: dict(e.details) for e in mine.events}[token.event_id]["scope"] == "projects:alpha,secret-beta"


async def test_admin_filters(audit):
    a = build_event("account:login:success", at=NOW - dt.timedelta(hours=1), ip="203.0.113.5")
    b = build_event("account:login:failure", at=NOW - dt.timedelta(hours=2), actor=ActorRef("anonymous"),
                    ip="203.0.113.9")
    c = build_event("project:release:add", at=NOW - dt.timedelta(days=3), project=("p-1", "Alpha"),
                    user=("u-bob", "bob"), ip="203.0.113.5")
    await ingest_events(audit.log, [a, b, c])

    async def ids(since=None, until=None, **flt):
        request = audit_pb2.AdminListEventsRequest(filter=audit_pb2.EventFilter(**flt))
        if since:
            request.since.CopyFrom(ts(since))
        if until:
            request.until.CopyFrom(ts(until))
        return [e.event_id for e in (await audit.admin.ListEvents(request)).events]

    assert await ids() == [a.event_id, b.event_id, c.event_id]
    assert await ids(tag="account:login:failure") == [b.event_id]
    assert await ids(tag_prefix="account:login:") == [a.event_id, b.event_id]
    assert await ids(tag_prefix="account:%") == []  # a prefix, not a pattern
    assert await ids(actor_user_id="u-alice") == [a.event_id]
    assert await ids(actor_username="BOB") == [c.event_id]
    assert await ids(subject_username="alice") == [a.event_id, b.event_id]
    assert await ids(project_id="p-1") == await ids(project_name="alpha") == [c.event_id]
    assert await ids(ip_address="203.0.113.5") == [a.event_id, c.event_id]
    assert await ids(ip_address="203.0.113.5", tag_prefix="project:") == [c.event_id]
    assert await ids(since=NOW - dt.timedelta(hours=1, minutes=30)) == [a.event_id]
    assert await ids(until=NOW - dt.timedelta(days=1)) == [c.event_id]


async def test_control_characters_cannot_forge_a_line(audit):
    forged = "eve\r\n2026-05-01T12:00:00Z account:login:success alice\u2028\u202e\x00"
    event = build_event(user=("u-eve", forged), ua="curl\n/8\t", details={"note\n": "a\r\nb", "x": "\x1b[31mred"})
    await ingest_events(audit.log, [event])
    [entry] = (await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-eve"))).events
    assert entry.subject_username == "eve2026-05-01T12:00:00Z account:login:success alice"
    assert entry.actor.username == entry.subject_username
    assert entry.user_agent == "curl/8"
    assert dict(entry.details) == {"note": "ab", "x": "[31mred"}
    async with audit.log.db() as session:
        row = (await session.execute(select(events))).one()
    stored = " ".join(str(v) for v in row)
    assert not any(ch in stored for ch in "\r\n\x00\x1b\u2028\u202e")


@pytest.mark.parametrize("request_kwargs, words", [
    (dict(user_id="u-alice", page_size=-1), "page_size"),
    (dict(user_id="u-alice", page_token="not a token!"), "page token"),
    (dict(user_id=""), "user_id"),
    (dict(user_id="u-alice", since=ts(NOW), until=ts(NOW - dt.timedelta(days=1))), "time window"),
])
async def test_bad_requests_are_invalid_argument_with_a_message(audit, request_kwargs, words):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(**request_kwargs))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.value.details()


async def test_a_page_token_only_continues_its_own_query(audit):
    await ingest_events(audit.log, [build_event(at=NOW - dt.timedelta(minutes=i)) for i in range(3)])
    first = await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-alice", page_size=1))
    assert first.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(
            user_id="u-bob", page_token=first.next_page_token))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_page_size_is_capped(audit):
    await ingest_events(audit.log, [build_event(at=NOW - dt.timedelta(seconds=i)) for i in range(510)])
    reply = await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-alice", page_size=10_000))
    assert len(reply.events) == 500 and reply.next_page_token
    default = await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-alice"))
    assert len(default.events) == 50


async def test_follow_streams_new_matching_events(audit):
    before = build_event("account:login:success", at=NOW - dt.timedelta(minutes=5))
    await ingest_events(audit.log, [before])
    call = audit.admin.FollowEvents(audit_pb2.FollowEventsRequest(
        filter=audit_pb2.EventFilter(tag_prefix="account:login:"), since=ts(NOW - dt.timedelta(hours=1))),
        timeout=10)
    received = []

    async def collect():
        async for entry in call:
            received.append(entry.event_id)
            if len(received) == 3:
                return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.2)
    new = [build_event("account:login:failure"), build_event("account:password:change"),
           build_event("account:login:success")]
    await ingest_events(audit.log, new)
    await asyncio.wait_for(collector, 5)
    call.cancel()
    assert received == [before.event_id, new[0].event_id, new[2].event_id]
