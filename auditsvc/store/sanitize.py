"""Cleaning what is stored and shown: no control characters, bounded lengths, hashed IPs.

A log line must not be forgeable: a username such as "bob\\r\\n2026-01-01 admin login" would
otherwise print as two lines. Every text field loses its control, format and line/paragraph
separator characters (CR, LF, NUL, bidi overrides, U+2028, …) on the way in and again on the way
out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from collections.abc import Mapping

_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
MAX_DETAIL_KEYS = 50
MAX_DETAIL_KEY = 100
MAX_DETAIL_VALUE = 1000
# Built once: json.dumps with keyword arguments builds a new encoder on every call.
_DETAILS_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
# Detail keys that may describe a token's scope, i.e. other projects: never shown in a project log.
_PROJECT_HIDDEN_WORDS = ("scope", "projects", "caveat")


def clean_text(value: object, limit: int) -> str:
    text = "" if value is None else str(value)
    if not text.isprintable():
        text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED)
    return text[:limit]


def clean_details(details: Mapping[str, object] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in sorted((details or {}).items()):
        key = clean_text(key, MAX_DETAIL_KEY)
        if key and len(out) < MAX_DETAIL_KEYS:
            out[key] = clean_text(value, MAX_DETAIL_VALUE)
    return out


def dump_details(details: Mapping[str, object] | None) -> str:
    return _DETAILS_JSON.encode(clean_details(details))


def load_details(raw: str | None) -> dict[str, str]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return clean_details(value) if isinstance(value, dict) else {}


def project_safe(details: Mapping[str, str]) -> dict[str, str]:
    """The details a project's log may show: nothing that lists a token's scope (other projects)."""
    return {k: v for k, v in details.items()
            if not any(word in k.lower() for word in _PROJECT_HIDDEN_WORDS)}


def hash_ip(ip: str, key: bytes) -> str:
    return hmac.new(key, ip.encode("utf-8"), hashlib.sha256).hexdigest()
