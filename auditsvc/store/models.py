"""The stored audit events: one row per event id, indexed for the user, project and admin logs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from auditsvc.db import Base

# Column widths; the store cuts longer values (after cleaning) so that no event is ever refused.
WIDTHS = {
    "event_id": 64, "tag": 100, "source": 32, "actor_kind": 16, "actor_user_id": 64,
    "actor_username": 200, "subject_user_id": 64, "subject_username": 200, "project_id": 64,
    "project_name": 200, "ip": 64, "user_agent": 500,
}


class StoredEvent(Base):
    __tablename__ = "events"

    # BIGINT on PostgreSQL; SQLite needs INTEGER for its rowid autoincrement.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(WIDTHS["event_id"]), unique=True)
    tag: Mapped[str] = mapped_column(String(WIDTHS["tag"]))
    occurred_at: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(String(WIDTHS["source"]), default="")
    actor_kind: Mapped[str] = mapped_column(String(WIDTHS["actor_kind"]))
    actor_user_id: Mapped[str] = mapped_column(String(WIDTHS["actor_user_id"]), default="")
    actor_username: Mapped[str] = mapped_column(String(WIDTHS["actor_username"]), default="")
    subject_user_id: Mapped[str] = mapped_column(String(WIDTHS["subject_user_id"]), default="")
    subject_username: Mapped[str] = mapped_column(String(WIDTHS["subject_username"]), default="")
    project_id: Mapped[str] = mapped_column(String(WIDTHS["project_id"]), default="")
    project_name: Mapped[str] = mapped_column(String(WIDTHS["project_name"]), default="")
    # The client IP, or HMAC-SHA256(key, ip) in hex when ip_hashed.
    ip: Mapped[str] = mapped_column(String(WIDTHS["ip"]), default="")
    ip_hashed: Mapped[bool] = mapped_column(Boolean, default=False)
    user_agent: Mapped[str] = mapped_column(String(WIDTHS["user_agent"]), default="")
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON object of strings

    __table_args__ = (
        Index("ix_events_subject_time", "subject_user_id", "occurred_at", "id"),
        Index("ix_events_actor_time", "actor_user_id", "occurred_at", "id"),
        Index("ix_events_project_time", "project_id", "occurred_at", "id"),
        Index("ix_events_time", "occurred_at", "id"),
        Index("ix_events_tag_time", "tag", "occurred_at"),
        Index("ix_events_ip_time", "ip", "occurred_at"),
    )


events = StoredEvent.__table__
