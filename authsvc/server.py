"""The auth service's gRPC server: `create_server(settings) -> RunningServer`."""

from __future__ import annotations

import dataclasses
import logging
import pathlib

import grpc

from authsvc.accounts.grpc_api import AccountServicer
from authsvc.admin.grpc_api import AdminServicer
from authsvc.app import AuthApp, build_app
from authsvc.db import outbox
from authsvc.errors import DOMAIN
from authsvc.projects.grpc_api import ProjectServicer
from authsvc.publishing.grpc_api import PublishingServicer
from authsvc.settings import Settings
from authsvc.tokens.disclosure_api import DisclosureServicer
from authsvc.tokens.grpc_api import TokenServicer
from authsvc.twofactor.grpc_api import TwoFactorServicer
from gatehouse.auth.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
    admin_pb2,
    admin_pb2_grpc,
    disclosure_pb2,
    disclosure_pb2_grpc,
    projects_pb2,
    projects_pb2_grpc,
    publishing_pb2,
    publishing_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    twofactor_pb2,
    twofactor_pb2_grpc,
)
from gatehouse.infra.clock import Clock
from gatehouse.infra.db import upgrade_async
from gatehouse.infra.grpcserver import CallerRole, Credentials, start_server
from gatehouse.infra.metrics import GrpcMetrics, serve_metrics
from gatehouse.infra.relay import OutboxRelay
from gatehouse.infra.settings import service_keys
from gatehouse.infra.tls import serve_plaintext_health, server_credentials

log = logging.getLogger(__name__)
MIGRATIONS = pathlib.Path(__file__).parent / "migrations"
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
# The one method the audit API's narrow credential (AUTHSVC_AUDIT_KEY) may call.
VALIDATE_SESSION = f"/{accounts_pb2.DESCRIPTOR.services_by_name['AccountService'].full_name}/ValidateSession"


def _full_name(module, service: str) -> str:
    return module.DESCRIPTOR.services_by_name[service].full_name


@dataclasses.dataclass
class RunningServer:
    app: AuthApp
    server: grpc.aio.Server
    port: int
    health: object
    metrics: GrpcMetrics
    relay: OutboxRelay | None = None
    probe: grpc.aio.Server | None = None  # the plaintext health port (AUTHSVC_HEALTH_LISTEN)

    async def stop(self, grace: float = 5.0) -> None:
        """Drain: report NOT_SERVING, finish in-flight calls, then close (unpublished events
        wait in the outbox for the next relay)."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.probe is not None:
            await self.probe.stop(0)
        if self.relay is not None:
            await self.relay.stop()
        await self.app.close()


async def migrate(settings: Settings) -> None:
    await upgrade_async(settings.database_url, MIGRATIONS)


async def create_server(settings: Settings, *, clock: Clock | None = None, migrate_first: bool = False) -> RunningServer:
    if migrate_first:
        await migrate(settings)
    app = build_app(settings, clock=clock)

    def register(server: grpc.aio.Server):
        accounts_pb2_grpc.add_AccountServiceServicer_to_server(AccountServicer(app.accounts), server)
        projects_pb2_grpc.add_ProjectServiceServicer_to_server(ProjectServicer(app.accounts, app.projects), server)
        tokens_pb2_grpc.add_TokenServiceServicer_to_server(
            TokenServicer(app.accounts, app.tokens, app.verifier, project_tokens=app.project_tokens, metrics=metrics), server)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(app.accounts, app.projects, app.tokens, app.publishers, app.project_tokens), server)
        twofactor_pb2_grpc.add_TwoFactorServiceServicer_to_server(TwoFactorServicer(app.twofactor), server)
        disclosure_pb2_grpc.add_DisclosureServiceServicer_to_server(DisclosureServicer(app.disclosures), server)
        publishing_pb2_grpc.add_PublishingServiceServicer_to_server(
            PublishingServicer(app.accounts, app.publishers, app.exchange), server)
        return [_full_name(accounts_pb2, "AccountService"), _full_name(projects_pb2, "ProjectService"),
                _full_name(tokens_pb2, "TokenService"), _full_name(admin_pb2, "AdminService"),
                _full_name(twofactor_pb2, "TwoFactorService"), _full_name(disclosure_pb2, "DisclosureService"),
                _full_name(publishing_pb2, "PublishingService")]

    metrics = GrpcMetrics("authsvc")
    credentials = Credentials({**{key: CallerRole.SERVICE for key in service_keys(settings.gateway_key)},
                               **{key: CallerRole.NARROW for key in service_keys(settings.audit_key)},
                               settings.operator_key: CallerRole.OPERATOR})
    server, port, health = await start_server(
        listen=settings.listen, register=register, credentials=credentials,
        operator_services=[ADMIN_SERVICE], narrow_methods=[VALIDATE_SESSION], metrics=metrics, domain=DOMAIN,
        server_credentials=server_credentials(settings.tls),
        max_connection_age=True,  # so that the gateways' channels find authsvc pods added since
    )
    serve_metrics(metrics.registry, settings.listen.rsplit(":", 1)[0] or "127.0.0.1", settings.metrics_port)
    probe = await serve_plaintext_health(settings.health_listen, health) if settings.health_listen else None
    relay = None
    if settings.relay_enabled and settings.redis_url:
        # In-process relay, woken after every commit; on Kubernetes it runs as its own Deployment.
        relay = OutboxRelay(app.db, outbox, settings.redis_url, settings.event_stream, name="authsvc-relay")
        relay.notify_on_commit(app.db)
        app.tx.after_commit = relay.notify
        relay.start()
    app.expiry.start()  # on every replica: each notice and expiry event is claimed once (tokens/expiry.py)
    log.info("authsvc listening", extra={"port": port})
    return RunningServer(app=app, server=server, port=port, health=health, metrics=metrics, relay=relay, probe=probe)
