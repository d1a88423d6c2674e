"""Run one service as a process: settings from the environment (or exit with the reason), JSON
logging, start, print where it listens, then wait for SIGINT/SIGTERM and stop gracefully.

The event loop is uvloop's where it is installed (a dependency on Linux and macOS): the same
asyncio API, with the loop and its transports in C, so less Python per request on the upload path.
`GATEHOUSE_EVENT_LOOP=asyncio` selects the standard loop instead.
"""

from __future__ import annotations

import asyncio
import os
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
        loop_factory = event_loop_factory()
        settings = load_settings()
    except SettingsError as exc:
        raise SystemExit(f"{name}: {exc}")
    configure_logging(settings.log_level)
    problem = check(settings) if check else None
    if problem:
        raise SystemExit(f"{name}: {problem}")
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(name, settings, start, address, stop))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where installed, unless GATEHOUSE_EVENT_LOOP=asyncio (None: the standard loop)."""
    choice = os.environ.get("GATEHOUSE_EVENT_LOOP", "uvloop").strip().lower()
    if choice not in ("uvloop", "asyncio"):
        raise SettingsError(f"GATEHOUSE_EVENT_LOOP must be 'uvloop' or 'asyncio', got {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # not installed on this platform: the standard loop
        return None
    return uvloop.new_event_loop


async def _serve(name: str, settings: Any, start: Callable[[Any], Awaitable[Any]],
                 address: Callable[[Any, Any], str], stop: Callable[[Any], Awaitable[None]]) -> None:
    running = await start(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    print(f"{name} listening on {address(settings, running)}", flush=True)
    await stopping.wait()
    await stop(running)
