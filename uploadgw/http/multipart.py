"""multipart/form-data for bodies small enough to be read whole (RFC 7578), and part headers.

A small upload (most distributions) is read in one piece and split here, which costs a fraction of
a streaming parser's per-part work. Large uploads are streamed with aiohttp's reader instead; both
hand the same (name, filename, value) parts to the same checks.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from uploadgw.errors import InvalidUpload

_PARAM = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
MAX_PARTS = 2000
# aiohttp's limits for the streamed path (the server's max_field_size and max_headers); the small path keeps the same.
MAX_PART_HEADER_LINE = 8190
MAX_PART_HEADERS = 128
LONG_PART_HEADER = (f"A part header line in the multipart body is longer than {MAX_PART_HEADER_LINE} bytes; "
                    "nothing was stored.")
BAD_PART_HEADERS = (f"A part of the multipart body has more than {MAX_PART_HEADERS} headers, or malformed ones; "
                    "nothing was stored.")
CACHED_HEADERS = 256  # bytes: the cache of part headers holds at most 1024 of this size
_ESCAPED = re.compile(r"\\(.)")


class Part(NamedTuple):
    name: str
    filename: str | None
    value: bytes


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
    params = disposition_params(content_type)
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200 or not boundary.isascii():  # RFC 2046: ASCII only
        raise InvalidUpload("The multipart body has no usable boundary.", reason="bad_multipart")
    return boundary.encode("ascii")


def split(body: bytes, boundary: bytes) -> list[Part]:
    """Every part of a complete multipart body; InvalidUpload when it is not well formed.

    The body is cut at every delimiter in one pass (`bytes.split`); what follows the closing
    delimiter is ignored, as RFC 2046 says."""
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2:start] != b"\r\n"):
        raise InvalidUpload("Malformed multipart body (no opening boundary).", reason="bad_multipart")
    parts: list[Part] = []
    for chunk in body[start + len(delimiter):].split(b"\r\n" + delimiter, MAX_PARTS + 1):
        if chunk.startswith(b"--"):  # the closing delimiter
            return parts
        line_end = chunk.find(b"\r\n")
        if line_end < 0 or chunk[:line_end].strip(b" \t"):
            raise InvalidUpload("Malformed multipart body (bad boundary line).", reason="bad_multipart")
        headers_end = chunk.find(b"\r\n\r\n", line_end)
        if headers_end < 0:
            raise InvalidUpload("Malformed multipart body (unterminated part headers).", reason="bad_multipart")
        headers = chunk[line_end + 2:headers_end]
        name, filename = (_known_part_headers if len(headers) <= CACHED_HEADERS else _part_headers)(headers)
        parts.append(Part(name, filename, chunk[headers_end + 4:]))
        if len(parts) > MAX_PARTS:
            raise InvalidUpload("The upload has too many fields.", reason="bad_multipart")
    raise InvalidUpload("Malformed multipart body (unterminated part).", reason="bad_multipart")


def _part_headers(headers: bytes) -> tuple[str, str | None]:
    """A part's name and filename, from its headers (within the streamed path's limits)."""
    disposition = ""
    lines = headers.split(b"\r\n")
    if len(lines) > MAX_PART_HEADERS:
        raise InvalidUpload(BAD_PART_HEADERS, reason="bad_part_headers")
    for line in lines:
        if len(line) > MAX_PART_HEADER_LINE:
            raise InvalidUpload(LONG_PART_HEADER, reason="part_header_too_long")
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == b"content-disposition":
            disposition = value.strip().decode("utf-8", "replace")
    return form_field(disposition)


def form_field(disposition: str) -> tuple[str, str | None]:
    """A part's name and filename from its Content-Disposition, for both ways of reading a body.
    RFC 7578 (4.2) forbids the RFC 5987 `name*=`/`filename*=` forms and twine never sends them:
    a part that uses them is refused, with what to do instead."""
    if not disposition.lower().startswith("form-data"):
        raise InvalidUpload("Malformed multipart body (a part is not form-data).", reason="bad_multipart")
    params = disposition_params(disposition)
    if any(key.endswith("*") for key in params):
        raise InvalidUpload("Use plain name= and filename= parameters in the multipart body.", reason="bad_multipart")
    return params.get("name", ""), params.get("filename")


# A client sends the same headers for every field of every upload: short ones are read once.
_known_part_headers = functools.lru_cache(maxsize=1024)(_part_headers)
