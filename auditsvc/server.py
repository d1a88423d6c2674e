"""The audit service's process: gRPC server plus (when enabled) the stream consumer and pruning.

`create_server(settings) -> RunningServer`; `await running.stop()` stops all of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pathlib

import grpc
from grpc_health.v1 import health as grpc_health

from auditsvc.app import AuditApp, build_app
from auditsvc.errors import DOMAIN
from auditsvc.grpc_api import AuditAdminServicer, AuditServicer
from auditsvc.settings import Settings
from gatehouse.audit.v1 import audit_pb2, audit_pb2_grpc
from gatehouse.infra.clock import Clock
from gatehouse.infra.db import upgrade_async
from gatehouse.infra.grpcserver import CallerRole, Credentials, start_server
from gatehouse.infra.metrics import GrpcMetrics, serve_metrics
from gatehouse.infra.settings import service_keys
from gatehouse.infra.tls import serve_plaintext_health, server_credentials

log = logging.getLogger(__name__)
MIGRATIONS = pathlib.Path(__file__).parent / "migrations"
AUDIT_SERVICE = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name
ADMIN_SERVICE = audit_pb2.DESCRIPTOR.services_by_name["AuditAdminService"].full_name


@dataclasses.dataclass
class RunningServer:
    app: AuditApp
    server: grpc.aio.Server
    port: int
    health: grpc_health.aio.HealthServicer
    metrics: GrpcMetrics
    consumer: object | None
    tasks: list[asyncio.Task]
    _stop: asyncio.Event
    probe: grpc.aio.Server | None = None  # the plaintext health port (AUDITSVC_HEALTH_LISTEN)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        self._stop.set()
        await self.server.stop(grace)
        if self.probe is not None:
            await self.probe.stop(0)
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.app.close()


async def migrate(settings: Settings) -> None:
    await upgrade_async(settings.database_url, MIGRATIONS)


async def create_server(settings: Settings, *, clock: Clock | None = None,
                        migrate_first: bool = False) -> RunningServer:
    if migrate_first:
        await migrate(settings)
    app = build_app(settings, clock=clock)

    def register(server: grpc.aio.Server):
        audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(app.log, app.admins), server)
        audit_pb2_grpc.add_AuditAdminServiceServicer_to_server(
            AuditAdminServicer(app.log, follow_poll_seconds=settings.follow_poll_seconds), server)
        return [AUDIT_SERVICE, ADMIN_SERVICE]

    metrics = GrpcMetrics("auditsvc")
    credentials = Credentials({**{key: CallerRole.SERVICE for key in service_keys(settings.gateway_key)},
                               settings.operator_key: CallerRole.OPERATOR})
    server, port, health = await start_server(
        listen=settings.listen, register=register, credentials=credentials,
        operator_services=[ADMIN_SERVICE], metrics=metrics, domain=DOMAIN,
        server_credentials=server_credentials(settings.tls),
    )
    serve_metrics(metrics.registry, settings.listen.rsplit(":", 1)[0] or "127.0.0.1", settings.metrics_port)
    probe = await serve_plaintext_health(settings.health_listen, health) if settings.health_listen else None
    stop = asyncio.Event()
    tasks, consumer = [], None
    if settings.consumer_enabled and settings.redis_url:
        consumer = app.consumer()
        tasks.append(asyncio.create_task(consumer.run_forever(stop), name="audit-consumer"))
    if settings.prune_interval_seconds > 0:
        tasks.append(asyncio.create_task(app.run_pruner(stop), name="audit-pruner"))
    if not settings.authsvc_target:
        log.info("AUDITSVC_AUTHSVC_TARGET/AUDITSVC_AUTHSVC_KEY not set: the full log for admins "
                    "(ListAllEvents) answers UNAVAILABLE")
    log.info("auditsvc listening", extra={"port": port, "consumer": bool(consumer)})
    return RunningServer(app=app, server=server, port=port, health=health, metrics=metrics,
                         consumer=consumer, tasks=tasks, _stop=stop, probe=probe)
