"""The access log: one JSON-friendly record per request, never the query string.

Emailed verification and reset links carry their single-use token in the query, so the default
aiohttp format (which logs the request line) would write secrets to the log. A handler may add
fields to its request's line (an accepted upload: the project, filename, size and token id).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

ACCESS_LOG_EXTRA = web.RequestKey("access_log_extra", dict)


class RedactedAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,  # without the query string
                "query_keys": ",".join(sorted(request.query.keys())),
                "status": response.status,
                "bytes": response.body_length,
                "ms": round(time * 1000, 2),
                "remote": request.remote or "",
                "agent": request.headers.get("User-Agent", "")[:200],
                **request.get(ACCESS_LOG_EXTRA, {}),
            },
        )
