"""Managing what was uploaded: yank/unyank and delete releases and files, remove a whole project.

Permission is the caller's business (authsvc CheckPermission for Owners on pages; the operator
CLI calls directly). Every removal runs in three resumable steps: (1) one transaction marks the
rows deleted (they vanish from the index at once), bumps the project serial and writes the
events; (2) the blobs are removed; (3) the marked rows are dropped. A crash between steps leaves
marked rows that `finish_pending` (run by every replica's sweeper, and by re-running the action)
completes; the used filenames stay recorded for ever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion
from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gatehouse.infra.clock import Clock
from gatehouse.infra.outbox import SYSTEM, ActorRef, EventEmitter, Origin
from uploadgw.errors import InvalidUpload, NotFound
from uploadgw.models import File, Project, ProjectLimits, Release
from uploadgw.storage.filestore import FileStore

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RemovalReport:
    files: int
    releases: int


def canonical(name: str) -> str:
    return canonicalize_name(name)


def canonical_version(version: str) -> str:
    try:
        return canonicalize_version(version)
    except InvalidVersion:
        raise InvalidUpload(f"{version!r} is not a valid version.", reason="bad_version") from None


class ReleaseService:
    def __init__(self, *, db: async_sessionmaker, store: FileStore, events: EventEmitter, clock: Clock):
        self.db = db
        self.store = store
        self.events = events
        self.clock = clock

    # -- lookups ---------------------------------------------------------------------------------
    async def _live_project(self, session: AsyncSession, project_name: str) -> Project:
        project = (await session.execute(select(Project).where(
            Project.normalized_name == canonical(project_name), Project.deleted_at.is_(None)))).scalar_one_or_none()
        if project is None:
            raise NotFound(f"No project named {project_name!r} has files here.", reason="no_project")
        return project

    async def _live_release(self, session: AsyncSession, project: Project, version: str) -> Release:
        release = (await session.execute(select(Release).where(
            Release.project_id == project.id, Release.canonical_version == canonical_version(version),
            Release.deleted_at.is_(None)))).scalar_one_or_none()
        if release is None:
            raise NotFound(f"Project {project.name!r} has no release {version!r}.", reason="no_release")
        return release

    @staticmethod
    async def _bump(session: AsyncSession, project_id: str, freed: int = 0) -> None:
        await session.execute(update(Project).where(Project.id == project_id).values(
            serial=Project.serial + 1, total_size=Project.total_size - freed))

    # -- yank --------------------------------------------------------------------------------------
    async def set_yanked(self, project_name: str, version: str, *, yanked: bool, reason: str = "",
                         actor: ActorRef, origin: Origin | None = None) -> None:
        """PEP 592: a yanked release stays installable by exact pin but is skipped by resolvers."""
        reason = " ".join(reason.split())[:500]
        async with self.db.begin() as session:
            project = await self._live_project(session, project_name)
            release = await self._live_release(session, project, version)
            if release.yanked == yanked and (not yanked or release.yanked_reason == reason):
                return
            release.yanked = yanked
            release.yanked_reason = reason if yanked else ""
            await self._bump(session, project.id)
            tag = "project:release:yank" if yanked else "project:release:unyank"
            details = {"version": release.version, "canonical_version": release.canonical_version}
            if yanked:
                details["yanked_reason"] = reason
            await self.events.emit(session, tag, actor=actor, project=(project.id, project.name), origin=origin,
                                   details=details)

    # -- delete ------------------------------------------------------------------------------------
    async def delete_file(self, project_name: str, filename: str, *, actor: ActorRef,
                          origin: Origin | None = None) -> RemovalReport:
        async with self.db.begin() as session:
            project = await self._live_project(session, project_name)
            row = (await session.execute(select(File, Release.version).join(Release, Release.id == File.release_id)
                                         .where(File.project_id == project.id, File.filename == filename,
                                                File.deleted_at.is_(None)))).first()
            if row is None:
                raise NotFound(f"Project {project.name!r} has no file {filename!r}.", reason="no_file")
            file, version = row
            file.deleted_at = self.clock.now()
            await self._bump(session, project.id, file.size)
            await self.events.emit(session, "project:file:remove", actor=actor, project=(project.id, project.name),
                                   origin=origin, details={"filename": filename, "version": version,
                                                           "sha256": file.sha256})
        await self.finish_pending(project_id=project.id)
        return RemovalReport(files=1, releases=0)

    async def delete_release(self, project_name: str, version: str, *, actor: ActorRef,
                             origin: Origin | None = None) -> RemovalReport:
        async with self.db.begin() as session:
            project = await self._live_project(session, project_name)
            release = await self._live_release(session, project, version)
            count, freed = await self._mark_release(session, release)
            await self._bump(session, project.id, freed)
            await self.events.emit(session, "project:release:remove", actor=actor,
                                   project=(project.id, project.name), origin=origin,
                                   details={"version": release.version, "canonical_version": release.canonical_version,
                                            "files": count})
        await self.finish_pending(project_id=project.id)
        return RemovalReport(files=count, releases=1)

    async def _mark_release(self, session: AsyncSession, release: Release) -> tuple[int, int]:
        now = self.clock.now()
        files = (await session.execute(select(File.id, File.size).where(
            File.release_id == release.id, File.deleted_at.is_(None)))).all()
        if files:
            await session.execute(update(File).where(File.release_id == release.id, File.deleted_at.is_(None))
                                  .values(deleted_at=now))
        release.deleted_at = now
        return len(files), sum(f.size for f in files)

    async def live_project_name(self, project_id: str) -> str | None:
        """The normalised name of the (not deleted) project with authsvc's id `project_id`, or None."""
        async with self.db() as session:
            return await session.scalar(select(Project.normalized_name)
                                        .where(Project.id == project_id, Project.deleted_at.is_(None)))

    async def purge_project(self, project_id: str | None = None, *, project_name: str | None = None,
                            reason: str = "project deleted") -> RemovalReport:
        """Remove every release and file of a project (deleted in authsvc). Idempotent, resumable.

        Identify the project by authsvc's id (preferred: a re-created project of the same name has a
        new id) or by name. Unknown projects are not an error: there is nothing to remove."""
        ids, report = await self.mark_project_deleted(project_id, project_name=project_name, reason=reason)
        for pid in ids:
            await self.finish_pending(project_id=pid)
        return report

    async def mark_project_deleted(self, project_id: str | None = None, *, project_name: str | None = None,
                                   reason: str = "project deleted") -> tuple[list[str], RemovalReport]:
        """Step 1 of removing a project: hide it and mark its releases and files, with the events."""
        releases_marked = files_marked = 0
        async with self.db.begin() as session:
            query = select(Project)
            if project_id is not None:
                query = query.where(Project.id == project_id)
            elif project_name is not None:
                query = query.where(Project.normalized_name == canonical(project_name))
            else:
                raise ValueError("a project id or name is needed")
            projects = (await session.execute(query)).scalars().all()
            for project in projects:
                if project.deleted_at is not None:
                    continue
                now = self.clock.now()
                project.deleted_at = now
                project.serial += 1
                releases = (await session.execute(select(Release).where(
                    Release.project_id == project.id, Release.deleted_at.is_(None)))).scalars().all()
                for release in releases:
                    count, _freed = await self._mark_release(session, release)
                    files_marked += count
                    releases_marked += 1
                    await self.events.emit(session, "project:release:remove", actor=SYSTEM,
                                           project=(project.id, project.name),
                                           details={"version": release.version, "files": count, "cause": reason})
                leftover = (await session.execute(update(File).where(
                    File.project_id == project.id, File.deleted_at.is_(None)).values(deleted_at=now))).rowcount
                files_marked += leftover or 0
            ids = [p.id for p in projects]
        return ids, RemovalReport(files=files_marked, releases=releases_marked)

    # -- the resumable tail --------------------------------------------------------------------------
    async def finish_pending(self, *, project_id: str | None = None, batch: int = 500) -> int:
        """Remove the blobs of rows marked deleted, then the rows. Safe to run anywhere, any time."""
        removed = 0
        while True:
            async with self.db() as session:
                query = select(File.id, File.path).where(File.deleted_at.is_not(None))
                if project_id is not None:
                    query = query.where(File.project_id == project_id)
                rows = (await session.execute(query.limit(batch))).all()
            if not rows:
                break
            await asyncio.gather(*(self.store.delete(row.path) for row in rows))
            async with self.db.begin() as session:
                await session.execute(delete(File).where(File.id.in_([r.id for r in rows]),
                                                         File.deleted_at.is_not(None)))
            removed += len(rows)
        async with self.db.begin() as session:
            gone_releases = select(Release.id).where(
                Release.deleted_at.is_not(None), ~exists().where(File.release_id == Release.id))
            if project_id is not None:
                gone_releases = gone_releases.where(Release.project_id == project_id)
            await session.execute(delete(Release).where(Release.id.in_(gone_releases)))
            gone_projects = select(Project.id).where(
                Project.deleted_at.is_not(None), ~exists().where(Release.project_id == Project.id),
                ~exists().where(File.project_id == Project.id))
            if project_id is not None:
                gone_projects = gone_projects.where(Project.id == project_id)
            await session.execute(delete(Project).where(Project.id.in_(gone_projects)))
        return removed

    async def delete_blob_if_unreferenced(self, key: str) -> bool:
        async with self.db() as session:
            used = (await session.execute(select(File.id).where(File.path == key).limit(1))).first()
        if used is None:
            await self.store.delete(key)
            return True
        return False

    async def collect_unrecorded(self, min_age_seconds: float) -> int:
        """Pending blobs stored at least this long ago (their upload died between storing and
        recording, or its cleanup failed): removed unless a row names them; either way settled."""
        keys = await self.store.pending(min_age_seconds)
        removed = 0
        for key in keys:
            removed += await self.forget_unrecorded(key)
        return removed

    async def forget_unrecorded(self, key: str) -> bool:
        """A pending blob whose record failed or never happened: removed unless a row names it (a
        commit whose outcome went unheard), then no longer pending. True when it was removed."""
        removed = await self.delete_blob_if_unreferenced(key)
        await self.store.settle(key)
        return removed

    async def collect_orphan_blobs(self, min_age_seconds: float = 24 * 3600) -> int:
        """Every blob no row refers to, pending or not, by age (a full scan of the store)."""
        keys = await self.store.keys(min_age_seconds)
        removed = 0
        for key in keys:
            if await self.delete_blob_if_unreferenced(key):
                removed += 1
        return removed

    # -- limits ----------------------------------------------------------------------------------------
    async def set_limits(self, project_name: str, *, file_size_limit: int | None,
                         total_size_limit: int | None) -> None:
        """Per-project overrides of the size limits (None: back to the default)."""
        for value in (file_size_limit, total_size_limit):
            if value is not None and value <= 0:
                raise InvalidUpload("A size limit must be a positive number of bytes.", reason="bad_limit")
        name = canonical(project_name)
        async with self.db.begin() as session:
            row = await session.get(ProjectLimits, name)
            if file_size_limit is None and total_size_limit is None:
                if row is not None:
                    await session.delete(row)
                return
            if row is None:
                session.add(ProjectLimits(normalized_name=name, file_size_limit=file_size_limit,
                                          total_size_limit=total_size_limit, updated_at=self.clock.now()))
            else:
                row.file_size_limit = file_size_limit
                row.total_size_limit = total_size_limit
                row.updated_at = self.clock.now()

    async def get_limits(self, project_name: str) -> tuple[int | None, int | None]:
        async with self.db() as session:
            row = await session.get(ProjectLimits, canonical(project_name))
        return (row.file_size_limit, row.total_size_limit) if row else (None, None)
