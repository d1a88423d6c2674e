"""multipart/form-data for bodies small enough to be read whole (RFC 7578), and part headers.

A small upload (most distributions) is read in one piece and split here, which costs a fraction of
a streaming parser's per-part work. Large uploads are streamed with aiohttp's reader instead; both
hand the same (name, filename, value) parts to the same checks.
"""

from __future__ import annotations

import dataclasses
import re

from uploadgw.errors import InvalidUpload

_PARAM = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
MAX_PARTS = 2000
_ESCAPED = re.compile(r"\\(.)")


@dataclasses.dataclass(frozen=True)
class Part:
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
    if not boundary or len(boundary) > 200:
        raise InvalidUpload("The multipart body has no usable boundary.", reason="bad_multipart")
    return boundary.encode("latin-1")


def split(body: bytes, boundary: bytes) -> list[Part]:
    """Every part of a complete multipart body; InvalidUpload when it is not well formed."""
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2:start] != b"\r\n"):
        raise InvalidUpload("Malformed multipart body (no opening boundary).", reason="bad_multipart")
    parts: list[Part] = []
    pos = start + len(delimiter)
    while True:
        if body.startswith(b"--", pos):
            return parts
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise InvalidUpload("Malformed multipart body (bad boundary line).", reason="bad_multipart")
        headers_end = body.find(b"\r\n\r\n", line_end)
        if headers_end < 0:
            raise InvalidUpload("Malformed multipart body (unterminated part headers).", reason="bad_multipart")
        end = body.find(b"\r\n" + delimiter, headers_end + 4)
        if end < 0:
            raise InvalidUpload("Malformed multipart body (unterminated part).", reason="bad_multipart")
        disposition = ""
        for line in body[line_end + 2:headers_end].split(b"\r\n"):
            key, sep, value = line.partition(b":")
            if sep and key.strip().lower() == b"content-disposition":
                disposition = value.strip().decode("utf-8", "replace")
        if not disposition.lower().startswith("form-data"):
            raise InvalidUpload("Malformed multipart body (a part is not form-data).", reason="bad_multipart")
        params = disposition_params(disposition)
        if any(key.endswith("*") for key in params):
            raise InvalidUpload("Use plain name= and filename= parameters in the multipart body.",
                                reason="bad_multipart")
        parts.append(Part(name=params.get("name", ""), filename=params.get("filename"),
                          value=body[headers_end + 4:end]))
        if len(parts) > MAX_PARTS:
            raise InvalidUpload("The upload has too many fields.", reason="bad_multipart")
        pos = end + 2 + len(delimiter)
