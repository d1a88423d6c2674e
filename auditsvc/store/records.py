"""Plain values crossing the audit service's layers: events in, log entries out, filters, pages."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
from collections.abc import Mapping

from auditsvc.errors import InvalidArgument


@dataclasses.dataclass(frozen=True)
class EventRecord:
    """One event as decoded from the stream (before cleaning)."""

    event_id: str
    tag: str
    occurred_at: dt.datetime | None
    source: str = ""
    actor_kind: str = "unspecified"  # user | operator | system | anonymous | publisher | unspecified
    actor_user_id: str = ""
    actor_username: str = ""
    subject_user_id: str = ""
    subject_username: str = ""
    project_id: str = ""
    project_name: str = ""
    ip: str = ""
    user_agent: str = ""
    details: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LogEntry:
    """One stored event as a log shows it (already cleaned; details already filtered)."""

    id: int
    event_id: str
    tag: str
    occurred_at: dt.datetime
    received_at: dt.datetime
    source: str
    actor_kind: str
    actor_user_id: str
    actor_username: str
    subject_user_id: str
    subject_username: str
    project_id: str
    project_name: str
    ip: str
    ip_hashed: bool
    user_agent: str
    details: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class EventFilter:
    """Filters of the full (admin) log; empty fields do not filter."""

    tag: str = ""
    tag_prefix: str = ""
    actor_user_id: str = ""
    actor_username: str = ""
    subject_user_id: str = ""
    subject_username: str = ""
    project_id: str = ""
    project_name: str = ""
    ip_address: str = ""

    def fingerprint(self) -> str:
        return "|".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))


@dataclasses.dataclass(frozen=True)
class Page:
    entries: list[LogEntry]
    next_page_token: str = ""


@dataclasses.dataclass(frozen=True)
class IngestResult:
    """Event ids newly stored (others were already there), and those refused with the reason."""

    inserted: set[str]
    rejected: dict[str, str]


# -- page tokens -----------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Cursor:
    """Where the next page starts: strictly older than (occurred_at, id), newest first."""

    occurred_at: dt.datetime
    id: int
    query: str  # a short digest of the query the token belongs to

    def encode(self) -> str:
        micros = (self.occurred_at - _EPOCH) // dt.timedelta(microseconds=1)
        raw = f"1.{micros}.{self.id}.{self.query}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, query: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            version, micros, row_id, digest = raw.split(".")
            if version != "1":
                raise ValueError(version)
            when = _EPOCH + dt.timedelta(microseconds=int(micros))
            cursor = cls(when, int(row_id), digest)
        except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError):
            raise InvalidArgument("The page token is not valid; start from the first page.",
                                  reason="bad_page_token") from None
        if cursor.query != query:
            raise InvalidArgument("The page token belongs to another query; start from the first page.",
                                  reason="bad_page_token")
        return cursor
