"""The one-pass row builder and the cached JSON encoder store exactly what the earlier, careful
formulation stored (guards the consumer speed-up: stored rows stay byte-identical)."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given, settings, strategies as st

from auditsvc.store.models import WIDTHS
from auditsvc.store.records import EventRecord
from auditsvc.store.sanitize import clean_details, clean_text, dump_details, hash_ip
from auditsvc.store.service import AuditLog, _utc
from gatehouse.infra.clock import FakeClock

RECEIVED = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=600)


def reference_row(log: AuditLog, record: EventRecord, received_at: dt.datetime) -> dict:
    """The row as AuditLog._row built it before the speed-up (clean a dict, then update it)."""
    ip = clean_text(record.ip, 100)
    hashed = bool(ip and log.ip_hash_key)
    kind = record.actor_kind if record.actor_kind in {"user", "operator", "system", "anonymous",
                                                      "unspecified"} else "unspecified"
    row = {
        "event_id": record.event_id, "tag": record.tag, "source": record.source,
        "actor_user_id": record.actor_user_id, "actor_username": record.actor_username,
        "subject_user_id": record.subject_user_id, "subject_username": record.subject_username,
        "project_id": record.project_id, "project_name": record.project_name,
        "user_agent": record.user_agent,
    }
    row = {k: clean_text(v, WIDTHS[k]) for k, v in row.items()}
    row.update(
        actor_kind=kind,
        occurred_at=_utc(record.occurred_at) if record.occurred_at else received_at,
        received_at=received_at,
        ip=hash_ip(ip, log.ip_hash_key) if hashed else ip[:WIDTHS["ip"]],
        ip_hashed=hashed,
        details=json.dumps(clean_details(record.details), ensure_ascii=False, sort_keys=True,
                           separators=(",", ":")),
    )
    return row


records = st.builds(
    EventRecord, event_id=_TEXT, tag=_TEXT,
    occurred_at=st.none() | st.datetimes(timezones=st.just(dt.timezone.utc)),
    source=_TEXT, actor_kind=st.sampled_from(["user", "operator", "system", "anonymous",
                                              "unspecified", "root", ""]) | _TEXT,
    actor_user_id=_TEXT, actor_username=_TEXT, subject_user_id=_TEXT, subject_username=_TEXT,
    project_id=_TEXT, project_name=_TEXT, ip=_TEXT, user_agent=_TEXT,
    details=st.dictionaries(_TEXT, _TEXT, max_size=60),
)


@settings(max_examples=300, deadline=None)
@given(record=records, hashed=st.booleans())
def test_row_matches_the_reference(record, hashed):
    log = AuditLog(None, clock=FakeClock(RECEIVED), ip_hash_key=b"k" * 32 if hashed else None)
    assert log._row(record, RECEIVED) == reference_row(log, record, RECEIVED)


@settings(max_examples=300, deadline=None)
@given(details=st.dictionaries(_TEXT, _TEXT | st.integers(), max_size=60))
def test_dump_details_matches_json_dumps(details):
    expected = json.dumps(clean_details(details), ensure_ascii=False, sort_keys=True,
                          separators=(",", ":"))
    assert dump_details(details) == expected
