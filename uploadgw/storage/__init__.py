"""The file store the settings choose: blobs under `storage_dir`, or in an S3 bucket."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from uploadgw.settings import Settings
from uploadgw.storage.filestore import FileStore, LocalFileStore


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[FileStore]:
    """The store of these settings, open until the block ends. With an S3 bucket, `storage_dir`
    holds only the scratch files of uploads in progress."""
    if settings.s3 is None:
        yield LocalFileStore(settings.storage_dir, fsync=settings.fsync)
        return
    from uploadgw.storage.s3store import S3FileStore  # botocore loads in ~0.3 s: only when used

    async with S3FileStore.open(settings.s3, os.path.join(settings.storage_dir, "tmp")) as store:
        yield store
