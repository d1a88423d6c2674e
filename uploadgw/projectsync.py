"""Reacting to projects deleted in authsvc: their releases and files are removed here too.

The gateway reads the event stream in its own consumer group. A `project:delete` event from
authsvc triggers `ReleaseService.purge_project(project_id)`, which is idempotent; the entry is
acknowledged only after the purge finished, so a replica that dies half way leaves it pending and
another replica claims it after `claim_idle_ms`. Every other entry is acknowledged at once (the
stream is trimmed only below what every group acknowledged), and so is a `project:delete` entry
that is not a readable event (nothing to purge). Group creation, claiming, back-off, outage
logging and the removal of replicas that died (idle for `consumer_expiry_ms` with nothing
pending) are gatehouse.infra.consumergroup's, as for the audit consumer.

The gateway holds no key of authsvc's (an HMAC key that verifies also signs, and the gateway is
the exposed part), so it reads the sealed event without authenticating it and asks authsvc
instead: the files go only when authsvc no longer has a project of that id under the name the
gateway knows it by. A forged `project:delete` for a live project is acknowledged and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from google.protobuf.message import DecodeError

from gatehouse.events.v1 import event_pb2
from gatehouse.infra.consumergroup import OUTAGE_ERRORS, Backoff, ConsumerGroup, Entry, Outage
from gatehouse.infra.eventauth import peek_event
from uploadgw.authclient import AuthClient
from uploadgw.releases.service import ReleaseService

log = logging.getLogger(__name__)
GROUP = "uploadgw-projects"


class ProjectDeletionListener:
    def __init__(self, redis_url: str, stream: str, releases: ReleaseService, auth: AuthClient, *,
                 group: str = GROUP, consumer: str | None = None, block_ms: int = 2000,
                 claim_idle_ms: int = 60_000, consumer_expiry_ms: int = 3_600_000):
        self.stream = stream
        self.releases = releases
        self.auth = auth
        self.ignored = 0  # project:delete events for projects authsvc still has
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.block_ms = block_ms
        self.source = ConsumerGroup(redis_url, stream, group, self.consumer, socket_timeout=block_ms / 1000 + 5,
                                    batch_size=100, claim_idle_ms=claim_idle_ms,
                                    consumer_expiry_ms=consumer_expiry_ms)
        self._outage = Outage(log, {"consumer": self.consumer, "stream": stream},
                              failing="project deletions paused: a dependency is unavailable",
                              recovered="project deletions running again", backoff=Backoff(0.2, 10.0))
        self.purged = 0
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()

    def start(self) -> asyncio.Task:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="uploadgw-project-deletions")
        return self._task

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    await self.process_once()
                except OUTAGE_ERRORS as exc:  # e.g. Redis or the database is down: retry the same entries
                    self.source.failed(exc)
                    self._outage.failed(exc)
                except Exception:  # noqa: BLE001 - e.g. authsvc does not answer: retry the same entries later
                    log.exception("project deletion handling failed")
                    self.source.failed(None)
                    self._outage.failed(None)
                else:
                    self._outage.recovered()
                    continue
                await self._outage.pause(self._stop)
        finally:
            await self.source.close()

    async def process_once(self) -> int:
        """Group upkeep (when due: own pending entries, entries abandoned by a dead consumer, dead
        consumers), then new entries (blocking up to `block_ms`)."""
        handled = await self.source.maintain(self._handle)
        return handled + await self._handle(await self.source.read_new(self.block_ms))

    async def _confirmed(self, event: event_pb2.Event) -> bool:
        """authsvc has no project of this id any more (under the name the gateway knows it by)."""
        name = await self.releases.live_project_name(event.project_id)
        return name is None or await self.auth.project_id(name) != event.project_id

    async def _handle(self, entries: list[Entry]) -> int:
        for entry_id, fields in entries:
            if fields and fields.get(b"tag") == b"project:delete":
                await self._project_deleted(entry_id, fields)
            await self.source.ack(entry_id)
        return len(entries)

    async def _project_deleted(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        event = event_pb2.Event()
        try:
            event.ParseFromString(peek_event(fields[b"event"]))
        except (KeyError, DecodeError, ValueError) as exc:
            log.warning("unreadable project:delete entry: ignored",
                        extra={"entry_id": entry_id.decode(), "error": type(exc).__name__})
            return
        if event.source == "authsvc" and event.project_id and not await self._confirmed(event):
            self.ignored += 1
            log.warning("project:delete for a project authsvc still has: ignored",
                        extra={"entry_id": entry_id.decode(), "project_id": event.project_id[:64]})
        elif event.source == "authsvc" and event.project_id:
            report = await self.releases.purge_project(event.project_id, reason="project deleted")
            self.purged += 1
            log.info("project files removed", extra={"project": event.project_name,
                                                     "files": report.files, "releases": report.releases})
