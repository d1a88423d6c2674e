"""The simple index's data: one indexed lookup for the project's serial, one query for its files.

Rendered pages and file lookups are cached in the process. A cached answer is used without asking
the database for at most `recheck_seconds` after it was last checked, and never after a commit made
by this process since then (uploads, yanks and deletions here are seen at once; the app calls
`changed_here` after every commit). A page is checked by its project's serial, which every change
bumps in the same transaction as the change, so a change made by another replica (or the admin
CLI) shows within `recheck_seconds`. A file whose blob a deletion elsewhere removed is a 404 at
once: serving it opens the blob.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

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
    serial: int


@dataclasses.dataclass(frozen=True)
class StoredFile:
    filename: str
    path: str
    size: int
    sha256: str
    metadata_sha256: str | None
    metadata: bytes | None  # loaded only when asked for


T = TypeVar("T")


@dataclasses.dataclass
class _Checked(Generic[T]):
    value: T
    checked_at: float  # time.monotonic() just before the database was asked
    commits: int  # IndexService._commits at that moment


@dataclasses.dataclass
class _ProjectPages:
    id: str
    serial: int
    pages: dict[str, Page]  # by kind: "json", "html"


class _Recent(Generic[T]):
    """A bounded LRU of answers and when the database last confirmed each."""

    def __init__(self, size: int):
        self.size = size
        self._entries: collections.OrderedDict[object, _Checked[T]] = collections.OrderedDict()

    def get(self, key: object) -> _Checked[T] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: object, entry: _Checked[T]) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def pop(self, key: object) -> None:
        self._entries.pop(key, None)


class IndexService:
    def __init__(self, *, db: async_sessionmaker, transactions: Transactions, cache_projects: int = 2048,
                 cache_files: int = 16384, recheck_seconds: float = 1.0):
        self.db = db
        self.transactions = transactions
        self.recheck_seconds = recheck_seconds
        self._pages: _Recent[_ProjectPages] = _Recent(cache_projects)
        self._files: _Recent[StoredFile] = _Recent(cache_files)
        self._commits = 0
        self._checks: dict[Hashable, asyncio.Future[Any]] = {}

    def changed_here(self) -> None:
        """A transaction of this process committed: every cached answer is checked again before use."""
        self._commits += 1

    def _fresh(self, entry: _Checked) -> bool:
        return entry.commits == self._commits and time.monotonic() - entry.checked_at < self.recheck_seconds

    async def _shared(self, key: Hashable, check: Callable[[], Awaitable[T]]) -> T:
        """`check()`, run once for every caller that asks for `key` while it runs: a burst of
        requests for a page whose entry just expired makes one trip to the database. The key holds
        the commit count, so a check begun before a commit of this process serves nobody after it."""
        key = (key, self._commits)
        running = self._checks.get(key)
        if running is None:
            running = asyncio.ensure_future(check())
            self._checks[key] = running
            running.add_done_callback(lambda done: self._checked(key, done))
        return await asyncio.shield(running)

    def _checked(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        self._checks.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved here too: every caller may have gone

    def _stamp(self) -> tuple[float, int]:
        """(time, commits) as of now: taken before asking the database, kept with its answer."""
        return time.monotonic(), self._commits

    async def project_head(self, normalized_name: str):
        """(id, name, serial) of the live project, or None."""
        return await self.transactions.read(
            lambda session: session.connection().execute(PROJECT_HEAD, {"name": normalized_name}).first())

    async def project_page(self, normalized_name: str, fmt: str) -> Page | None:
        kind = "json" if fmt == "json" else "html"
        entry = self._pages.get(normalized_name)
        if entry is None or not self._fresh(entry) or kind not in entry.value.pages:
            entry = await self._shared(("page", normalized_name, kind),
                                       lambda: self._check_page(normalized_name, entry, kind))
            if entry is None:
                return None
        return entry.value.pages[kind]

    async def _check_page(self, name: str, entry: _Checked[_ProjectPages] | None,
                          kind: str) -> _Checked[_ProjectPages] | None:
        """The project's pages confirmed against the database: the cached ones while its serial is
        unchanged, else rendered afresh (serial and rows read in one transaction)."""
        stamp = self._stamp()
        if entry is not None and kind in entry.value.pages:
            head = await self.project_head(name)
            if head is not None and (head.id, head.serial) == (entry.value.id, entry.value.serial):
                confirmed = _Checked(entry.value, *stamp)
                self._pages.put(name, confirmed)
                return confirmed
        head, body = await self.transactions.read(lambda session: self._render(session, name, kind))
        if head is None:
            self._pages.pop(name)
            return None
        if entry is not None and (entry.value.id, entry.value.serial) == (head.id, head.serial):
            pages = entry.value
        else:
            pages = _ProjectPages(head.id, head.serial, {})
        pages.pages[kind] = Page(body, f'"{head.id}-{head.serial}-{kind}"', head.serial)
        rendered = _Checked(pages, *stamp)
        self._pages.put(name, rendered)
        return rendered

    @staticmethod
    def _render(session, normalized_name: str, kind: str):
        """(head, body) of the project's page of this kind, or (None, b"") when it has gone."""
        conn = session.connection()
        head = conn.execute(PROJECT_HEAD, {"name": normalized_name}).first()
        if head is None:
            return None, b""
        files, versions = [], []
        for row in conn.execute(PROJECT_ROWS, {"project_id": head.id}):
            versions.append(row.version)
            if row.filename is not None:
                files.append(render.FileRow(
                    filename=row.filename, path=row.path, sha256=row.sha256, size=row.size,
                    uploaded_at=row.uploaded_at, requires_python=row.requires_python,
                    metadata_sha256=row.metadata_sha256, version=row.version, yanked=row.yanked,
                    yanked_reason=row.yanked_reason or ""))
        files, versions = render.sort_rows(files, versions)
        if kind == "json":
            return head, render.project_json(normalized_name, head.serial, files, versions)
        return head, render.project_html(normalized_name, head.serial, files)

    async def root_page(self, fmt: str) -> bytes:
        async with self.db() as session:
            rows = (await session.execute(select(Project.name, Project.normalized_name).where(
                Project.deleted_at.is_(None)).order_by(Project.normalized_name))).all()
        projects = [(r.name, r.normalized_name) for r in rows]
        return render.root_json(projects) if fmt == "json" else render.root_html(projects)

    async def find_file(self, path: str, filename: str, *, with_metadata: bool = False) -> StoredFile | None:
        """The live file stored under `path` with this filename (downloads and `.metadata`). Lookups
        for downloads are cached (their metadata, up to megabytes each, is not)."""
        if with_metadata:
            return await self._find_file(path, filename, with_metadata=True)
        entry = self._files.get((path, filename))
        if entry is not None and self._fresh(entry):
            return entry.value
        return await self._shared(("file", path, filename), lambda: self._find_file(path, filename))

    async def _find_file(self, path: str, filename: str, *, with_metadata: bool = False) -> StoredFile | None:
        stamp = self._stamp()
        columns = [File.filename, File.path, File.size, File.sha256, File.metadata_sha256]
        if with_metadata:
            columns.append(File.metadata_content)
        async with self.db() as session:
            row = (await session.execute(select(*columns).where(
                File.path == path, File.filename == filename, File.deleted_at.is_(None)))).first()
        if row is None:
            self._files.pop((path, filename))
            return None
        stored = StoredFile(filename=row.filename, path=row.path, size=row.size, sha256=row.sha256,
                            metadata_sha256=row.metadata_sha256,
                            metadata=row.metadata_content if with_metadata else None)
        if not with_metadata:
            self._files.put((path, filename), _Checked(stored, *stamp))
        return stored
