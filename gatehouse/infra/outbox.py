"""The transactional outbox: a service writes its audit event in the same transaction as the change.

`make_outbox_table` gives each service its own `outbox` table (in its own metadata). An
`EventEmitter` turns plain values into the versioned `gatehouse.events.v1.Event` and inserts the
serialised message, sealed with the producer's event key (`gatehouse.infra.eventauth`) so that
consumers can tell it from a forgery. The relay (`gatehouse.infra.relay`) moves committed rows to the Redis stream,
so an event exists if and only if its change committed, and none is lost while Redis is down.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, MetaData, String, Table
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from gatehouse.events.v1 import event_pb2
from gatehouse.infra.clock import Clock
from gatehouse.infra.eventauth import EventSigner
from gatehouse.infra.prepared import Prepared, insert_of

SCHEMA_VERSION = 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ROW_COLUMNS = ("event_id", "tag", "payload", "created_at", "published_at", "attempts")  # the id is the database's
# Detail keys that could only hold a secret. A programming error, refused loudly.
_FORBIDDEN_DETAIL_WORDS = ("password", "secret", "seed", "recovery_code", "otp", "macaroon")


def make_outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("tag", String(100), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, default=0, server_default="0"),
        Index("ix_outbox_unpublished", "published_at", "id"),
    )


@functools.lru_cache(maxsize=1024)  # detail keys are names in the code
def _allowed_detail(key: str) -> bool:
    lowered = key.lower()
    return not (any(word in lowered for word in _FORBIDDEN_DETAIL_WORDS) or lowered in ("token", "code"))


@dataclasses.dataclass(frozen=True)
class ActorRef:
    """Who did it. kind: "user", "operator", "system", "anonymous" or "publisher" (a trusted publisher's
    CI run: user_id is the publisher's id, username its display)."""

    kind: str
    user_id: str = ""
    username: str = ""

    @classmethod
    def user(cls, user_id: object, username: str) -> "ActorRef":
        return cls("user", str(user_id), username)

    @classmethod
    def operator(cls, name: str = "operator") -> "ActorRef":
        return cls("operator", "", name)

    @classmethod
    def publisher(cls, publisher_id: str, display: str) -> "ActorRef":
        return cls("publisher", publisher_id, display[:100])


SYSTEM = ActorRef("system", "", "gatehouse")
ANONYMOUS = ActorRef("anonymous")

_KINDS = {
    "user": event_pb2.Actor.USER,
    "operator": event_pb2.Actor.OPERATOR,
    "system": event_pb2.Actor.SYSTEM,
    "anonymous": event_pb2.Actor.ANONYMOUS,
    "publisher": event_pb2.Actor.PUBLISHER,
}


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where the request came from (client IP and user agent as the gateway saw them)."""

    ip_address: str = ""
    user_agent: str = ""


def event_signer(producer: str, keys: tuple[tuple[int, bytes], ...]) -> EventSigner | None:
    """The signer for a producer's settings keys ("version:key" newest first); None without keys."""
    return EventSigner.for_producer(producer, keys) if keys else None


class EventEmitter:
    def __init__(self, table: Table | None, *, source: str, clock: Clock,
                 signer: EventSigner | None = None) -> None:
        # Without a signer the rows hold bare events, which consumers dead-letter as unauthenticated.
        if signer is not None and signer.key.producer != source:
            raise ValueError(f"the {source} emitter cannot sign with {signer.key.producer}'s key")
        self.signer = signer
        self.table = table  # None: an emitter that only builds events
        self._insert_statement = insert_of(table, _ROW_COLUMNS) if table is not None else None
        self._insert = Prepared(self._insert_statement) if self._insert_statement is not None else None
        self.source = source
        self.clock = clock

    def build(
        self,
        tag: str,
        *,
        actor: ActorRef,
        user: tuple[str, str] | None = None,
        project: tuple[str, str] | None = None,
        origin: Origin | None = None,
        details: Mapping[str, object] | None = None,
    ) -> event_pb2.Event:
        clean: dict[str, str] = {}
        for key, value in (details or {}).items():
            if not _allowed_detail(key):
                raise ValueError(f"event detail {key!r} looks like a secret")
            clean[key] = "" if value is None else str(value)
        event = event_pb2.Event(
            event_id=str(uuid.uuid4()),
            schema_version=SCHEMA_VERSION,
            tag=tag,
            source=self.source,
            actor=event_pb2.Actor(kind=_KINDS[actor.kind], user_id=actor.user_id, username=actor.username),
            subject_user_id=str(user[0]) if user else "",
            subject_username=user[1] if user else "",
            project_id=str(project[0]) if project else "",
            project_name=project[1] if project else "",
            ip_address=(origin or Origin()).ip_address,
            user_agent=(origin or Origin()).user_agent,
            details=clean,
        )
        since = self.clock.now() - _EPOCH  # exact: a Timestamp's seconds and nanos without float arithmetic
        event.occurred_at.seconds = since.days * 86400 + since.seconds
        event.occurred_at.nanos = since.microseconds * 1000
        return event

    def _row(self, event: event_pb2.Event) -> dict[str, Any]:  # _ROW_COLUMNS
        return {"event_id": event.event_id, "tag": event.tag, "payload": self.serialize(event),
                "created_at": self.clock.now(), "published_at": None, "attempts": 0}

    def serialize(self, event: event_pb2.Event) -> bytes:
        """The bytes a stream entry carries: the event, sealed with this producer's key."""
        payload = event.SerializeToString()
        return self.signer.seal(payload) if self.signer is not None else payload

    async def emit(self, session: AsyncSession, tag: str, **kwargs: Any) -> event_pb2.Event:
        """Add the event to the session's transaction; it is published only if that commits."""
        event = self.build(tag, **kwargs)
        if self._insert_statement is None:
            raise TypeError("this emitter has no outbox table: it only builds events")
        await session.execute(self._insert_statement, self._row(event))
        return event

    def emit_sync(self, session: Session, tag: str, **kwargs: Any) -> event_pb2.Event:
        """`emit` for a synchronous session (a `Transactions.run` function)."""
        event = self.build(tag, **kwargs)
        self.write(session.connection(), [event])
        return event

    def write(self, conn: Connection, events: list[event_pb2.Event]) -> None:
        """Insert built events in one statement, in the connection's transaction."""
        if self._insert is None:
            raise TypeError("this emitter has no outbox table: it only builds events")
        self._insert.executemany(conn, [self._row(event) for event in events])
