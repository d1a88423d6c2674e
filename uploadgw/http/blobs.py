"""Sending a stored file's bytes: conditional requests, one byte range, and the kernel's sendfile.

Files are immutable, so their strong ETag is their SHA-256 and `If-None-Match` answers 304. A
`Range` of one byte range is answered 206 (`If-Range` with another validator: the whole file);
an unsatisfiable one 416 with `Content-Range: bytes */<size>`. A request for several ranges gets
the whole file with 200, which RFC 9110 allows (no multipart/byteranges bodies: pip and uv ask
for one range at a time); so does a malformed `Range`.

aiohttp's FileResponse would do the same through `loop.sendfile`, which uvloop does not implement:
it falls back to reading chunks in worker threads. Here the bytes go with `os.sendfile` from the
blob to the socket for as long as the socket takes them; when it is full, one chunk goes through
the transport (whose flow control waits for the socket to have room) and sendfile goes on once
that chunk has left.
"""

from __future__ import annotations

import os
import re

from aiohttp import web

from uploadgw.errors import NotFound

# Positions of up to 18 digits (a longer one is malformed here, and int() of thousands of digits fails).
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})", re.IGNORECASE)
_CHUNK = 256 * 1024
_WAKE_CHUNK = 64 * 1024  # sent through the transport when the socket is full, to learn when it has room


def etag_matches(request: web.Request, etag: str) -> bool:
    """`If-None-Match` names this (strong) ETag, or is `*`."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags or "*" in tags


def byte_range(request: web.Request, size: int, etag: str) -> tuple[int, int] | None:
    """(first, last) of the one range asked for; None for the whole file. Raises
    HTTPRequestRangeNotSatisfiable when the range starts past the end (or asks for no bytes)."""
    header = request.headers.get("Range")
    if header is None:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:  # several ranges, another unit, or malformed: the whole file
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> web.HTTPRequestRangeNotSatisfiable:
    return web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


async def send_file(request: web.Request, path: str, *, etag: str, headers: dict[str, str]) -> web.StreamResponse:
    """The file at `path` (an immutable blob) as the answer to `request`; 404 when it is gone."""
    headers = dict(headers, ETag=etag, **{"Accept-Ranges": "bytes"})
    if etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # removed since its row was read (a deletion on another replica)
        raise NotFound("No such file here.", reason="no_file") from None
    try:
        size = os.fstat(fd).st_size
        chosen = byte_range(request, size, etag)
        first, last = chosen or (0, size - 1)
        response = web.StreamResponse(status=200 if chosen is None else 206, headers=headers)
        if chosen is not None:
            response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        response.content_length = last - first + 1
        await response.prepare(request)
        if request.method != "HEAD":
            await _send_bytes(request, response, fd, first, last - first + 1)
        await response.write_eof()
        return response
    finally:
        os.close(fd)


async def _send_bytes(request: web.Request, response: web.StreamResponse, fd: int, offset: int, count: int) -> None:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if transport is None or sock is None or transport.get_extra_info("sslcontext") is not None:
        await _write_chunks(response, fd, offset, count, _CHUNK)
        return
    writer = request.writer
    writer.send_headers()  # type: ignore[attr-defined]  # aiohttp holds them back for the first write
    # While the file goes out, the transport counts as full whenever anything is queued in it, so
    # drain() returns only once the queue is empty: then sendfile may go on where it stopped.
    transport.set_write_buffer_limits(high=0)
    try:
        while count > 0:
            await writer.drain()
            sent = _sendfile_now(sock.fileno(), fd, offset, count)
            writer.output_size += sent  # the access log's byte count (aiohttp counts what it writes)
            offset, count = offset + sent, count - sent
            if count > 0:  # the socket is full: one chunk through the transport, which waits for room
                written = await _write_chunks(response, fd, offset, min(count, _WAKE_CHUNK), _WAKE_CHUNK)
                offset, count = offset + written, count - written
    finally:
        if not transport.is_closing():
            transport.set_write_buffer_limits()


async def _write_chunks(response: web.StreamResponse, fd: int, offset: int, count: int, chunk_size: int) -> int:
    """`count` bytes from `offset` through the response's buffered writes; returns `count`."""
    done = 0
    while done < count:
        chunk = os.pread(fd, min(chunk_size, count - done), offset + done)
        if not chunk:
            raise ConnectionResetError("the file is shorter than it was")  # ends the connection
        await response.write(chunk)
        done += len(chunk)
    return done


def _sendfile_now(sock_fd: int, fd: int, offset: int, count: int) -> int:
    """Bytes sent by sendfile before the (non-blocking) socket would block."""
    sent = 0
    while sent < count:
        try:
            n = os.sendfile(sock_fd, fd, offset + sent, count - sent)
        except BlockingIOError:
            break
        if n == 0:
            break
        sent += n
    return sent
