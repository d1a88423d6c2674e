"""The simple index over HTTP: `/simple/`, `/simple/<project>/` and the files under `/files/`.

Content negotiation follows PEP 691 (`Vary: Accept`); pages carry an ETag derived from the
project's serial so clients revalidate cheaply, and PyPI's `Cache-Control`. Files are immutable
(their URL contains the content hash): strong ETags (the SHA-256), byte ranges and sendfile
(uploadgw/http/blobs.py). A private index checks the reader's token on every request.
"""

from __future__ import annotations

from aiohttp import web
from packaging.utils import canonicalize_name

from uploadgw.authclient import AuthClient
from uploadgw.errors import NotAcceptable, NotFound
from uploadgw.http import blobs, credentials
from uploadgw.http.download import answer_download
from uploadgw.http.upload import origin_of
from uploadgw.index import render
from uploadgw.index.service import IndexService, StoredFile
from uploadgw.storage.filestore import FileStore

FILE_TYPES = {".whl": "application/zip", ".zip": "application/zip", ".tar.gz": "application/gzip"}


class IndexHandlers:
    def __init__(self, index: IndexService, store: FileStore, auth: AuthClient, *, private: bool):
        self.index = index
        self.store = store
        self.auth = auth
        self.private = private

    async def _check_reader(self, request: web.Request) -> None:
        if self.private:
            token = credentials.read_token(request.headers.get("Authorization"))
            await self.auth.verify_index(token, origin_of(request))

    def _page_headers(self, fmt: str) -> dict[str, str]:
        # As PyPI: clients and caches may reuse a page for ten minutes (pip revalidates every time,
        # and gets a 304 while the ETag holds). A private index's pages are for their reader only.
        return {
            "Content-Type": render.CONTENT_TYPES[fmt],
            "Vary": "Accept, Authorization" if self.private else "Accept",
            "Cache-Control": ("private" if self.private else "public") + ", max-age=600",
        }

    @staticmethod
    def _format(request: web.Request) -> str:
        fmt = render.negotiate(request.headers.get("Accept"), request.query.get("format"))
        if fmt is None:
            raise NotAcceptable("None of the requested content types is available; ask for "
                                f"{render.JSON_TYPE}, {render.HTML_TYPE} or text/html.", reason="not_acceptable")
        return fmt

    async def root(self, request: web.Request) -> web.Response:
        await self._check_reader(request)
        fmt = self._format(request)
        body = await self.index.root_page("json" if fmt == "json" else "html")
        return web.Response(body=body, headers=self._page_headers(fmt))

    async def project_no_slash(self, request: web.Request) -> web.Response:
        name = request.match_info["project"]
        raise web.HTTPMovedPermanently(location=f"{canonicalize_name(name)}/")

    async def project(self, request: web.Request) -> web.Response:
        await self._check_reader(request)
        name = request.match_info["project"]
        normalized = canonicalize_name(name)
        if name != normalized:
            raise web.HTTPMovedPermanently(location=f"../{normalized}/")
        fmt = self._format(request)
        page = await self.index.project_page(normalized, "json" if fmt == "json" else "html")
        if page is None:
            raise NotFound(f"No project named {name!r} on this index.", reason="no_project")
        headers = self._page_headers(fmt)
        headers["ETag"] = page.etag
        headers["X-PyPI-Last-Serial"] = str(page.serial)
        if blobs.etag_matches(request, page.etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=page.body, headers=headers)

    async def file(self, request: web.Request) -> web.StreamResponse:
        await self._check_reader(request)
        info = request.match_info
        path = "/".join(info[part] for part in ("a", "b", "key") if part in info)
        filename = info["filename"]
        cache = ("private" if self.private else "public") + ", max-age=31536000, immutable"
        if filename.endswith(".metadata"):
            stored = await self.index.find_file(path, filename[: -len(".metadata")], with_metadata=True)
            if stored is None or stored.metadata is None:
                raise NotFound(f"No file {filename!r} here.", reason="no_file")
            headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": cache,
                       "ETag": f'"{stored.metadata_sha256}"', "X-Content-Type-Options": "nosniff"}
            if blobs.etag_matches(request, headers["ETag"]):
                return web.Response(status=304, headers=headers)
            return web.Response(body=stored.metadata, headers=headers)
        stored = await self.index.find_file(path, filename)
        if stored is None:
            raise NotFound(f"No file {filename!r} here.", reason="no_file")
        return await self._send_stored(request, stored, {
            "Content-Type": next(t for ext, t in FILE_TYPES.items() if stored.filename.endswith(ext)),
            "Cache-Control": cache,
            "Content-Disposition": f'attachment; filename="{stored.filename}"',
            "X-Content-Type-Options": "nosniff",
        })

    async def _send_stored(self, request: web.Request, stored: StoredFile,
                           headers: dict[str, str]) -> web.StreamResponse:
        """A stored file's bytes, as its store serves them: a local file, a stream or a redirect."""
        try:
            download = await self.store.download(stored.path, stored.filename)
        except FileNotFoundError:
            raise NotFound(f"No file {stored.filename!r} here.", reason="no_file") from None
        return await answer_download(request, download, headers, etag=f'"{stored.sha256}"')

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")
