"""Receiving an upload's bytes while hashing them, in bounded memory.

Up to `MEMORY_LIMIT` the bytes stay in memory (most distributions are small; they then go to
the store once). Beyond it they stream to a scratch file on local disk (whatever the store): pieces are
gathered into ~1 MiB batches, each hashed and written by a worker thread (hashlib and file writes
release the GIL) while the event loop reads the next one. At most two batches are held at any
time, whatever the size of the file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac

from uploadgw.errors import InvalidUpload
from uploadgw.storage.filestore import Scratch

BATCH = 1024 * 1024
MEMORY_LIMIT = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Digests:
    size: int
    sha256: str
    blake2_256: str
    md5: str | None


class SizeExceeded(Exception):
    """More bytes arrived than the spool's limit allows (the caller says which limit)."""


class Spool:
    def __init__(self, scratch: Scratch, *, limit: int, want_md5: bool):
        self.scratch = scratch
        self.limit = limit
        self.size = 0
        self.temp_path: str | None = None
        # The whole upload when it stayed in memory (set by finish()).
        self.data: bytes | None = None
        self._fp = None
        self._sha256 = hashlib.sha256()
        self._blake2 = hashlib.blake2b(digest_size=32)
        self._md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._inflight: asyncio.Future | None = None
        self._finished = False

    def _hash(self, data: bytes) -> None:
        self._sha256.update(data)
        self._blake2.update(data)
        if self._md5 is not None:
            self._md5.update(data)

    def _consume(self, data: bytes) -> None:
        self._hash(data)
        self._fp.write(data)

    async def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self.limit:
            raise SizeExceeded()
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._fp is None and self.size <= MEMORY_LIMIT:
            return
        if self._fp is None:
            self.temp_path, self._fp = await asyncio.to_thread(self.scratch.new_temp)
        if self._pending_size >= BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if self._inflight is not None:
            await self._inflight
            self._inflight = None
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        self._inflight = asyncio.get_running_loop().run_in_executor(None, self._consume, data)

    async def finish(self) -> Digests:
        """All bytes received: their digests. Small uploads end up in `data`, large ones in `temp_path`."""
        if self._fp is None:
            self.data = b"".join(self._pending)
            self._pending = []
            self._hash(self.data)
        else:
            await self._flush()
            if self._inflight is not None:
                await self._inflight
                self._inflight = None
            await asyncio.to_thread(self._fp.close)
        self._finished = True
        return Digests(
            size=self.size,
            sha256=self._sha256.hexdigest(),
            blake2_256=self._blake2.hexdigest(),
            md5=self._md5.hexdigest() if self._md5 is not None else None,
        )

    async def discard(self) -> None:
        """Drop everything (failed or interrupted upload): no file is left behind."""
        if self._inflight is not None:
            try:
                await asyncio.shield(self._inflight)
            except Exception:  # noqa: BLE001 - we are discarding anyway
                pass
            self._inflight = None
        self._pending, self.data = [], None
        if self._fp is not None and not self._fp.closed:
            self._fp.close()
        if self.temp_path is not None:
            self.scratch.discard_temp(self.temp_path)
            self.temp_path = None


def check_digests(digests: Digests, *, md5: str | None, sha256: str | None, blake2_256: str | None) -> None:
    """Every digest the client sent must match the bytes (constant-time comparison)."""
    ok = True
    for claimed, actual in ((md5, digests.md5), (sha256, digests.sha256), (blake2_256, digests.blake2_256)):
        if claimed is None:
            continue
        if actual is None or not hmac.compare_digest(claimed.lower().encode(), actual.encode()):
            ok = False
    if not ok:
        raise InvalidUpload("The digest supplied does not match a digest calculated from the uploaded file.",
                            reason="digest_mismatch")
