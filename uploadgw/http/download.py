"""A file download answered the way the store serves it: a local file (sendfile), the bytes streamed
from an object store, or a redirect to a presigned URL."""

from __future__ import annotations

import contextlib

from aiohttp import web

from uploadgw.http import blobs
from uploadgw.storage.filestore import Download, LocalFile, Redirect


async def answer_download(request: web.Request, download: Download, headers: dict[str, str], *,
                          etag: str) -> web.StreamResponse:
    """`etag` is the blob's strong validator (its SHA-256, quoted)."""
    if isinstance(download, LocalFile):
        return await blobs.send_file(request, download.path, etag=etag, headers=headers)
    if isinstance(download, Redirect):
        # Never cached: the URL expires within seconds, and a private index checks every request.
        return web.Response(status=302, headers={"Location": download.url, "Cache-Control": "no-store"})
    headers = dict(headers, ETag=etag)
    async with contextlib.aclosing(download.chunks) as chunks:
        if blobs.etag_matches(request, etag):
            return web.Response(status=304, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.content_length = download.size
        await response.prepare(request)
        if request.method != "HEAD":  # a HEAD answer has the headers only
            async for chunk in chunks:
                await response.write(chunk)
    await response.write_eof()
    return response
