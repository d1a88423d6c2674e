"""Checks shared by the end-to-end journeys: an event is in the right log and in no wrong one."""

from __future__ import annotations

import grpc
import pytest

from gatehouse.audit.v1 import audit_pb2
from tests.system import Person, System


async def rpc_error(awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await awaitable
    return err.value


async def assert_own_events(system: System, user_id: str, log: list[audit_pb2.AuditEvent]) -> None:
    """A user's log holds only events about that user or performed by that user."""
    assert log, "the user's log is empty"
    for event in log:
        assert user_id in (event.subject_user_id, event.actor.user_id), event


async def assert_untouched(system: System, bystander: Person, events: list[audit_pb2.AuditEvent]) -> None:
    """Once everything committed so far is stored: `bystander`'s log still holds only its own
    creation, and none of `events`."""
    await system.settle()
    log = await system.user_events(bystander.user_id)
    assert [e.tag for e in log] == ["account:create"], [e.tag for e in log]
    assert not {e.event_id for e in events} & {e.event_id for e in log}


async def assert_not_in_user_log(system: System, user_id: str, events: list[audit_pb2.AuditEvent]) -> None:
    await system.settle()
    ids = {e.event_id for e in await system.user_events(user_id)}
    leaked = [e.tag for e in events if e.event_id in ids]
    assert not leaked, f"{leaked} leaked into the log of user {user_id}"


async def assert_not_in_project_log(system: System, project_id: str, events: list[audit_pb2.AuditEvent]) -> None:
    await system.settle()
    ids = {e.event_id for e in await system.project_events(project_id)}
    leaked = [e.tag for e in events if e.event_id in ids]
    assert not leaked, f"{leaked} leaked into the log of project {project_id}"


def mentions(event: audit_pb2.AuditEvent, *needles: str) -> list[str]:
    """Which of `needles` appear anywhere in the event as served (every field, every detail)."""
    text = str(event)
    return [n for n in needles if n and n in text]
