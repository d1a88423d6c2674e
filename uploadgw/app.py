"""The gateway's app factory: `create_app(settings, clock=...) -> web.Application`.

No I/O at import or construction: the database engine, the file store, the gRPC channel to
authsvc, the background sweeper, the outbox relay and the project-deletion listener are opened in
a cleanup context when the app starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from aiohttp import HttpVersion11, web
from aiohttp.typedefs import Handler
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gatehouse.infra.clock import Clock, SystemClock
from gatehouse.infra.db import call_after_commit, make_engine, make_session_factory, upgrade_async
from gatehouse.infra.errors import GatehouseError
from gatehouse.infra.grpcserver import open_bare_channel
from gatehouse.infra.outbox import EventEmitter, event_signer
from gatehouse.infra.relay import OutboxRelay
from gatehouse.infra.transactions import Transactions
from uploadgw.authclient import AuthClient
from uploadgw.http.disclosure import DisclosureHandler
from uploadgw.http.index import IndexHandlers
from uploadgw.http.health import HealthHandlers
from uploadgw.http.oidc import OidcHandlers
from uploadgw.http.edge import BodyLimits, UploadSlots, finish_and_close, make_body_guard
from uploadgw.http.middleware import (HttpMetrics, make_forwarded_middleware, make_middleware, response_for,
                                      serve_readable_headers)
from uploadgw.http.upload import UploadHandler
from uploadgw.index.service import IndexService
from uploadgw.models import outbox
from uploadgw.projectsync import ProjectDeletionListener
from uploadgw.pages import setup_pages
from uploadgw.releases.service import ReleaseService
from uploadgw.settings import Settings
from uploadgw.storage import open_store
from uploadgw.storage.filestore import FileStore
from uploadgw.uploads.archive import ArchiveLimits
from uploadgw.uploads.service import SizeLimits, UploadService

log = logging.getLogger(__name__)
ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
MIGRATIONS = pathlib.Path(__file__).parent / "migrations"


@dataclasses.dataclass
class Gateway:
    """The running gateway's collaborators (available to tests and to later page handlers)."""

    settings: Settings
    clock: Clock
    engine: AsyncEngine
    db: async_sessionmaker[AsyncSession]
    store: FileStore
    auth: AuthClient
    events: EventEmitter
    uploads: UploadService
    releases: ReleaseService
    index: IndexService
    transactions: Transactions


@dataclasses.dataclass
class Handlers:
    upload: UploadHandler
    index: IndexHandlers
    health: HealthHandlers
    disclosure: DisclosureHandler
    oidc: OidcHandlers


SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey[Clock]("clock")  # a Protocol: given as the type argument, not as a class
METRICS = web.AppKey("metrics", HttpMetrics)
GATEWAY = web.AppKey("gateway", Gateway)
HANDLERS = web.AppKey("handlers", Handlers)
RELAY = web.AppKey[OutboxRelay | None]("relay")  # None: the relay runs elsewhere (or not at all)
LISTENER = web.AppKey[ProjectDeletionListener | None]("project_deletions")


async def migrate(settings: Settings) -> None:
    await upgrade_async(settings.database_url, MIGRATIONS)


def build_gateway(settings: Settings, clock: Clock, channel: grpc.aio.Channel, store: FileStore) -> Gateway:
    engine = make_engine(settings.database_url)
    db = make_session_factory(engine)
    events = EventEmitter(outbox, source="uploadgw", clock=clock,
                          signer=event_signer("uploadgw", settings.event_keys))
    auth = AuthClient(channel, credential=settings.authsvc_key, timeout=settings.auth_timeout,
                      index_cache_seconds=settings.index_auth_cache_seconds)
    releases = ReleaseService(db=db, store=store, events=events, clock=clock)
    transactions = Transactions(settings.database_url, db)
    uploads = UploadService(
        db=db, transactions=transactions, store=store, auth=auth, events=events, clock=clock, releases=releases,
        pending_max_age=settings.temp_max_age_seconds,
        limits=SizeLimits(max_file_size=settings.max_file_size, max_project_size=settings.max_project_size),
        archive_limits=ArchiveLimits(
            max_members=settings.max_archive_members, max_metadata_size=settings.max_metadata_file_size,
            ratio_min_size=settings.compression_ratio_min_size, max_ratio=settings.max_compression_ratio),
    )
    index = IndexService(db=db, transactions=transactions, cache_projects=settings.index_cache_projects,
                         recheck_seconds=settings.index_recheck_seconds)
    return Gateway(settings=settings, clock=clock, engine=engine, db=db, store=store, auth=auth, events=events,
                   uploads=uploads, releases=releases, index=index, transactions=transactions)


