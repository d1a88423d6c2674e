"""Reacting to projects deleted in authsvc: their releases and files are removed here too.

The gateway reads the event stream in its own consumer group. A `project:delete` event from
authsvc triggers `ReleaseService.purge_project(project_id)`, which is idempotent; the entry is
acknowledged only after the purge finished, so a replica that dies half way leaves it pending and
another replica claims it after `claim_idle_ms`. Every other entry is acknowledged at once (the
stream is trimmed only below what every group acknowledged).

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

from redis.exceptions import RedisError, ResponseError

from gatehouse.events.v1 import event_pb2
from gatehouse.infra.eventauth import peek_event
from gatehouse.infra.relay import Backoff, connect_redis
from uploadgw.authclient import AuthClient
from uploadgw.releases.service import ReleaseService

log = logging.getLogger(__name__)
GROUP = "uploadgw-projects"


class ProjectDeletionListener:
    def __init__(self, redis_url: str, stream: str, releases: ReleaseService, auth: AuthClient, *,
                 group: str = GROUP, consumer: str | None = None, block_ms: int = 2000,
                 claim_idle_ms: int = 60_000):
        self.redis_url = redis_url
        self.stream = stream
        self.releases = releases
        self.auth = auth
        self.ignored = 0  # project:delete events for projects authsvc still has
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
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
        backoff = Backoff(0.2, 10.0)
        redis = connect_redis(self.redis_url, socket_timeout=self.block_ms / 1000 + 5)
        try:
            while not self._stop.is_set():
                try:
                    await self._ensure_group(redis)
                    await self.process_once(redis)
                    backoff.reset()
                except (RedisError, OSError) as exc:
                    delay = backoff.next_delay()
                    log.warning("event stream unavailable", extra={"error": type(exc).__name__, "retry_in": delay})
                    await asyncio.sleep(delay)
                except Exception:  # noqa: BLE001 - e.g. the database is down: retry the same entries later
                    log.exception("project deletion handling failed")
                    await asyncio.sleep(backoff.next_delay())
        finally:
            await redis.aclose()

    async def _ensure_group(self, redis) -> None:
        try:
            # From the stream's start: a deletion relayed before this group existed is not missed.
            await redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def process_once(self, redis) -> int:
        """Handle entries abandoned by a dead consumer, then new ones (blocking up to `block_ms`)."""
        handled = 0
        _next, claimed, *_ = await redis.xautoclaim(self.stream, self.group, self.consumer,
                                                    min_idle_time=self.claim_idle_ms, start_id="0-0", count=50)
        handled += await self._handle(redis, claimed)
        reply = await redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=100,
                                       block=self.block_ms)
        for _stream, entries in reply or []:
            handled += await self._handle(redis, entries)
        return handled

    async def _confirmed(self, event: event_pb2.Event) -> bool:
        """authsvc has no project of this id any more (under the name the gateway knows it by)."""
        name = await self.releases.live_project_name(event.project_id)
        return name is None or await self.auth.project_id(name) != event.project_id

    async def _handle(self, redis, entries) -> int:
        for entry_id, fields in entries:
            if fields and fields.get(b"tag") == b"project:delete":
                event = event_pb2.Event()
                event.ParseFromString(peek_event(fields[b"event"]))
                if event.source == "authsvc" and event.project_id and not await self._confirmed(event):
                    self.ignored += 1
                    log.warning("project:delete for a project authsvc still has: ignored",
                                extra={"entry_id": entry_id.decode(), "project_id": event.project_id[:64]})
                elif event.source == "authsvc" and event.project_id:
                    report = await self.releases.purge_project(event.project_id, reason="project deleted")
                    self.purged += 1
                    log.info("project files removed", extra={"project": event.project_name,
                                                             "files": report.files, "releases": report.releases})
            await redis.xack(self.stream, self.group, entry_id)
        return len(entries)
