"""`POST /legacy/`: the upload API twine speaks.

Order matters: the credentials are read from the headers first (a malformed or missing token, or
a body declared too large, is refused before anything else), and authsvc is asked at once whether
the token is one of its tokens at all: a forged or garbage token is refused (and the connection
closed) as soon as it says no, however little of the body has come. twine sends every metadata
field before `content`, so the project is known - and the token sent to authsvc for this project -
before the file is used. A large body is streamed, and only after authsvc said yes. A small one (at most
`SMALL_BODY` bytes, already in the socket buffers) is read whole; while authsvc answers, a worker
thread stores it, unreachable, under a key of its own and examines its archive (the same check as
a streamed file's); it is recorded, and so published, only if authsvc said yes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from gatehouse.infra.outbox import Origin
from uploadgw.errors import InvalidUpload, TooLarge
from uploadgw.http import credentials, multipart
from uploadgw.http.accesslog import ACCESS_LOG_EXTRA
from uploadgw.http.middleware import client_address, header_text
from uploadgw.uploads.form import UploadForm, collect_fields, parse_form
from uploadgw.uploads.service import UploadService, human_size
from uploadgw.uploads.spool import SizeExceeded, hash_bytes

log = logging.getLogger(__name__)
T = TypeVar("T")
SMALL_BODY = 1024 * 1024
READ_CHUNK = 1024 * 1024
# Small reads for the metadata fields keep aiohttp's look-ahead into the file short.
FIELD_CHUNK = 16 * 1024
IGNORED_FILE_FIELDS = ("gpg_signature", "attestations")
IGNORED_FILE_FIELD_LIMIT = 64 * 1024
INTERRUPTED = "The upload was interrupted or its multipart body is malformed; nothing was stored."
MALFORMED = (ValueError, AssertionError, aiohttp.ClientPayloadError, KeyError)


def _framing_error(exc: BadHttpMessage) -> InvalidUpload:
    """aiohttp's reader refuses a part header line over its limit (LineTooLong) or too many part
    headers (BadHttpMessage): a 400 that says which, as the small path answers."""
    if isinstance(exc, LineTooLong):
        if exc.args[1:2] == (multipart.MAX_PART_HEADER_LINE,):
            return InvalidUpload(multipart.LONG_PART_HEADER, reason="part_header_too_long")
        return InvalidUpload("A line of the multipart body is too long; nothing was stored.", reason="bad_multipart")
    return InvalidUpload(multipart.BAD_PART_HEADERS, reason="bad_part_headers")


def origin_of(request: web.Request) -> Origin:
    return Origin(ip_address=client_address(request.remote), user_agent=request.headers.get("User-Agent", "")[:300])


class UploadHandler:
    def __init__(self, service: UploadService, *, max_file_size: int, max_form_size: int):
        self.service = service
        self.max_file_size = max_file_size
        self.max_form_size = max_form_size

    async def __call__(self, request: web.Request) -> web.Response:
        token = credentials.upload_token(request.headers.get("Authorization"))
        declared = request.content_length
        # The token's check at the headers, while the body comes in: only a refusal counts.
        token_check = asyncio.ensure_future(self.service.auth.check_upload_token(token, origin_of(request)))
        try:
            await self.check_declared(request)
            if multipart.media_type(request.headers.get("Content-Type", "")) != "multipart/form-data":
                raise InvalidUpload("Upload with a multipart/form-data body (as twine does).", reason="not_multipart")
            if declared is not None and declared <= SMALL_BODY:
                outcome = await self._small(request, token, declared, token_check)
            else:
                outcome = await self._streamed(request, token, declared, token_check)
        finally:
            token_check.cancel()
            await asyncio.gather(token_check, return_exceptions=True)
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

    @staticmethod
    def _form(fields: list[tuple[str, str]], filename: str | None) -> tuple[UploadForm, str]:
        return parse_form(collect_fields(fields)), filename or ""  # the filename: checked by authorize()

    @staticmethod
    async def _unless_refused(token_check: asyncio.Future, reading: Awaitable[T]) -> T:
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

    async def _small(self, request: web.Request, token: str, declared: int, token_check: asyncio.Future):
        try:
            body = await self._unless_refused(token_check, request.content.readexactly(declared))
        except (asyncio.IncompleteReadError, aiohttp.ClientPayloadError, ConnectionError) as exc:
            raise InvalidUpload(INTERRUPTED, reason="interrupted") from exc
        fields: list[tuple[str, str]] = []
        content = None
        for part in multipart.split(body, multipart.boundary_of(request.headers.get("Content-Type", ""))):
            if part.name == "content":
                if part.filename is None:
                    raise InvalidUpload("The 'content' field must be a file.", reason="bad_multipart")
                content = part
                break
            if part.filename is not None:
                self._check_file_field(part.name)
                continue
            fields.append((part.name, self._text(part.name, part.value)))
        if content is None:
            raise InvalidUpload("Upload payload does not have a file.", reason="no_file")
        form, filename = self._form(fields, content.filename)
        data = content.value
        digests = hash_bytes(data, want_md5=form.md5_digest is not None)
        checking = asyncio.ensure_future(asyncio.to_thread(  # while authsvc answers
            self.service.check_archive, form, filename, data, len(data), digests.sha256))
        try:
            ticket = await self.service.authorize(form, filename, token, origin_of(request), len(data))
        except BaseException:
            await self.service.discard(checking)
            raise
        return await self.service.publish(ticket, digests, checking)

    async def _streamed(self, request: web.Request, token: str, declared: int | None, token_check: asyncio.Future):
        try:
            reader = await request.multipart()
            fields, form_bytes, part, filename = await self._unless_refused(token_check, self._read_fields(reader))
        except BadHttpMessage as exc:
            raise _framing_error(exc) from None
        except MALFORMED as exc:
            raise InvalidUpload(f"Malformed multipart body ({type(exc).__name__}).", reason="bad_multipart") \
                from None
        form, filename = self._form(fields, filename)
        remaining = declared - form_bytes if declared is not None else None
        ticket = await self.service.authorize(form, filename, token, origin_of(request), remaining)
        spool = self.service.open_spool(ticket.spool_limit, form)
        try:
            try:
                while chunk := await part.read_chunk(READ_CHUNK):
                    await spool.write(chunk)
                await self._drain(reader)
            except SizeExceeded:
                raise self.service.size_error(ticket) from None
            except BadHttpMessage as exc:  # in the part headers after `content`
                raise _framing_error(exc) from None
            except (*MALFORMED, ConnectionError) as exc:
                raise InvalidUpload(INTERRUPTED, reason="interrupted") from exc
            digests = await spool.finish()
            source = spool.data if spool.data is not None else spool.temp_path
            checking = asyncio.ensure_future(asyncio.to_thread(
                self.service.check_archive, form, filename, source, digests.size, digests.sha256))
            return await self.service.publish(ticket, digests, checking)
        finally:
            # A stored file was moved away (into the store); anything else of this upload is removed.
            await spool.discard()

    async def _has_larger_overrides(self, declared: int) -> bool:
        return await self.service.largest_file_limit() + self.max_form_size >= declared

    @staticmethod
    def _check_file_field(name: str) -> None:
        if name not in IGNORED_FILE_FIELDS:
            raise InvalidUpload(f"{name}: Should not be a file.", reason="bad_multipart")

    @staticmethod
    def _text(name: str, value: bytes) -> str:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidUpload(f"The {name!r} field is not valid UTF-8.", reason="bad_encoding") from None

    async def _read_fields(self, reader):
        """Every field up to `content`: (fields, bytes read, the content part, its filename)."""
        fields: list[tuple[str, str]] = []
        used = 0
        while True:
            part = await reader.next()
            if part is None:
                raise InvalidUpload("Upload payload does not have a file.", reason="no_file")
            if isinstance(part, aiohttp.MultipartReader):
                raise InvalidUpload("Nested multipart bodies are not accepted.", reason="bad_multipart")
            # aiohttp decodes part headers keeping non-UTF-8 bytes as lone surrogates; the small path
            # (`multipart.split`) has U+FFFD for them, and so has this one.
            name, filename = multipart.form_field(header_text(part.headers.get("Content-Disposition", "")))
            if name == "content":
                if filename is None:
                    raise InvalidUpload("The 'content' field must be a file.", reason="bad_multipart")
                return fields, used, part, filename
            if filename is not None:
                self._check_file_field(name)
                used += await self._skip(part, IGNORED_FILE_FIELD_LIMIT)
                continue
            data = bytearray()
            while chunk := await part.read_chunk(FIELD_CHUNK):
                data += chunk
                used += len(chunk)
                if used > self.max_form_size:
                    raise TooLarge(f"The upload's metadata fields are larger than {human_size(self.max_form_size)}.",
                                   reason="form_too_large")
            fields.append((name, self._text(name, bytes(data))))
            used += len(name) + 100  # the part's headers and boundary

    @staticmethod
    async def _skip(part, limit: int) -> int:
        total = 0
        while chunk := await part.read_chunk(FIELD_CHUNK):
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"The {part.name!r} field is larger than {human_size(limit)}.", reason="field_too_large")
        return total

    async def _drain(self, reader) -> None:
        """Whatever follows `content` (twine sends nothing) is read and ignored, within bounds."""
        budget = self.max_form_size
        while (part := await reader.next()) is not None:
            if isinstance(part, aiohttp.MultipartReader):
                raise InvalidUpload("Nested multipart bodies are not accepted.", reason="bad_multipart")
            budget -= await self._skip(part, budget)
