"""Accepting one upload: `UploadService.upload` authorises it, receives its bytes, checks them,
records them, and discards whatever was not recorded.

Authorise: the form and filename are valid and authsvc says this token may upload to this project
(the database is read meanwhile); cheap refusals come before any file byte is used. Receive: the
bytes are hashed into a spool, bounded by the project's limits. Check: the bytes match the digests
the client sent and are not already there; then the archive's contents are examined (in a worker
thread) and its bytes stored durably, by the file store, under a key of this upload's own. Record: the file, its
release and their events are written in one transaction. A blob is reachable only through its row,
so nothing is visible before that commit; a failure at any point removes the blob (a crash leaves
it pending, for the sweeper) and leaves no row behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterable, Coroutine
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from gatehouse.infra.clock import Clock
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin
from gatehouse.infra.transactions import Transactions
from uploadgw.authclient import AuthClient, UploadIdentity
from uploadgw.errors import Conflict, InvalidUpload, TooLarge
from uploadgw.models import ProjectLimits, new_id
from uploadgw.releases.service import ReleaseService
from uploadgw.storage.filestore import FileStore
from uploadgw.uploads import archive
from uploadgw.uploads import statements as sql
from uploadgw.uploads.form import UploadForm, check_filename, collect_fields, parse_form
from uploadgw.uploads.spool import Digests, SizeExceeded, Spool, check_digests

log = logging.getLogger(__name__)
MIB = 1024 * 1024
# The sweeper removes unrecorded blobs older than the temporary-file age; an upload whose blob is
# older than this share of that age is not recorded (so the sweeper can never remove a recorded one).
PUBLISH_WITHIN_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class SizeLimits:
    max_file_size: int
    max_project_size: int


@dataclasses.dataclass(frozen=True)
class Precheck:
    """What the database says before the bytes are read (advisory: the commit re-checks)."""

    file_limit: int | None
    total_limit: int | None
    total_size: int | None
    live_project_id: str | None
    filename_used: bool
    live_sha256: str | None       # a live file with this filename: its digests
    live_blake2_256: str | None
    release_has_sdist: bool


@dataclasses.dataclass
class Ticket:
    """An authorised upload in progress."""

    form: UploadForm
    filename: str
    identity: UploadIdentity
    origin: Origin
    file_limit: int
    project_limit: int
    project_used: int
    existing: Precheck

    @property
    def spool_limit(self) -> int:
        return max(0, min(self.file_limit, self.project_limit - self.project_used))


@dataclasses.dataclass(frozen=True)
class Checked:
    """An archive found sound, its bytes stored (pending) under `key`, awaiting their row."""

    info: archive.ArchiveInfo
    key: str
    stored_at: float  # seconds since the epoch, by the service's clock


@dataclasses.dataclass(frozen=True)
class UploadOutcome:
    created: bool          # False: the identical file was already there; nothing new stored
    filename: str
    sha256: str
    project: str           # for the access log line
    size: int
    token_id: str


def uploaded_by(ident: UploadIdentity) -> tuple[ActorRef, dict[str, str]]:
    """The upload's actor, and the event details that name a trusted publisher and its CI run
    (repository, workflow, ref, sha, …) when the token was minted for one."""
    if ident.publisher is None:
        return ActorRef.user(ident.user_id, ident.username), {}
    publisher = ident.publisher
    details = {"publisher_id": publisher.id, "publisher": publisher.display, "publisher_kind": publisher.kind,
               "issuer": publisher.issuer_url}
    details.update({f"claim_{name}": value for name, value in publisher.run_claims.items()})
    return ActorRef.publisher(publisher.id, publisher.display), details


def human_size(n: int) -> str:
    for unit, size in (("GiB", 1024 ** 3), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            text = f"{n / size:.1f}"
            return f"{text[:-2] if text.endswith('.0') else text} {unit}"
    return f"{n} bytes"


class UploadService:
    def __init__(self, *, db: async_sessionmaker, transactions: Transactions, store: FileStore, auth: AuthClient,
                 events: EventEmitter, clock: Clock, limits: SizeLimits, archive_limits: archive.ArchiveLimits,
                 releases: ReleaseService, pending_max_age: float):
        self.db = db
        self.transactions = transactions
        self.store = store
        self.auth = auth
        self.events = events
        self.clock = clock
        self.limits = limits
        self.archive_limits = archive_limits
        self.releases = releases
        self.publish_within = pending_max_age * PUBLISH_WITHIN_SHARE
        self._cleanups: set[asyncio.Task] = set()

    async def upload(self, fields: list[tuple[str, str]], filename: str, content: AsyncIterable[bytes], *,
                     token: str, origin: Origin, remaining: int | None) -> UploadOutcome:
        """One upload: authorise, receive, check, record. `fields` are the form's metadata fields,
        `content` the file's bytes (read only once authorised), `remaining` the body's declared
        length after the fields (None when not declared)."""
        form = parse_form(collect_fields(fields))
        ticket = await self.authorize(form, filename, token, origin, remaining)
        spool = Spool(self.store.scratch, limit=ticket.spool_limit, want_md5=form.md5_digest is not None)
        try:
            try:
                async for chunk in content:
                    await spool.write(chunk)
            except SizeExceeded:
                raise self.size_error(ticket) from None
            digests = await spool.finish()
            self._check_received(ticket, digests)
            live = ticket.existing
            if live.live_sha256 is not None:
                if live.live_sha256 == digests.sha256 and live.live_blake2_256 == digests.blake2_256:
                    return self._outcome(ticket, digests, created=False)
                raise self._exists(ticket.filename, live.live_sha256)
            source = spool.data if spool.data is not None else spool.temp_path
            checked = await self.check_and_store(form, filename, source, digests.size, digests.sha256)
        finally:
            # A checked file was taken by the store; anything else of this upload is removed.
            await spool.discard()
        return await self.record(ticket, digests, checked)

    # -- authorise ---------------------------------------------------------------------------------
    async def authorize(self, form: UploadForm, filename: str, token: str, origin: Origin,
                        remaining: int | None) -> Ticket:
        """Validate the filename, ask authsvc (and, meanwhile, the database), refuse what can be
        refused before the bytes are used."""
        check_filename(filename, form)
        verification = asyncio.ensure_future(self.auth.verify_upload(token, form.name, origin, form.version))
        try:
            state = await self._precheck(form, filename)
        except BaseException:
            verification.cancel()
            await asyncio.gather(verification, return_exceptions=True)
            raise
        identity = await verification
        if state.live_project_id and state.live_project_id != identity.project_id:
            # The name belongs to a project deleted in authsvc whose files are still here: finish that.
            await self.releases.purge_project(state.live_project_id, reason="replaced")
            state = await self._precheck(form, filename)
        ticket = Ticket(form=form, filename=filename, identity=identity, origin=origin,
                        file_limit=state.file_limit or self.limits.max_file_size,
                        project_limit=state.total_limit or self.limits.max_project_size,
                        project_used=state.total_size or 0, existing=state)
        if state.filename_used and state.live_sha256 is None:
            raise self._filename_reused()
        if form.filetype == "sdist" and state.release_has_sdist and state.live_sha256 is None:
            raise self._second_sdist()
        if remaining is not None and remaining > ticket.spool_limit + 8 * 1024:
            raise self.size_error(ticket, remaining)
        return ticket

    async def _precheck(self, form: UploadForm, filename: str) -> Precheck:
        params = {"name": form.canonical_name, "filename": filename, "version": form.canonical_version}
        row = await self.transactions.read_sql(lambda conn: sql.PRECHECK.execute(conn, params))
        assert row is not None  # a SELECT of scalar subqueries: always one row
        return Precheck(file_limit=row[0], total_limit=row[1], total_size=row[2], live_project_id=row[3],
                        filename_used=bool(row[4]), live_sha256=row[5], live_blake2_256=row[6],
                        release_has_sdist=bool(row[7]))

    async def largest_file_limit(self) -> int:
        """The largest per-file limit of any project (for refusing a huge body from its headers)."""
        async with self.db() as session:
            largest = (await session.execute(select(func.max(ProjectLimits.file_size_limit)))).scalar()
        return max(self.limits.max_file_size, largest or 0)

    def size_error(self, ticket: Ticket, size: int | None = None) -> TooLarge:
        """The 413 for an upload that does not fit: the file limit or the project's remaining room."""
        name = ticket.identity.project_name
        room = ticket.project_limit - ticket.project_used
        if room < ticket.file_limit and (size is None or size > room):
            return TooLarge(f"Project size too large. Limit for project {name!r} total size is "
                            f"{human_size(ticket.project_limit)}; {human_size(ticket.project_used)} is used.",
                            reason="project_too_large")
        return TooLarge(f"File too large. Limit for project {name!r} is {human_size(ticket.file_limit)}.",
                        reason="file_too_large")

    @staticmethod
    def _outcome(ticket: Ticket, digests: Digests, *, created: bool) -> UploadOutcome:
        return UploadOutcome(created=created, filename=ticket.filename, sha256=digests.sha256,
                             project=ticket.identity.project_name, size=digests.size,
                             token_id=ticket.identity.token_id)

    @staticmethod
    def _filename_reused() -> InvalidUpload:
        return InvalidUpload("This filename has already been used, use a different version.",
                             reason="filename_reused")

    @staticmethod
    def _second_sdist() -> InvalidUpload:
        return InvalidUpload("Only one sdist may be uploaded per release.", reason="second_sdist")

    @staticmethod
    def _exists(filename: str, sha256: str) -> InvalidUpload:
        return InvalidUpload(f"File already exists ({filename!r}, with sha256 hash {sha256!r}). A file cannot be "
                             f"replaced: upload it under a new version.", reason="file_exists")

    # -- check ----------------------------------------------------------------------------------------
    async def check_and_store(self, form: UploadForm, filename: str, source: str | bytes, size: int,
                              sha256: str) -> Checked:
        """Look inside the archive (in a worker thread), then store its bytes durably under a new
        key (pending: no row names it yet); a refused archive is never stored. `source` is the bytes
        themselves, or a scratch file's path (the store takes the file)."""
        stored_at = self.clock.now().timestamp()
        info = await asyncio.to_thread(self.examine, form, filename, source, size)
        return Checked(info=info, key=await self.store.store(sha256, source), stored_at=stored_at)

    def examine(self, form: UploadForm, filename: str, source: str | bytes, size: int) -> archive.ArchiveInfo:
        """The archive's contents checked and its metadata matched with the form (blocking)."""
        info = archive.inspect(source, filename=filename, filetype=form.filetype, size=size,
                               limits=self.archive_limits)
        return archive.check_metadata(info, canonical_name=form.canonical_name, version=form.parsed_version,
                                      form_name=form.name)

    def _check_received(self, ticket: Ticket, digests: Digests) -> None:
        """The bytes received fit the limits, match every digest the client sent, and are not empty."""
        if digests.size > ticket.spool_limit:
            raise self.size_error(ticket, digests.size)
        form = ticket.form
        check_digests(digests, md5=form.md5_digest, sha256=form.sha256_digest, blake2_256=form.blake2_256_digest)
        if digests.size == 0:
            raise InvalidUpload("Upload payload is empty.", reason="empty_file")

    # -- record -----------------------------------------------------------------------------------
    async def record(self, ticket: Ticket, digests: Digests, checked: Checked) -> UploadOutcome:
        """The file's row, release and events committed; then its blob settled, or removed when the
        commit failed or an identical file won the race."""
        # Shielded: a cancelled request must not cut a transaction off half way (a commit on a worker
        # thread, or on PostgreSQL, may still be under way); the blob is dealt with once it is over.
        recording = asyncio.ensure_future(self._record(ticket, digests, checked))
        try:
            outcome = await asyncio.shield(recording)
        finally:
            if recording.done():
                await self._after_record(recording, checked.key)
            else:  # this request was cancelled while its record goes on
                self._in_background(self._after_record(recording, checked.key))
        return outcome

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run after this request's response (kept referenced until done; a failure leaves the blob
        pending, for the sweeper)."""
        async def run() -> None:
            try:
                await work
            except Exception:  # noqa: BLE001 - still pending: the sweeper collects it
                log.exception("could not settle or remove a blob")

        task = asyncio.ensure_future(run())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def finish_background(self) -> None:
        """At shutdown, before the store closes: let blobs still being settled or removed finish."""
        while self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)

    async def _after_record(self, recording: asyncio.Future, key: str) -> None:
        """The blob once its record is over: settled when its row committed; removed when this
        upload's row was rolled back (a concurrent upload recorded the identical file); after a
        failure, removed unless a row names it after all (an error may come after a commit whose
        outcome the driver did not learn)."""
        if not recording.done():
            await asyncio.wait([recording])
        if not recording.cancelled() and recording.exception() is None:
            # In the background: after this request's response has gone out (if the process dies
            # first, the sweeper settles a recorded blob and removes an unrecorded one).
            self._in_background(self.store.settle(key) if recording.result().created else self.store.discard(key))
            return
        try:
            await self.releases.forget_unrecorded(key)
        except Exception:  # noqa: BLE001 - still pending: the sweeper collects it
            log.exception("could not remove an unrecorded blob", extra={"key": key})

    async def _record(self, ticket: Ticket, digests: Digests, checked: Checked) -> UploadOutcome:
        for _attempt in range(3):
            try:
                return await self.transactions.run_sql(
                    lambda conn: self._record_in(conn, ticket, digests, checked))  # logged with the request
            except IntegrityError:
                # A concurrent upload won a race (same filename, an sdist, a new release or project row).
                outcome = await self._explain_conflict(ticket, digests)
                if outcome is not None:
                    return outcome
        raise Conflict("The project changed while this file was being recorded; upload it again.",
                       reason="record_race")

    async def _explain_conflict(self, ticket: Ticket, digests: Digests) -> UploadOutcome | None:
        """After a failed commit: the answer it implies, or None to try again."""
        state = await self._precheck(ticket.form, ticket.filename)
        if state.live_sha256 is not None:
            if state.live_sha256 == digests.sha256 and state.live_blake2_256 == digests.blake2_256:
                return self._outcome(ticket, digests, created=False)
            raise self._exists(ticket.filename, state.live_sha256)
        if state.filename_used:
            raise self._filename_reused()
        if ticket.form.filetype == "sdist" and state.release_has_sdist:
            raise self._second_sdist()
        return None

    def _record_in(self, conn: Connection, ticket: Ticket, digests: Digests, checked: Checked) -> UploadOutcome:
        """The file, its release if new, the project's serial and size, and the events: one transaction."""
        form, ident, now, info = ticket.form, ticket.identity, self.clock.now(), checked.info
        actor, via = uploaded_by(ident)
        project_ref = (ident.project_id, ident.project_name)
        # The first statement writes, so that SQLite takes its write lock now and PostgreSQL locks the
        # project row: concurrent uploads to one project are serialised from here on.
        row = sql.PROJECT_UPSERT.execute(conn, {
            "project_id": ident.project_id, "project_name": ident.project_name,
            "normalized": form.canonical_name, "size": digests.size, "now": now})
        total = row[0] if row is not None else None
        if total is None:
            raise Conflict(f"The files of project {ident.project_name!r} are being removed; try again in a "
                           f"moment.", reason="project_deleting")
        if total > ticket.project_limit:
            raise self.size_error(dataclasses.replace(ticket, project_used=total - digests.size), digests.size)
        inserted = sql.RELEASE_INSERT.execute(conn, {
            "release_id": new_id(), "project_id": ident.project_id, "project_name": ident.project_name,
            "version": form.version, "canonical_version": form.canonical_version,
            "requires_python": info.requires_python, "now": now})
        events = []
        if inserted is None:
            release_id, deleted_at, version = sql.RELEASE_LOOKUP.execute(conn, {
                "project_id": ident.project_id, "canonical_version": form.canonical_version})
            if deleted_at is not None:
                raise Conflict(f"Release {version} of {ident.project_name!r} is being deleted; try "
                               f"again in a moment.", reason="release_deleting")
        else:
            release_id = inserted[0]
            events.append(self.events.build(
                "project:release:add", actor=actor, project=project_ref, origin=ticket.origin, details={
                    "version": form.version, "canonical_version": form.canonical_version,
                    "submitted_by": ident.username, "token_id": ident.token_id, **via}))
        sql.FILENAME_INSERT.execute(conn, {"filename": ticket.filename, "project_id": ident.project_id,
                                           "created_at": now})
        sql.FILE_INSERT.execute(conn, {
            "id": new_id(), "release_id": release_id, "project_id": ident.project_id, "filename": ticket.filename,
            "packagetype": form.filetype, "python_version": form.pyversion, "size": digests.size,
            "sha256": digests.sha256, "blake2_256": digests.blake2_256, "md5": digests.md5, "path": checked.key,
            "requires_python": info.requires_python,
            "metadata_sha256": hashlib.sha256(info.wheel_metadata).hexdigest() if info.wheel_metadata else None,
            "metadata_content": info.wheel_metadata, "uploaded_at": now, "uploader_id": ident.user_id,
            "uploader_name": ident.username, "token_id": ident.token_id or None, "deleted_at": None})
        events.append(self.events.build(
            "file:add", actor=actor, project=project_ref, origin=ticket.origin, details={
                "filename": ticket.filename, "version": form.version, "uploader": ident.username,
                "token_id": ident.token_id, "sha256": digests.sha256, "size": digests.size,
                "packagetype": form.filetype, **via}))
        self.events.write(conn, events)
        if self.clock.now().timestamp() - checked.stored_at > self.publish_within:  # last, before the commit
            raise Conflict("The upload took too long between storing and recording its file; upload it again.",
                           reason="upload_stale")
        return self._outcome(ticket, digests, created=True)

