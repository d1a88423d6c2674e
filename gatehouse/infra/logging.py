"""JSON-lines logging to stdout, configured once per process.

Log event names and ids; never passwords, codes, tokens or recovery codes. As a second line of
defence the formatter drops any `extra` field whose name says it holds a secret.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import TextIO

_SECRET_WORDS = ("password", "secret", "token", "code", "seed", "credential", "authorization")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@functools.lru_cache(maxsize=1024)
def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS) and not key.endswith("_id")


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def log_timestamp(created: float) -> str:
    """A log line's `ts`: UTC, to the millisecond."""
    return f"{_utc_second(int(created))}.{int(created % 1 * 1000):03d}Z"


def log_fields(fields: Iterable[tuple[str, object]]) -> dict[str, str | int | float | bool | None]:
    """`fields` as a log line carries them: a field whose name says it holds a secret is
    "[redacted]", a value JSON has no type for becomes its `str`. (The access log,
    uploadgw/http/accesslog.py, writes its handlers' fields through it too.)"""
    entry: dict[str, str | int | float | bool | None] = {}
    for key, value in fields:
        if _is_secret(key):
            entry[key] = "[redacted]"
            continue
        entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
    return entry


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str | int | float | bool | None] = {
            "ts": log_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(log_fields((key, value) for key, value in vars(record).items()
                                if key not in _STANDARD and not key.startswith("_")))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
