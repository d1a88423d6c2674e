"""A consumer process that reads entries and dies before settling them (the test SIGKILLs it).

Run as `python -m tests.infra._dying_reader REDIS_URL STREAM GROUP NAME COUNT MARKER`: it joins the
group through ConsumerGroup, reads COUNT new entries, writes their ids to MARKER and waits forever.
"""

from __future__ import annotations

import asyncio
import pathlib
import sys

from gatehouse.infra.consumergroup import ConsumerGroup


async def main(redis_url: str, stream: str, group: str, name: str, count: str, marker: str) -> None:
    reader = ConsumerGroup(redis_url, stream, group, name, batch_size=int(count))
    await reader.ensure()
    entries = await reader.read_new(None)
    pathlib.Path(marker).write_text(",".join(entry_id.decode() for entry_id, _ in entries))
    await asyncio.Event().wait()  # never acknowledges


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
