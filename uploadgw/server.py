"""Running the gateway on a real socket: `start(settings) -> RunningGateway` (tests, `python -m uploadgw`)."""

from __future__ import annotations

import dataclasses
import logging
import ssl
import sys
from typing import TextIO

from aiohttp import web
from aiohttp.web_log import AccessLogger

from gatehouse.infra.clock import Clock
from gatehouse.infra.metrics import serve_metrics
from uploadgw.http.accesslog import LOGGER, AccessLog, access_logger
from uploadgw.http.edge import EdgeRunner
from uploadgw.app import GATEWAY, METRICS, Gateway, create_app, migrate
from uploadgw.settings import Settings

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunningGateway:
    app: web.Application
    runner: web.AppRunner
    port: int
    access_log: AccessLog | None = None

    @property
    def gateway(self) -> Gateway:
        return self.app[GATEWAY]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()
        if self.access_log is not None:
            self.access_log.close()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS when UPLOADGW_HTTPS_CERT/KEY are set (TLS 1.2 at least); None for plain HTTP."""
    if not settings.https_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.https_cert, settings.https_key)
    return context


def access_log_for(settings: Settings, stream: TextIO | None) -> AccessLog | None:
    """The access log when it is on and the log level lets its lines (INFO) through; on `stream`,
    by default standard output, where every other log line goes."""
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    if not settings.access_log or level > logging.INFO:
        return None
    return AccessLog(stream or sys.stdout)


async def start(settings: Settings, *, clock: Clock | None = None, migrate_first: bool = False,
                port: int | None = None, access_stream: TextIO | None = None) -> RunningGateway:
    """Start the app on settings.listen_host:port (port 0: any free port, the real one is returned);
    its access log on `access_stream` (standard output by default)."""
    if migrate_first:
        await migrate(settings)
    app = create_app(settings, clock=clock)
    access_log = access_log_for(settings, access_stream)
    # aiohttp makes an access logger only when given a `logging.Logger`; ours writes to `access_log`.
    runner = EdgeRunner(app, access_log=logging.getLogger(LOGGER) if access_log else None,
                        access_log_class=access_logger(access_log) if access_log else AccessLogger,
                        handler_cancellation=False,
                        head_timeout=settings.header_timeout, keepalive_timeout=settings.keepalive_timeout)
    await runner.setup()
    site = web.TCPSite(runner, settings.listen_host, settings.listen_port if port is None else port,
                       reuse_address=True, ssl_context=tls_context(settings))
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - aiohttp exposes no public accessor
    serve_metrics(app[METRICS].registry, settings.listen_host, settings.metrics_port)
    log.info("uploadgw listening", extra={"port": bound})
    return RunningGateway(app=app, runner=runner, port=bound, access_log=access_log)
