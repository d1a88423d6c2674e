"""Run one service as a process: settings from the environment (or exit with the reason), JSON
logging, start, print where it listens, then wait for SIGINT/SIGTERM and stop gracefully."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from gatehouse.infra.logging import configure_logging
from gatehouse.infra.settings import SettingsError


def run_service(name: str, load_settings: Callable[[], Any], start: Callable[[Any], Awaitable[Any]], *,
                address: Callable[[Any, Any], str], stop: Callable[[Any], Awaitable[None]],
                check: Callable[[Any], str | None] | None = None) -> None:
    """Run service `name` until SIGINT/SIGTERM. `start(settings)` returns the running service,
    `address(settings, running)` says where it listens, `stop(running)` stops it; `check(settings)`
    may return a reason to refuse to start. Bad settings exit with "`name`: reason"."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise SystemExit(f"{name}: {exc}")
    configure_logging(settings.log_level)
    problem = check(settings) if check else None
    if problem:
        raise SystemExit(f"{name}: {problem}")
    asyncio.run(_serve(name, settings, start, address, stop))


async def _serve(name, settings, start, address, stop) -> None:
    running = await start(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    print(f"{name} listening on {address(settings, running)}", flush=True)
    await stopping.wait()
    await stop(running)
