"""The simple index over HTTP: `/simple/`, `/simple/<project>/` and the files under `/files/`.

Content negotiation follows PEP 691 (`Vary: Accept`); pages carry an ETag derived from the
project's serial so clients revalidate cheaply. Files are immutable (their URL contains the
content hash) and are served with the operating system's sendfile.
"""

from __future__ import annotations

from aiohttp import web
from packaging.utils import canonicalize_name

from uploadgw.authclient import AuthClient
from uploadgw.errors import NotAcceptable, NotFound
from uploadgw.http import credentials
from uploadgw.http.download import answer_download
from uploadgw.http.upload import origin_of
from uploadgw.index import render
from uploadgw.index.service import IndexService
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
        return {
            "Content-Type": render.CONTENT_TYPES[fmt],
            "Vary": "Accept, Authorization" if self.private else "Accept",
            "Cache-Control": ("private" if self.private else "public") + ", max-age=0, must-revalidate",
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
        if page.etag in (request.headers.get("If-None-Match") or ""):
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
            return web.Response(body=stored.metadata, headers={
                "Content-Type": "text/plain; charset=utf-8", "Cache-Control": cache,
                "ETag": f'"{stored.metadata_sha256}"', "X-Content-Type-Options": "nosniff"})
        stored = await self.index.find_file(path, filename)
        if stored is None:
            raise NotFound(f"No file {filename!r} here.", reason="no_file")
        headers = {
            "Content-Type": next(t for ext, t in FILE_TYPES.items() if stored.filename.endswith(ext)),
            "Cache-Control": cache,
            "Content-Disposition": f'attachment; filename="{stored.filename}"',
            "X-Content-Type-Options": "nosniff",
        }
        try:
            download = await self.store.download(stored.path, stored.filename)
        except FileNotFoundError:
            raise NotFound(f"No file {filename!r} here.", reason="no_file") from None
        return await answer_download(request, download, headers)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")
