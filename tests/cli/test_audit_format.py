"""The audit CLI's pure parts: one clean line per event, and the time forms of --since/--until."""

from __future__ import annotations

import datetime as dt

from gatehouse.audit.v1 import audit_pb2
from gatehouse.cli.audit import format_event, is_id, parse_time
from gatehouse.events.v1 import event_pb2


def test_format_event_strips_control_characters():
    """Defence in depth: whatever the service sends, one event prints as one clean line."""
    event = audit_pb2.AuditEvent(
        event_id="e1", tag="account:login:success\n2020-01-01 fake", subject_username="mal\rlory",
        actor=event_pb2.Actor(kind=event_pb2.Actor.USER, username="mal\u2029lory"), ip_address="192.0.2.1",
        user_agent="ua\x00\x1b[31m\u202ered", details={"reason\n": "a\u2028b c", 'k"=': "v"})
    event.occurred_at.FromDatetime(dt.datetime(2026, 5, 1, 12, 0, 0))
    line = format_event(event)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u202e" not in line
    assert line.startswith("2026-05-01 12:00:00Z  \"account:login:success2020-01-01 fake\"  by=mallory")
    assert 'reason=\"ab c\"' in line and "user=mallory" in line and "ua=ua[31mred" in line and "k__=v" in line
    hashed = audit_pb2.AuditEvent(tag="t", ip_address="ab" * 32, ip_hashed=True)
    assert "ip=hash:abababababababab " in format_event(hashed) + " "


def test_parse_time():
    now = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert parse_time("90m", now) == now - dt.timedelta(minutes=90)
    assert parse_time("2w", now) == now - dt.timedelta(weeks=2)
    assert parse_time("2026-04-30", now) == dt.datetime(2026, 4, 30, tzinfo=dt.timezone.utc)
    assert parse_time("2026-04-30T14:00:00+02:00", now) == dt.datetime(2026, 4, 30, 12, tzinfo=dt.timezone.utc)
    assert parse_time("2026-04-30T12:00:00Z", now).tzinfo == dt.timezone.utc


def test_ids_are_told_from_names():
    assert is_id("0b7a3c52-9d7e-4d1c-8f0e-2a6c1e9b4f11") and is_id(" 0B7A3C52-9D7E-4D1C-8F0E-2A6C1E9B4F11 ")
    for name in ("alice", "0b7a3c529d7e4d1c8f0e2a6c1e9b4f11", "urn:uuid:0b7a3c52-9d7e-4d1c-8f0e-2a6c1e9b4f11", ""):
        assert not is_id(name)
