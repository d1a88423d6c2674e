"""Translations shared by the auth service's gRPC adapters (protobuf <-> domain values)."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp

from authsvc.accounts.models import User
from gatehouse.auth.v1 import common_pb2
from gatehouse.infra.clock import as_utc
from gatehouse.infra.outbox import Origin


def ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(as_utc(value).replace(tzinfo=None))
    return out


def from_ts(message, field: str) -> dt.datetime | None:
    """An optional Timestamp field as an aware datetime, None when unset."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=dt.timezone.utc)


def origin(client: common_pb2.ClientInfo | None) -> Origin:
    if client is None:
        return Origin()
    # Keep what is recorded short and on one line.
    ip = "".join(ch for ch in client.ip_address[:64] if ch.isprintable())
    ua = "".join(ch for ch in client.user_agent[:300] if ch.isprintable())
    return Origin(ip_address=ip, user_agent=ua)


def user_pb(user: User, *, two_factor_enabled: bool = False) -> common_pb2.User:
    primary = next((e for e in user.emails if e.primary), None)
    return common_pb2.User(
        id=user.id,
        username=user.username,
        name=user.name or "",
        primary_email=primary.address if primary else "",
        email_verified=bool(primary and primary.verified),
        is_active=user.is_active,
        is_admin=user.is_admin,
        created_at=ts(user.created_at),
        two_factor_enabled=two_factor_enabled,
    )
