"""Wiring: builds the audit service's collaborators from settings (no I/O at import time)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging

import grpc
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from auditsvc.admins import AdminSessions
from auditsvc.consumer import Consumer
from auditsvc.settings import Settings
from auditsvc.store.service import AuditLog
from gatehouse.infra.clock import Clock, SystemClock
from gatehouse.infra.db import make_engine, make_session_factory
from gatehouse.infra.grpcserver import open_channel

log = logging.getLogger(__name__)


@dataclasses.dataclass
class AuditApp:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    db: async_sessionmaker
    log: AuditLog
    admins: AdminSessions
    authsvc_channel: grpc.aio.Channel | None = None

    def consumer(self, **overrides) -> Consumer:
        """A stream consumer with the service's settings (tests override name, hooks, timings)."""
        return Consumer.from_settings(self.settings, self.log, **overrides)

    async def run_pruner(self, stop_event: asyncio.Event) -> None:
        """Delete events past the retention now and then every prune interval, until stopped."""
        while not stop_event.is_set():
            try:
                removed = await self.log.prune_once()
                if removed:
                    log.info("pruned audit events past retention",
                             extra={"removed": removed, "retention_days": self.settings.retention_days})
            except (SQLAlchemyError, OSError) as exc:
                log.warning("audit pruning failed; will retry", extra={"error": type(exc).__name__})
            try:
                await asyncio.wait_for(stop_event.wait(), self.settings.prune_interval_seconds)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        if self.authsvc_channel is not None:
            await self.authsvc_channel.close()
        await self.engine.dispose()


def build_app(settings: Settings, *, clock: Clock | None = None) -> AuditApp:
    clock = clock or SystemClock()
    engine = make_engine(settings.database_url)
    db = make_session_factory(engine)
    audit_log = AuditLog(
        db, clock=clock,
        default_window=dt.timedelta(days=settings.default_window_days),
        retention=dt.timedelta(days=settings.retention_days),
        ip_hash_key=settings.ip_hash_key if settings.hash_ips else None,
    )
    channel = (open_channel(settings.authsvc_target, settings.authsvc_key, default_timeout=settings.authsvc_timeout,
                            tls=settings.tls)
               if settings.authsvc_target else None)
    return AuditApp(settings=settings, clock=clock, engine=engine, db=db, log=audit_log,
                    admins=AdminSessions(channel, timeout=settings.authsvc_timeout), authsvc_channel=channel)
