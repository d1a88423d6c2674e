"""`python -m auditsvc`: the audit service (gRPC, stream consumer, pruning) from the environment."""

from __future__ import annotations

import asyncio
import signal

from auditsvc.server import create_server
from auditsvc.settings import Settings
from gatehouse.infra.logging import configure_logging
from gatehouse.infra.settings import SettingsError


async def serve(settings: Settings) -> None:
    running = await create_server(settings, migrate_first=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"auditsvc listening on port {running.port}", flush=True)
    await stop.wait()
    await running.stop(grace=10.0)


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"auditsvc: {exc}")
    configure_logging(settings.log_level)
    if settings.consumer_enabled and not settings.redis_url:
        raise SystemExit("auditsvc: GATEHOUSE_REDIS_URL is required (or set AUDITSVC_CONSUMER_ENABLED=false)")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
