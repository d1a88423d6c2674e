"""The access log: one JSON line per request, never the query string.

Emailed verification and reset links carry their single-use token in the query, so the default
aiohttp format (which logs the request line) would write secrets to the log. A handler may add
fields to its request's line (an accepted upload: the project, filename, size and token id).

The lines have the shape of every other log line (gatehouse/infra/logging.py: `ts`, `level`,
`logger`, `msg`, then the fields) and go to the same stream, but not through `logging`: a record,
its JSON formatter and a write for every request cost a simple page about as much CPU as serving
it. Each line is formatted at once from a template, and the lines are written together when
`AccessLog.batch` of them are waiting or `AccessLog.delay` seconds after the first, and at
`close()`: a clean stop loses none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from json.encoder import encode_basestring_ascii as _quote  # a str as a JSON string, in C
from typing import TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from gatehouse.infra.logging import log_fields, log_timestamp

ACCESS_LOG_EXTRA = web.RequestKey("access_log_extra", dict)
LOGGER = "uploadgw.access"  # the `logger` of every line

log = logging.getLogger(__name__)


class AccessLog:
    """Access lines for `stream`, written in batches (see the module docstring)."""

    def __init__(self, stream: TextIO, *, batch: int = 256, delay: float = 0.25):
        self.stream = stream
        self.batch = batch
        self.delay = delay
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def record(self, request: BaseRequest, response: web.StreamResponse, seconds: float) -> None:
        # The line of every log line's shape, each text JSON-quoted (ASCII: no line can make the
        # batch's write fail); a handler's fields after the others, redacted as in any log line.
        query_keys = ",".join(sorted(request.query.keys())) if request.query_string else ""
        line = (f'{{"ts": "{log_timestamp(time.time())}", "level": "info", "logger": "{LOGGER}", "msg": "request", '
                f'"method": {_quote(request.method)}, "path": {_quote(request.path)}, '  # never the query string
                f'"query_keys": {_quote(query_keys)}, "status": {response.status}, "bytes": {response.body_length}, '
                f'"ms": {round(seconds * 1000, 2)}, "remote": {_quote(request.remote or "")}, '
                f'"agent": {_quote(request.headers.get("User-Agent", "")[:200])}')
        extra = request.get(ACCESS_LOG_EXTRA)
        if extra:
            line += ", " + json.dumps(log_fields(extra.items()))[1:-1]
        self._lines.append(line + "}")
        if len(self._lines) >= self.batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self.flush)

    def flush(self) -> None:
        """Write the waiting lines now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # the stream closed or failed, as `logging` would, carry on
            log.warning("access log lines could not be written", extra={"lines": len(lines)})

    def close(self) -> None:
        self.flush()


def access_logger(lines: AccessLog) -> type[AbstractAccessLogger]:
    """The class aiohttp makes a connection's access logger from (it takes a class, not an object)."""

    class RedactedAccessLogger(AbstractAccessLogger):
        def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
            lines.record(request, response, time)

    return RedactedAccessLogger
