"""Liveness and readiness for Kubernetes probes and `gatehouse up`.

Live: the process answers. Ready: the gateway's own database answers. Readiness deliberately
does not depend on the auth service: uploads fail with a clear 503 while it is down, and taking
every gateway replica out of rotation would only hide that message behind the ingress's.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


class HealthHandlers:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def live(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})

    async def ready(self, request: web.Request) -> web.Response:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any database failure means "not ready"
            return web.Response(status=503, text="database unavailable\n", headers={"Cache-Control": "no-store"})
        return web.Response(text="ready\n", headers={"Cache-Control": "no-store"})
