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
from typing import TextIO

_SECRET_WORDS = ("password", "secret", "token", "code", "seed", "credential", "authorization")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@functools.lru_cache(maxsize=1024)
def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS) and not key.endswith("_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str | int | float | bool | None] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if _is_secret(key):
                entry[key] = "[redacted]"
                continue
            entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
