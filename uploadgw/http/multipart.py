"""Reading an upload's multipart/form-data body (RFC 7578): one loop for every size of body.

twine sends every metadata field before the file (`content`): the loop reads the fields into
memory (bounded by the form's allowance) and hands the file on as a stream of chunks, which the
upload service reads only once authsvc has said yes. A small body is just a short stream.

The framing is the `multipart` package's sans-IO parser, fed the request's bytes as they come: for
each part it gives the part's headers, then its bytes, then None. The gateway reads each part's
Content-Disposition itself (`form_field`) and gives each refusal a 400 that says what was wrong.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from typing import TypeAlias

import aiohttp
import multipart
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from uploadgw.errors import InvalidUpload, TooLarge
from uploadgw.uploads.service import human_size

_PARAM = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_ESCAPED = re.compile(r"\\(.)")
# The limits on part headers, as aiohttp's server has them on the request's own headers.
MAX_PART_HEADER_LINE = 8190
MAX_PART_HEADERS = 128
LONG_PART_HEADER = (f"A part header line in the multipart body is longer than {MAX_PART_HEADER_LINE} bytes; "
                    "nothing was stored.")
BAD_PART_HEADERS = f"A part of the multipart body has more than {MAX_PART_HEADERS} headers; nothing was stored."
INTERRUPTED = "The upload was interrupted or its multipart body is malformed; nothing was stored."
# What reading the request's body raises when it ends short or its chunked framing is broken (a
# ConnectionError, the client gone or the edge's body timeout, goes on up while the fields are read).
BROKEN_BODY = (BadHttpMessage, aiohttp.ClientPayloadError)
READ_CHUNK = 1024 * 1024
IGNORED_FILE_FIELDS = ("gpg_signature", "attestations")
IGNORED_FILE_FIELD_LIMIT = 64 * 1024
PART_OVERHEAD = 100  # a part's headers and boundary, counted against the form's allowance

# The parser's events: a part's headers (a Segment), then its bytes, then None at the part's end.
Event: TypeAlias = "multipart.MultipartSegment | bytes | None"


@dataclasses.dataclass(frozen=True)
class UploadBody:
    """An upload body as the upload service takes it: the metadata fields, the file's name, how
    many body bytes the fields took, and the file's bytes (then the body's end) as a stream."""

    fields: list[tuple[str, str]]
    filename: str
    form_bytes: int
    content: AsyncIterator[bytes]


class _PartsParser(multipart.PushMultipartParser):
    """The package's parser, leaving each part's Content-Disposition to `form_field` (the
    package's own check refuses a part that is not form-data in words of its own)."""

    def _create_segment(self, headerlist: list[tuple[str, str]]) -> multipart.MultipartSegment:
        return multipart.MultipartSegment(headerlist)


def disposition_params(header: str) -> dict[str, str]:
    """The parameters of a Content-Disposition value (quoted strings unescaped, keys lower-cased)."""
    params = {}
    start = header.find(";")
    for key, value in _PARAM.findall(header, start) if start >= 0 else ():
        if value.startswith('"'):
            value = value[1:-1]
            if "\\" in value:
                value = _ESCAPED.sub(r"\1", value)
        params[key.lower()] = value
    return params


def media_type(content_type: str) -> str:
    """"multipart/form-data" of "Multipart/Form-Data; boundary=…" (aiohttp's `request.content_type`
    parses the whole header with the email package: a tenth of a millisecond per distinct boundary)."""
    return content_type.partition(";")[0].strip().lower()


def boundary_of(content_type: str) -> bytes:
    """The body's boundary; InvalidUpload when there is none or it is not ASCII (RFC 2046)."""
    params = disposition_params(content_type)
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200 or not boundary.isascii():
        raise InvalidUpload("The multipart body has no usable boundary.", reason="bad_multipart")
    return boundary.encode("ascii")


def form_field(segment: multipart.MultipartSegment) -> tuple[str, str | None]:
    """A part's name and filename from its Content-Disposition.
    RFC 7578 (4.2) forbids the RFC 5987 `name*=`/`filename*=` forms and twine never sends them:
    a part that uses them is refused, with what to do instead."""
    # The parser reads part headers as Latin-1 (every byte kept): as UTF-8, with U+FFFD for bytes
    # that are not (no protobuf string takes anything else).
    disposition = segment.header("Content-Disposition", "")
    if not disposition.isascii():
        disposition = disposition.encode("latin-1").decode("utf-8", "replace")
    if not disposition.lower().startswith("form-data"):
        raise InvalidUpload("Malformed multipart body (a part is not form-data).", reason="bad_multipart")
    if (segment.content_type or "").startswith("multipart/"):
        raise InvalidUpload("Nested multipart bodies are not accepted.", reason="bad_multipart")
    params = disposition_params(disposition)
    if any(key.endswith("*") for key in params):
        raise InvalidUpload("Use plain name= and filename= parameters in the multipart body.", reason="bad_multipart")
    return params.get("name", ""), params.get("filename")


def framing_error(exc: multipart.MultipartError, *, in_file: bool) -> InvalidUpload:
    """A part header line over the limit, or too many part headers: a 400 that says which. Anything
    else the parser refuses: malformed (in the parser's words), or once the file has begun, cut short."""
    if isinstance(exc, multipart.ParserLimitReached):
        if "header length" in str(exc):
            return InvalidUpload(LONG_PART_HEADER, reason="part_header_too_long")
        if "header count" in str(exc):
            return InvalidUpload(BAD_PART_HEADERS, reason="bad_part_headers")
    if in_file:
        return InvalidUpload(INTERRUPTED, reason="interrupted")
    return InvalidUpload(f"Malformed multipart body ({exc}).", reason="bad_multipart")


def body_events(request: web.Request) -> AsyncIterator[Event]:
    """The parser's events for the request's body, read from the connection as they are asked for."""
    parser = _PartsParser(boundary_of(request.headers.get("Content-Type", "")), header_charset="latin-1",
                          max_header_size=MAX_PART_HEADER_LINE, max_header_count=MAX_PART_HEADERS)
    return parser.parse_async(request.content.read, READ_CHUNK)


async def read_upload(request: web.Request, *, max_form_size: int) -> UploadBody:
    """The fields up to `content`, read now; the file itself is left in the body, as a stream."""
    events = body_events(request)
    try:
        fields, used, filename = await _read_fields(events, max_form_size)
    except multipart.MultipartError as exc:
        raise framing_error(exc, in_file=False) from None
    except BROKEN_BODY as exc:
        raise InvalidUpload(INTERRUPTED, reason="interrupted") from exc
    return UploadBody(fields=fields, filename=filename, form_bytes=used,
                      content=_content(events, max_form_size))


async def _read_fields(events: AsyncIterator[Event], max_form_size: int) -> tuple[list[tuple[str, str]], int, str]:
    """Every field up to `content`: (fields, bytes read, the content part's filename)."""
    fields: list[tuple[str, str]] = []
    used = 0
    while True:
        segment = await anext(events, None)
        if segment is None:
            raise InvalidUpload("Upload payload does not have a file.", reason="no_file")
        assert isinstance(segment, multipart.MultipartSegment)
        name, filename = form_field(segment)
        if name == "content":
            if filename is None:
                raise InvalidUpload("The 'content' field must be a file.", reason="bad_multipart")
            return fields, used, filename
        if filename is not None:
            if name not in IGNORED_FILE_FIELDS:
                raise InvalidUpload(f"{name}: Should not be a file.", reason="bad_multipart")
            used += await _skip(events, name, IGNORED_FILE_FIELD_LIMIT)
            continue
        data = bytearray()
        while (chunk := await anext(events)) is not None:
            assert isinstance(chunk, bytes)
            data += chunk
            used += len(chunk)
            if used > max_form_size:
                raise TooLarge(f"The upload's metadata fields are larger than {human_size(max_form_size)}.",
                               reason="form_too_large")
        try:
            fields.append((name, data.decode("utf-8")))
        except UnicodeDecodeError:
            raise InvalidUpload(f"The {name!r} field is not valid UTF-8.", reason="bad_encoding") from None
        used += len(name) + PART_OVERHEAD


async def _content(events: AsyncIterator[Event], max_form_size: int) -> AsyncIterator[bytes]:
    """The file's bytes; then whatever follows it (twine sends nothing) read and ignored, within bounds."""
    try:
        while (chunk := await anext(events)) is not None:
            assert isinstance(chunk, bytes)
            yield chunk
        budget = max_form_size
        while (after := await anext(events, None)) is not None:
            assert isinstance(after, multipart.MultipartSegment)
            budget -= await _skip(events, after.name or "", budget)
    except multipart.MultipartError as exc:
        raise framing_error(exc, in_file=True) from None
    except (*BROKEN_BODY, ConnectionError) as exc:
        raise InvalidUpload(INTERRUPTED, reason="interrupted") from exc


async def _skip(events: AsyncIterator[Event], name: str, limit: int) -> int:
    """A part's bytes read and dropped; TooLarge beyond `limit` bytes."""
    total = 0
    while (chunk := await anext(events)) is not None:
        assert isinstance(chunk, bytes)
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"The {name!r} field is larger than {human_size(limit)}.", reason="field_too_large")
    return total
