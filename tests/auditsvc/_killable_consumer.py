"""A consumer process for the SIGKILL test: it stores a batch, then stops between commit and XACK.

Run as `python -m tests.auditsvc._killable_consumer DB_URL REDIS_URL STREAM GROUP NAME MARKER KEYS`.
After its first commit it writes MARKER and blocks, so the test can SIGKILL it right there.
"""

from __future__ import annotations

import asyncio
import pathlib
import sys

from auditsvc.consumer import Consumer
from auditsvc.store.service import AuditLog
from gatehouse.infra.clock import SystemClock
from gatehouse.infra.db import make_engine, make_session_factory
from gatehouse.infra.eventauth import EventVerifier, parse_accepted_keys


async def main(db_url, redis_url, stream, group, name, marker, accepted_keys) -> None:
    engine = make_engine(db_url)

    async def after_commit(event_ids):
        pathlib.Path(marker).write_text(",".join(event_ids))
        await asyncio.Event().wait()  # never acknowledges

    consumer = Consumer(redis_url, stream, group, name, AuditLog(make_session_factory(engine), clock=SystemClock()),
                        verifier=EventVerifier(parse_accepted_keys("keys", accepted_keys)), block_ms=100, claim_idle_ms=3_600_000, after_commit=after_commit)
    await consumer.run_forever(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
