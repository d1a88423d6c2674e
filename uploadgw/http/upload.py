"""`POST /legacy/`: the upload API twine speaks, as HTTP; the upload itself is `UploadService.upload`.

The order, read top to bottom: the token is read from the headers (a malformed or missing one, or
a body declared too large, is refused before anything else), and authsvc is asked at once whether
it is one of its tokens at all; while it answers, the body's metadata fields are read (twine sends
them all before the file). A refusal from that check cuts the reading short (the connection is
closed), however little of the body has come. Then the service takes the fields and the file as a
stream: it authorises the upload for its project, receives, checks and records the file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from gatehouse.infra.outbox import Origin
from uploadgw.errors import InvalidUpload, TooLarge
from uploadgw.http import credentials, multipart
from uploadgw.http.accesslog import ACCESS_LOG_EXTRA
from uploadgw.http.middleware import client_address
from uploadgw.uploads.service import UploadService, human_size

log = logging.getLogger(__name__)
T = TypeVar("T")


def origin_of(request: web.Request) -> Origin:
    return Origin(ip_address=client_address(request.remote), user_agent=request.headers.get("User-Agent", "")[:300])


class UploadHandler:
    def __init__(self, service: UploadService, *, max_file_size: int, max_form_size: int):
        self.service = service
        self.max_file_size = max_file_size
        self.max_form_size = max_form_size

    async def __call__(self, request: web.Request) -> web.Response:
        token = credentials.upload_token(request.headers.get("Authorization"))
        origin = origin_of(request)
        # The token's check at the headers, while the fields come in: only a refusal counts.
        token_check = asyncio.ensure_future(self.service.auth.check_upload_token(token, origin))
        try:
            await self.check_declared(request)
            if multipart.media_type(request.headers.get("Content-Type", "")) != "multipart/form-data":
                raise InvalidUpload("Upload with a multipart/form-data body (as twine does).", reason="not_multipart")
            body = await self._unless_refused(token_check, multipart.read_upload(
                request, max_form_size=self.max_form_size))
        finally:
            token_check.cancel()
            await asyncio.gather(token_check, return_exceptions=True)
        declared = request.content_length
        outcome = await self.service.upload(
            body.fields, body.filename, body.content, token=token, origin=origin,
            remaining=declared - body.form_bytes if declared is not None else None)
        request[ACCESS_LOG_EXTRA] = {"project": outcome.project, "upload_filename": outcome.filename,
                                     "size": outcome.size, "token_id": outcome.token_id, "stored": outcome.created}
        if not outcome.created:
            return web.Response(text="File already exists with identical content; nothing new was stored.\n")
        return web.Response(text="OK\n")

    async def check_declared(self, request: web.Request) -> None:
        """TooLarge when the declared length exceeds every file limit plus the form's allowance
        (also answered to `Expect: 100-continue`, before the client sends the body)."""
        declared = request.content_length
        ceiling = self.max_file_size + self.max_form_size
        if declared is not None and declared > ceiling and not await self._has_larger_overrides(declared):
            raise TooLarge(f"File too large. The limit is {human_size(self.max_file_size)} per file.",
                           reason="file_too_large")

    async def _has_larger_overrides(self, declared: int) -> bool:
        return await self.service.largest_file_limit() + self.max_form_size >= declared

    @staticmethod
    async def _unless_refused(token_check: asyncio.Future[None], reading: Awaitable[T]) -> T:
        """`reading` (a read of the body), cut short when the token check refuses first."""
        task = asyncio.ensure_future(reading)
        try:
            await asyncio.wait({task, token_check}, return_when=asyncio.FIRST_COMPLETED)
            if token_check.done() and not token_check.cancelled():
                token_check.result()  # the refusal, if it is one
            return await task
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
