"""Distribution files in an S3 bucket, through the S3 API only (AWS S3, MinIO, Ceph RGW, R2).

The same contract as the local store (uploadgw/storage/filestore.py): a blob lives under a key of
its upload's own, `<prefix>blobs/ab/<sha256>-<tag>`, and is reachable only through the row that
names it. Its pending registration is an empty object, `<prefix>pending/<sha256>-<tag>`, written
before the blob and deleted when the row commits (`settle`); its age is the object's LastModified.
Uploads are spooled on local scratch disk (the archive check needs the whole file), then sent in
one PUT, or as a multipart upload of `PART_SIZE` parts read one at a time, so memory does not grow
with the file. A failed multipart upload is aborted at once; one cut off by a crash is aborted by
`sweep_incomplete` (ListMultipartUploads) once older than the scratch files' age.

Downloads are streamed through the gateway, or answered with a redirect to a presigned GET URL
that expires after `presign_seconds` (a private index checks every request: its URLs must not
outlive that check by more than a minute, see uploadgw/settings.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, BinaryIO

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from uploadgw.settings import S3Settings
from uploadgw.storage.filestore import BLOB_NAME, Download, Redirect, Scratch, Stream, new_key

# S3's smallest part is 5 MiB (all but the last); 8 MiB parts allow files up to 80 GB (10,000 parts).
PART_SIZE = 8 * 1024 * 1024
DOWNLOAD_CHUNK = 256 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_FANOUT = re.compile(r"[0-9a-f]{2}")


def _client_config(settings: S3Settings) -> AioConfig:
    return AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path" if settings.path_style else "virtual"},
        # botocore's default CRC checksums on every request are not understood by every S3-compatible
        # service (older MinIO and Ceph RGW releases): send and check them only where S3 requires.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5, read_timeout=60,
    )


class S3FileStore:
    """Blobs in one bucket; open it with `S3FileStore.open(settings, scratch_dir)`."""

    def __init__(self, settings: S3Settings, scratch: Scratch, client: Any, signer: Any):
        self.settings = settings
        self.scratch = scratch
        self.bucket = settings.bucket
        self._blobs = f"{settings.prefix}blobs/"
        self._pending = f"{settings.prefix}pending/"
        self._client = client
        self._signer = signer  # a client for the public endpoint: presigned URLs name its host

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: S3Settings, scratch_dir: str | os.PathLike[str]) -> AsyncIterator[S3FileStore]:
        session = get_session()

        def client(endpoint: str) -> Any:
            return session.create_client(
                "s3", region_name=settings.region, endpoint_url=endpoint or None,
                aws_access_key_id=settings.access_key_id or None,
                aws_secret_access_key=settings.secret_access_key or None, config=_client_config(settings))

        async with contextlib.AsyncExitStack() as stack:
            s3 = await stack.enter_async_context(client(settings.endpoint_url))
            signer = s3
            if settings.public_endpoint_url:
                signer = await stack.enter_async_context(client(settings.public_endpoint_url))
            yield cls(settings, Scratch(scratch_dir), s3, signer)

    def _blob(self, key: str) -> str:
        """`ab/<name>`, or `ab/cd/<name>` (a local store's earlier layout, copied into the bucket)."""
        *fanout, name = key.split("/")
        if len(fanout) not in (1, 2) or any(not _FANOUT.fullmatch(p) for p in fanout) or not BLOB_NAME.fullmatch(name):
            raise ValueError(f"malformed storage key {key!r}")
        return self._blobs + key

    def _marker(self, key: str) -> str:
        self._blob(key)
        return self._pending + key.rsplit("/", 1)[1]

    # -- writing ----------------------------------------------------------------------------------
    async def store(self, sha256: str, source: bytes | str) -> str:
        # 64 random bits per key: two uploads never draw the same (S3 has no portable create-if-absent).
        key = new_key(sha256)
        blob, marker = self._blob(key), self._marker(key)
        await self._client.put_object(Bucket=self.bucket, Key=marker, Body=b"")
        try:
            if isinstance(source, bytes):
                await self._client.put_object(Bucket=self.bucket, Key=blob, Body=source)
            else:
                await self._put_file(blob, source)
        except BaseException:
            # A multipart upload was aborted; a blob whose answer was lost may exist after all. The
            # registration goes last: should a removal fail, the sweeper finds the blob by it.
            with contextlib.suppress(Exception):
                await self._client.delete_object(Bucket=self.bucket, Key=blob)
                await self._client.delete_object(Bucket=self.bucket, Key=marker)
            raise
        if isinstance(source, str):
            await asyncio.to_thread(self.scratch.discard_temp, source)  # its bytes are in the bucket
        return key

    async def _put_file(self, name: str, path: str) -> None:
        fp: BinaryIO = await asyncio.to_thread(open, path, "rb")
        try:
            first = await asyncio.to_thread(fp.read, PART_SIZE)
            if len(first) < PART_SIZE:
                await self._client.put_object(Bucket=self.bucket, Key=name, Body=first)
                return
            await self._put_multipart(name, first, fp)
        finally:
            await asyncio.to_thread(fp.close)

    async def _put_multipart(self, name: str, first: bytes, fp: BinaryIO) -> None:
        """One part in memory at a time: the next is read after the previous one is sent."""
        upload = await self._client.create_multipart_upload(Bucket=self.bucket, Key=name)
        upload_id = upload["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            data = first
            while data:
                sent = await self._client.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                                      PartNumber=len(parts) + 1, Body=data)
                parts.append({"PartNumber": len(parts) + 1, "ETag": sent["ETag"]})
                data = await asyncio.to_thread(fp.read, PART_SIZE)
            await self._client.complete_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                                         MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                await self._client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            raise

    async def settle(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=self._marker(key))

    async def discard(self, key: str) -> None:
        await self.delete(key)
        await self.settle(key)

    async def delete(self, key: str) -> None:
        # DeleteObject succeeds for a missing object.
        await self._client.delete_object(Bucket=self.bucket, Key=self._blob(key))

    # -- reading ----------------------------------------------------------------------------------
    async def exists(self, key: str) -> bool:
        try:
            await self._client.head_object(Bucket=self.bucket, Key=self._blob(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True

    async def download(self, key: str, filename: str) -> Download:
        name = self._blob(key)
        if self.settings.downloads == "redirect":
            url = await self._signer.generate_presigned_url(
                "get_object", ExpiresIn=self.settings.presign_seconds,
                Params={"Bucket": self.bucket, "Key": name,
                        "ResponseContentDisposition": f'attachment; filename="{filename}"'})
            return Redirect(url)
        try:
            answer = await self._client.get_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise FileNotFoundError(key) from None
            raise
        body = answer["Body"]

        async def chunks() -> AsyncGenerator[bytes, None]:
            try:
                async for chunk in body.iter_chunks(DOWNLOAD_CHUNK):
                    yield chunk
            finally:
                body.close()

        return Stream(size=answer["ContentLength"], chunks=chunks())

    # -- scans ------------------------------------------------------------------------------------
    async def _listed(self, prefix: str, min_age_seconds: float) -> AsyncIterator[str]:
        """Names (after `prefix`) of the objects under it last written before the age."""
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=min_age_seconds)
        async for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["LastModified"] < cutoff:
                    yield item["Key"][len(prefix):]

    async def pending(self, min_age_seconds: float) -> list[str]:
        return [f"{name[:2]}/{name}" async for name in self._listed(self._pending, min_age_seconds)
                if BLOB_NAME.fullmatch(name)]

    async def keys(self, min_age_seconds: float) -> list[str]:
        return [name async for name in self._listed(self._blobs, min_age_seconds)
                if BLOB_NAME.fullmatch(name.rsplit("/", 1)[-1])]

    async def sweep_incomplete(self, max_age_seconds: float) -> int:
        """Scratch files, and multipart uploads a crash cut off, older than the age."""
        removed = await asyncio.to_thread(self.scratch.sweep, max_age_seconds)
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=max_age_seconds)
        paginator = self._client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=self._blobs):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    try:
                        await self._client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                                  UploadId=upload["UploadId"])
                    except ClientError as exc:
                        if exc.response.get("Error", {}).get("Code") not in _MISSING:
                            raise
                    removed += 1
        return removed