async def sweep_once(gateway: Gateway) -> None:
    """Finish interrupted removals, drop temporaries and unrecorded blobs left by crashed uploads
    (any replica may run it)."""
    max_age = gateway.settings.temp_max_age_seconds
    removed = await gateway.store.sweep_incomplete(max_age)
    unrecorded = await gateway.releases.collect_unrecorded(max_age)
    finished = await gateway.releases.finish_pending()
    if removed or unrecorded or finished:
        log.info("sweep", extra={"temp_removed": removed, "unrecorded_removed": unrecorded,
                                 "files_removed": finished})


async def _sweeper(gateway: Gateway) -> None:
    interval = gateway.settings.sweep_interval_seconds
    while True:
        try:
            await sweep_once(gateway)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - retried at the next interval
            log.exception("sweep failed")
        await asyncio.sleep(interval)


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    clock = clock or SystemClock()
    metrics = HttpMetrics()
    body_limits = BodyLimits(idle_timeout=settings.body_idle_timeout, min_rate=settings.body_min_rate,
                             rate_window=settings.body_rate_window, rate_grace=settings.body_rate_grace)
    middlewares = [make_body_guard(body_limits), make_middleware(metrics)]
    if settings.trusted_proxy_hops:  # without a trusted proxy X-Forwarded-For is ignored: nothing to read it
        middlewares.insert(0, make_forwarded_middleware(settings.trusted_proxy_hops))
    app = web.Application(
        middlewares=middlewares,
        # Uploads read their body themselves (small ones whole, large ones streamed in chunks);
        # every other request has a small body.
        client_max_size=1024 * 1024,
        # A larger read buffer means fewer, larger chunks while streaming big uploads; lingering
        # lets a client that is still sending its body read an early refusal (413/403).
        handler_args={"read_bufsize": 256 * 1024, "lingering_time": 30.0},
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = metrics
    app.cleanup_ctx.append(_resources)
    _routes(app, UploadSlots(per_token=settings.max_uploads_per_token, per_ip=settings.max_uploads_per_ip))
    setup_pages(app, settings=settings, clock=clock, gateway_key=GATEWAY)
    serve_readable_headers(app)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_store(settings) as store:
        # The upload check's hot path: no interceptors.
        channel = open_bare_channel(settings.authsvc_target, tls=settings.tls)
        channel.get_state(try_to_connect=True)  # connect to every authsvc pod now: the first checks spread
        gateway = build_gateway(settings, app[CLOCK], channel, store)
        app[GATEWAY] = gateway
        app[HANDLERS] = Handlers(
            upload=UploadHandler(gateway.uploads, max_file_size=settings.max_file_size,
                                 max_form_size=settings.max_form_size),
            index=IndexHandlers(gateway.index, gateway.store, gateway.auth, private=settings.index_private),
            health=HealthHandlers(gateway.engine),
            disclosure=DisclosureHandler(channel, credential=settings.authsvc_key, timeout=settings.auth_timeout),
            oidc=OidcHandlers(gateway.auth, settings.public_url),
        )
        sweeper = relay = None
        if settings.sweep_interval_seconds > 0:
            sweeper = asyncio.create_task(_sweeper(gateway), name="uploadgw-sweeper")
        after_commit = [gateway.index.changed_here]
        if settings.relay_enabled and settings.redis_url:
            # In-process relay, woken after every commit; on Kubernetes it may run as its own Deployment.
            relay = OutboxRelay(gateway.db, outbox, settings.redis_url, settings.event_stream, clock=gateway.clock,
                                name="uploadgw-relay")
            after_commit.append(relay.notify)
            relay.start()
        _call_after_every_commit(gateway, after_commit)
        app[RELAY] = relay
        listener = None
        if settings.project_events and settings.redis_url:
            listener = ProjectDeletionListener(settings.redis_url, settings.event_stream, gateway.releases,
                                               gateway.auth)
            listener.start()
        app[LISTENER] = listener
        try:
            yield
        finally:
            if listener is not None:
                await listener.stop()
            if relay is not None:
                await relay.stop()
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await gateway.uploads.finish_background()
            await gateway.auth.close()
            await channel.close()
            gateway.transactions.dispose()
            await gateway.engine.dispose()


def _call_after_every_commit(gateway: Gateway, hooks: list[Callable[[], None]]) -> None:
    """Each hook after every commit this process makes, through the session factory or `Transactions`."""

    def after_commit() -> None:
        for hook in hooks:
            hook()

    call_after_commit(gateway.db, after_commit)
    gateway.transactions.after_commit = after_commit


def _delegate(pick: Callable[[Handlers], Handler]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await pick(request.app[HANDLERS])(request)

    return handler


def _upload_routes(slots: UploadSlots) -> tuple[Handler, ExpectHandler]:
    """The upload handler within the concurrency caps, and its answer to `Expect: 100-continue`:
    a refusal the headers can prove (declared size, a full cap) instead of `100 Continue`."""

    async def upload(request: web.Request) -> web.StreamResponse:
        with slots.hold(request):
            return await request.app[HANDLERS].upload(request)

    async def expect(request: web.Request) -> web.StreamResponse | None:
        if request.version != HttpVersion11:
            return None
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise web.HTTPExpectationFailed(text="Only 'Expect: 100-continue' is understood.")
        try:
            await request.app[HANDLERS].upload.check_declared(request)
            slots.check(request)
        except GatehouseError as exc:
            response = response_for(exc)
            request.app[METRICS].count(request.match_info.route.name or "upload", request.method, response.status,
                                       0.0, exc.reason)
            await finish_and_close(request, response, drain=False)
            return response
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # as aiohttp's own handler: the answer proper starts after it
        return None

    return upload, expect


def _routes(app: web.Application, slots: UploadSlots) -> None:
    router = app.router
    upload, expect = _upload_routes(slots)
    router.add_post("/legacy/", upload, name="upload", expect_handler=expect)
    # twine users often forget the slash; a redirect would make clients drop the body, so accept it.
    router.add_post("/legacy", upload, name="upload_no_slash", expect_handler=expect)
    router.add_get("/simple/", _delegate(lambda h: h.index.root), name="simple_root")
    router.add_get("/simple/{project}/", _delegate(lambda h: h.index.project), name="simple_project")
    router.add_get("/simple/{project}", _delegate(lambda h: h.index.project_no_slash),
                   name="simple_project_no_slash")
    # A file's URL holds its storage key: `ab/<key name>`, or `ab/cd/<key name>` from earlier versions.
    for files, suffix in ((r"/files/{a:[0-9a-f]{2}}/{key:[0-9a-f]{64}-[0-9a-f]{16}}/", ""),
                          (r"/files/{a:[0-9a-f]{2}}/{b:[0-9a-f]{2}}/{key:[0-9a-f]{64}-[0-9a-f]{16}}/", "_earlier")):
        router.add_get(files + r"{filename:[^/]+\.metadata}", _delegate(lambda h: h.index.file),
                       name="file_metadata" + suffix)
        router.add_get(files + "{filename}", _delegate(lambda h: h.index.file), name="file" + suffix)
    router.add_post("/_/secrets/disclose-token", _delegate(lambda h: h.disclosure.disclose), name="disclose_token")
    router.add_get("/healthz", _delegate(lambda h: h.index.healthz), name="healthz")
    router.add_get("/_health/live", _delegate(lambda h: h.health.live), name="health_live")
    router.add_get("/_health/ready", _delegate(lambda h: h.health.ready), name="health_ready")
    # Trusted publishing (uploadgw/http/oidc.py).
    router.add_get("/_/oidc/audience", _delegate(lambda h: h.oidc.audience), name="oidc_audience")
    router.add_post("/_/oidc/mint-token", _delegate(lambda h: h.oidc.mint_token), name="oidc_mint_token")
    router.add_post("/_/oidc/github/mint-token", _delegate(lambda h: h.oidc.mint_token), name="oidc_mint_token_github")
    router.add_get("/.well-known/pytp", _delegate(lambda h: h.oidc.discover), name="pytp_discover")
    router.add_get("/.well-known/pytp/{key:[0-9a-f]{64}}", _delegate(lambda h: h.oidc.discover), name="pytp_key")
