"""Reading an upload's multipart/form-data body (RFC 7578): one loop for every size of body.

twine sends every metadata field before the file (`content`): the loop reads the fields into
memory (bounded by the form's allowance) and hands the file on as a stream of chunks, which the
upload service reads only once authsvc has said yes. A small body is just a short stream. aiohttp's
reader does the framing; this module gives each of its refusals a 400 that says what was wrong.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from uploadgw.errors import InvalidUpload, TooLarge
from uploadgw.http.middleware import header_text
from uploadgw.uploads.service import human_size

_PARAM = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_ESCAPED = re.compile(r"\\(.)")
# The limits on part headers, as aiohttp's server has them (its max_field_size and max_headers).
MAX_PART_HEADER_LINE = 8190
MAX_PART_HEADERS = 128
LONG_PART_HEADER = (f"A part header line in the multipart body is longer than {MAX_PART_HEADER_LINE} bytes; "
                    "nothing was stored.")
BAD_PART_HEADERS = (f"A part of the multipart body has more than {MAX_PART_HEADERS} headers, or malformed ones; "
                    "nothing was stored.")
INTERRUPTED = "The upload was interrupted or its multipart body is malformed; nothing was stored."
# aiohttp's reader raises these for a body it cannot frame.
MALFORMED = (ValueError, AssertionError, aiohttp.ClientPayloadError, KeyError)
READ_CHUNK = 1024 * 1024
# Small reads for the metadata fields keep aiohttp's look-ahead into the file short.
FIELD_CHUNK = 16 * 1024
IGNORED_FILE_FIELDS = ("gpg_signature", "attestations")
IGNORED_FILE_FIELD_LIMIT = 64 * 1024
PART_OVERHEAD = 100  # a part's headers and boundary, counted against the form's allowance


@dataclasses.dataclass(frozen=True)
class UploadBody:
    """An upload body as the upload service takes it: the metadata fields, the file's name, how
    many body bytes the fields took, and the file's bytes (then the body's end) as a stream."""

    fields: list[tuple[str, str]]
    filename: str
    form_bytes: int
    content: AsyncIterator[bytes]


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


def form_field(disposition: str) -> tuple[str, str | None]:
    """A part's name and filename from its Content-Disposition.
    RFC 7578 (4.2) forbids the RFC 5987 `name*=`/`filename*=` forms and twine never sends them:
    a part that uses them is refused, with what to do instead."""
    if not disposition.lower().startswith("form-data"):
        raise InvalidUpload("Malformed multipart body (a part is not form-data).", reason="bad_multipart")
    params = disposition_params(disposition)
    if any(key.endswith("*") for key in params):
        raise InvalidUpload("Use plain name= and filename= parameters in the multipart body.", reason="bad_multipart")
    return params.get("name", ""), params.get("filename")


def framing_error(exc: BadHttpMessage) -> InvalidUpload:
    """aiohttp's reader refuses a part header line over its limit (LineTooLong) or too many part
    headers (BadHttpMessage): a 400 that says which."""
    if isinstance(exc, LineTooLong):
        if exc.args[1:2] == (MAX_PART_HEADER_LINE,):
            return InvalidUpload(LONG_PART_HEADER, reason="part_header_too_long")
        return InvalidUpload("A line of the multipart body is too long; nothing was stored.", reason="bad_multipart")
    return InvalidUpload(BAD_PART_HEADERS, reason="bad_part_headers")


def body_reader(request: web.Request) -> aiohttp.MultipartReader:
    """aiohttp's reader of the request's parts, framed by its boundary as `multipart/mixed`.

    For `multipart/form-data`, aiohttp parses each part's Content-Disposition once more to look for
    a `_charset_` part (RFC 7578 §4.6), compiling its unescape pattern anew each time: a millisecond
    and more of CPU for the 16 parts of a twine upload. The framing of both types is the same
    (RFC 2046), and the gateway reads every field as UTF-8 whatever `_charset_` says, so a
    `_charset_` part is a field like any other here (and ignored, as unknown fields are)."""
    content_type = request.headers.get("Content-Type", "")
    boundary_of(content_type)
    params = content_type.partition(";")[2]  # the boundary as the client wrote it
    return aiohttp.MultipartReader({"Content-Type": f"multipart/mixed;{params}"}, request.content,
                                   max_field_size=MAX_PART_HEADER_LINE, max_headers=MAX_PART_HEADERS)


async def read_upload(request: web.Request, *, max_form_size: int) -> UploadBody:
    """The fields up to `content`, read now; the file itself is left in the body, as a stream."""
    try:
        reader = body_reader(request)
        fields, used, part, filename = await _read_fields(reader, max_form_size)
    except BadHttpMessage as exc:
        raise framing_error(exc) from None
    except MALFORMED as exc:
        raise InvalidUpload(f"Malformed multipart body ({type(exc).__name__}).", reason="bad_multipart") from None
    return UploadBody(fields=fields, filename=filename, form_bytes=used,
                      content=_content(reader, part, max_form_size))


async def _read_fields(reader: aiohttp.MultipartReader, max_form_size: int,
                       ) -> tuple[list[tuple[str, str]], int, aiohttp.BodyPartReader, str]:
    """Every field up to `content`: (fields, bytes read, the content part, its filename)."""
    fields: list[tuple[str, str]] = []
    used = 0
    while True:
        part = await reader.next()
        if part is None:
            raise InvalidUpload("Upload payload does not have a file.", reason="no_file")
        if isinstance(part, aiohttp.MultipartReader):
            raise InvalidUpload("Nested multipart bodies are not accepted.", reason="bad_multipart")
        # aiohttp decodes part headers keeping non-UTF-8 bytes as lone surrogates: U+FFFD instead.
        name, filename = form_field(header_text(part.headers.get("Content-Disposition", "")))
        if name == "content":
            if filename is None:
                raise InvalidUpload("The 'content' field must be a file.", reason="bad_multipart")
            return fields, used, part, filename
        if filename is not None:
            if name not in IGNORED_FILE_FIELDS:
                raise InvalidUpload(f"{name}: Should not be a file.", reason="bad_multipart")
            used += await _skip(part, IGNORED_FILE_FIELD_LIMIT)
            continue
        data = bytearray()
        while chunk := await part.read_chunk(FIELD_CHUNK):
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


async def _content(reader: aiohttp.MultipartReader, part: aiohttp.BodyPartReader,
                   max_form_size: int) -> AsyncIterator[bytes]:
    """The file's bytes; then whatever follows it (twine sends nothing) read and ignored, within bounds."""
    try:
        while chunk := await part.read_chunk(READ_CHUNK):
            yield chunk
        budget = max_form_size
        while (after := await reader.next()) is not None:
            if isinstance(after, aiohttp.MultipartReader):
                raise InvalidUpload("Nested multipart bodies are not accepted.", reason="bad_multipart")
            budget -= await _skip(after, budget)
    except BadHttpMessage as exc:  # in the part headers after `content`
        raise framing_error(exc) from None
    except (*MALFORMED, ConnectionError) as exc:
        raise InvalidUpload(INTERRUPTED, reason="interrupted") from exc


async def _skip(part: aiohttp.BodyPartReader, limit: int) -> int:
    """A part read and dropped; TooLarge beyond `limit` bytes."""
    total = 0
    while chunk := await part.read_chunk(FIELD_CHUNK):
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"The {part.name!r} field is larger than {human_size(limit)}.", reason="field_too_large")
    return total
