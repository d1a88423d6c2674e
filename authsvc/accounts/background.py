"""Work the accounts service does after it has answered (password-reset mail), bounded.

An answer that must take the same time whatever the outcome (does the account exist?) hands the
outcome-dependent part to `Background`: at most `concurrency` jobs run at once and at most `limit`
wait, so a flood of requests cannot grow memory without bound; beyond that the submitter is
refused (for every name alike). Jobs still pending at shutdown get a bounded time to finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from authsvc.errors import ResourceExhausted

log = logging.getLogger(__name__)


class Background:
    def __init__(self, *, concurrency: int = 4, limit: int = 1000):
        self.concurrency = concurrency
        self.limit = limit
        self._tasks: set[asyncio.Task] = set()
        self._slots: asyncio.Semaphore | None = None

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def submit(self, job: Callable[[], Awaitable[None]], *, what: str) -> None:
        """Run `job()` after the caller's answer; ResourceExhausted when too much is pending."""
        if len(self._tasks) >= self.limit:
            raise ResourceExhausted("The service is busy right now. Try again in a minute.",
                                    reason="background_busy", retry_after=60)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        task = asyncio.get_running_loop().create_task(self._run(job, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Callable[[], Awaitable[None]], what: str) -> None:
        assert self._slots is not None
        async with self._slots:
            try:
                await job()
            except Exception:  # noqa: BLE001 - logged; nobody is waiting for this answer any more
                log.exception("background job failed", extra={"job": what})

    async def idle(self) -> None:
        """Wait until nothing is pending (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
