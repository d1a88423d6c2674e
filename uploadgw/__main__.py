"""`python -m uploadgw`: run the upload gateway with settings from the environment."""

from __future__ import annotations

import asyncio
import signal

from gatehouse.infra.logging import configure_logging
from gatehouse.infra.settings import SettingsError
from uploadgw.server import start
from uploadgw.settings import Settings


async def serve(settings: Settings) -> None:
    running = await start(settings, migrate_first=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"uploadgw listening on {settings.listen_host}:{running.port}", flush=True)
    await stop.wait()
    await running.stop()


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"uploadgw: {exc}")
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
