"""Hand-built upload requests: twine's exact fields (from twine's own library), then changed at will."""

from __future__ import annotations

import asyncio
import base64
import pathlib
import secrets

from twine.package import PackageFile
from twine.repository import Repository


def twine_fields(path: pathlib.Path) -> list[tuple[str, str]]:
    """The form fields twine sends for this file, in twine's order (without `content`)."""
    package = PackageFile.from_filename(str(path), None)
    fields = Repository._convert_metadata_to_list_of_tuples(package.metadata_dictionary())
    return [*fields, (":action", "file_upload"), ("protocol_version", "1")]


def replace_field(fields: list[tuple[str, str]], name: str, value: str | None) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in fields if k != name]
    if value is not None:
        out.insert(0, (name, value))
    return out


def encode(fields: list[tuple[str, str]], filename: str | None, content: bytes | None,
           boundary: str | None = None) -> tuple[str, bytes, bytes]:
    """(content type, body up to the file bytes, the closing tail) of a multipart/form-data body."""
    boundary = boundary or secrets.token_hex(16)
    head = bytearray()
    for name, value in fields:
        head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").encode()
        head += value.encode() + b"\r\n"
    if filename is not None:
        head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{filename}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = (b"\r\n" if filename is not None else b"") + f"--{boundary}--\r\n".encode()
    if content is not None:
        head += content
    return f"multipart/form-data; boundary={boundary}", bytes(head), tail


def basic(token: str, user: str = "__token__") -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


async def post_upload(gw, path: pathlib.Path | None, token: str | None, *, fields=None, content: bytes | None = None,
                      filename: str | None = None, url: str | None = None, headers: dict | None = None):
    """POST a twine-shaped upload; returns (status, reason, body text)."""
    fields = twine_fields(path) if fields is None else fields
    data = path.read_bytes() if content is None and path is not None else content
    ctype, body, tail = encode(fields, filename or (path.name if path else None), data)
    hdrs = {"Content-Type": ctype, "User-Agent": "twine/7.0.0 tests"}
    if token is not None:
        hdrs["Authorization"] = basic(token)
    hdrs.update(headers or {})
    async with gw.http.post(url or gw.upload_url, data=body + tail, headers=hdrs) as resp:
        return resp.status, resp.reason, await resp.text()


async def raw_exchange(port: int, request_head: bytes, body_parts: list[bytes], *, read_response: bool = True,
                       pause: float = 0.0) -> bytes:
    """Talk HTTP over a plain socket: send the head and some body, optionally read the answer, close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_head)
        for part in body_parts:
            writer.write(part)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        if not read_response:
            return b""
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.transport.abort() if not read_response else writer.close()
