"""The simple index's data: one indexed lookup for the project's serial, one query for its files.

Rendered pages are cached per project and format, keyed by the project's serial, which every
change bumps in the same transaction as the change; so a cached page is served only while it is
exactly what the database would render, on every replica.
"""

from __future__ import annotations

import collections
import dataclasses

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from gatehouse.infra.transactions import Transactions
from uploadgw.index import render
from uploadgw.models import File, Project, Release

_projects, _releases, _files = Project.__table__, Release.__table__, File.__table__
PROJECT_HEAD = select(_projects.c.id, _projects.c.name, _projects.c.serial).where(
    _projects.c.normalized_name == bindparam("name"), _projects.c.deleted_at.is_(None))
# One query for the whole page: every live release, with its live files (if any).
PROJECT_ROWS = (
    select(_releases.c.version, _releases.c.yanked, _releases.c.yanked_reason, _files.c.filename, _files.c.path,
           _files.c.sha256, _files.c.size, _files.c.uploaded_at, _files.c.requires_python, _files.c.metadata_sha256)
    .select_from(_releases)
    .outerjoin(_files, and_(_files.c.release_id == _releases.c.id, _files.c.deleted_at.is_(None)))
    .where(_releases.c.project_id == bindparam("project_id"), _releases.c.deleted_at.is_(None))
)


@dataclasses.dataclass(frozen=True)
class Page:
    body: bytes
    etag: str


@dataclasses.dataclass(frozen=True)
class StoredFile:
    filename: str
    path: str
    size: int
    sha256: str
    metadata_sha256: str | None
    metadata: bytes | None  # loaded only when asked for


class IndexService:
    def __init__(self, *, db: async_sessionmaker, transactions: Transactions, cache_projects: int = 2048):
        self.db = db
        self.transactions = transactions
        self.cache_projects = cache_projects
        self._cache: collections.OrderedDict[str, tuple[int, dict[str, bytes]]] = collections.OrderedDict()

    async def project_head(self, normalized_name: str):
        """(id, name, serial) of the live project, or None."""
        return await self.transactions.read(
            lambda session: session.connection().execute(PROJECT_HEAD, {"name": normalized_name}).first())

    async def project_page(self, normalized_name: str, fmt: str) -> Page | None:
        head = await self.project_head(normalized_name)
        if head is None:
            return None
        kind = "json" if fmt == "json" else "html"
        etag = f'"{head.id}-{head.serial}-{kind}"'
        cached = self._cache.get(head.id)
        if cached is not None and cached[0] == head.serial and kind in cached[1]:
            self._cache.move_to_end(head.id)
            return Page(cached[1][kind], etag)
        body = await self._render(head, normalized_name, kind)
        if cached is None or cached[0] != head.serial:
            cached = (head.serial, {})
        cached[1][kind] = body
        self._cache[head.id] = cached
        self._cache.move_to_end(head.id)
        while len(self._cache) > self.cache_projects:
            self._cache.popitem(last=False)
        return Page(body, etag)

    async def _render(self, head, normalized_name: str, kind: str) -> bytes:
        rows = await self.transactions.read(
            lambda session: session.connection().execute(PROJECT_ROWS, {"project_id": head.id}).all())
        files, versions = [], []
        for row in rows:
            versions.append(row.version)
            if row.filename is not None:
                files.append(render.FileRow(
                    filename=row.filename, path=row.path, sha256=row.sha256, size=row.size,
                    uploaded_at=row.uploaded_at, requires_python=row.requires_python,
                    metadata_sha256=row.metadata_sha256, version=row.version, yanked=row.yanked,
                    yanked_reason=row.yanked_reason or ""))
        files, versions = render.sort_rows(files, versions)
        if kind == "json":
            return render.project_json(normalized_name, head.serial, files, versions)
        return render.project_html(normalized_name, head.serial, files)

    async def root_page(self, fmt: str) -> bytes:
        async with self.db() as session:
            rows = (await session.execute(select(Project.name, Project.normalized_name).where(
                Project.deleted_at.is_(None)).order_by(Project.normalized_name))).all()
        projects = [(r.name, r.normalized_name) for r in rows]
        return render.root_json(projects) if fmt == "json" else render.root_html(projects)

    async def find_file(self, path: str, filename: str, *, with_metadata: bool = False) -> StoredFile | None:
        """The live file stored under `path` with this filename (downloads and `.metadata`)."""
        columns = [File.filename, File.path, File.size, File.sha256, File.metadata_sha256]
        if with_metadata:
            columns.append(File.metadata_content)
        async with self.db() as session:
            row = (await session.execute(select(*columns).where(
                File.path == path, File.filename == filename, File.deleted_at.is_(None)))).first()
        if row is None:
            return None
        return StoredFile(filename=row.filename, path=row.path, size=row.size, sha256=row.sha256,
                          metadata_sha256=row.metadata_sha256,
                          metadata=row.metadata_content if with_metadata else None)
