"""Where distribution files live: a small interface and its local-filesystem implementation (the
S3 one is uploadgw/storage/s3store.py).

Keys are chosen by the server: the content's SHA-256 and a random tag (see `new_key`), never the
client's filename. Each upload stores its bytes under a key of its own, durably, while authsvc is
still deciding; the blob is reachable only through the database row that names its key, so it is
invisible until that row commits, and a refused upload removes its own blob without any risk of
touching another upload's (even one of identical bytes). A stored blob is registered as *pending*
until its row commits (`settle`); the sweeper removes pending blobs that no row names once they are
old enough (a replica died between storing and recording). Several gateway replicas may share one
directory (a network filesystem): every name is created by one upload only, and the sweeps go by
age only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pathlib
import re
import secrets
import time
from collections.abc import AsyncGenerator, Iterator
from typing import BinaryIO, Protocol

_SHA256 = re.compile(r"[0-9a-f]{64}")
BLOB_NAME = re.compile(r"[0-9a-f]{64}-[0-9a-f]{16}")
_FANOUT = [f"{i:02x}" for i in range(256)]
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL


def new_key(sha256_hex: str) -> str:
    """`ab/<sha256>-<16 random hex>`: where the content is, and which upload stored it. (Keys of
    earlier versions, `ab/cd/<sha256>-<tag>`, stay valid.)"""
    sha = sha256_hex.lower()
    if not _SHA256.fullmatch(sha):
        raise ValueError("a storage key is made from a hex SHA-256")
    return f"{sha[:2]}/{sha}-{secrets.token_hex(8)}"


@dataclasses.dataclass(frozen=True)
class LocalFile:
    """A download answered from a file on this machine (sent with `sendfile`)."""

    path: str


@dataclasses.dataclass(frozen=True)
class Stream:
    """A download streamed through the gateway: `size` bytes from `chunks`, which releases its
    connection when exhausted or closed (`contextlib.aclosing`)."""

    size: int
    chunks: AsyncGenerator[bytes, None]


@dataclasses.dataclass(frozen=True)
class Redirect:
    """A download answered by the store itself: a presigned URL valid for a few seconds only."""

    url: str


Download = LocalFile | Stream | Redirect


class Scratch:
    """Temporary files of uploads in progress, on this machine's disk whatever the store: the archive
    check reads a wheel's central directory, at its end, so the bytes are spooled before they are
    stored. Files left by a crashed replica are removed by age (`sweep`)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def new_temp(self) -> tuple[str, BinaryIO]:
        """Blocking: a fresh temporary file, (its path, opened for binary writing)."""
        path = self.directory / f"upload-{secrets.token_hex(12)}.part"
        fp = open(path, "xb")  # noqa: SIM115 - the caller owns and closes it
        return str(path), fp

    def discard_temp(self, temp_path: str) -> None:
        _unlink(temp_path)

    def sweep(self, max_age_seconds: float) -> int:
        """Blocking: remove temporary files older than the given age."""
        cutoff = time.time() - max_age_seconds
        removed = 0
        for entry in os.scandir(self.directory):
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def names(self) -> list[str]:
        return os.listdir(self.directory)


class FileStore(Protocol):
    """Where blobs live (this machine's disk, or an S3 bucket). Every method may be awaited from the
    event loop; the blocking ones run in worker threads inside the store."""

    scratch: Scratch

    async def store(self, sha256: str, source: bytes | str) -> str:
        """Put an upload's bytes (`source` is the bytes, or a finished scratch file, which the store
        takes) durably under a new key of its own, registered as pending; return the key. On any
        failure nothing of this call is left but, at worst, a pending registration (the sweeper's)."""

    async def settle(self, key: str) -> None:
        """The key's row committed: the blob is no longer pending."""

    async def discard(self, key: str) -> None:
        """The key will never be recorded: remove the blob and its pending entry."""

    async def pending(self, min_age_seconds: float) -> list[str]:
        """Keys stored at least this long ago and not settled (or discarded) since."""

    async def download(self, key: str, filename: str) -> Download:
        """How to answer a request for the blob, sent as `filename` (FileNotFoundError: none)."""

    async def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error (deletions are re-run after crashes)."""

    async def exists(self, key: str) -> bool: ...

    async def sweep_incomplete(self, max_age_seconds: float) -> int:
        """Remove what crashed uploads left older than the given age: scratch files, and the
        store's own partial writes (an object store's incomplete multipart uploads)."""

    async def keys(self, min_age_seconds: float) -> list[str]:
        """Keys of all blobs older than the given age (a full scan, for the operator's sweep)."""


class LocalFileStore:
    """Blobs under `<root>/blobs/ab/<key name>` (the 256 `ab` directories are made when the store
    is opened, so an upload creates none), temporaries under `<root>/tmp` (same filesystem), pending
    registrations under `<root>/pending/<key name>`.

    A pending registration is a second name of the blob itself (a hard link): the bytes are written
    under the registration's name, which is then linked to the blob's place, so the registration
    exists before the blob does, costs no file of its own, and carries the blob's age. Where the
    filesystem has no hard links (some SMB shares), the registration is an empty file made first."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True):
        self.root = pathlib.Path(root)
        self.blobs = self.root / "blobs"
        self.scratch = Scratch(self.root / "tmp")  # the same filesystem: a finished upload is moved
        self.pending_dir = self.root / "pending"
        self.fsync = fsync
        for directory in (self.blobs, self.pending_dir):
            directory.mkdir(parents=True, exist_ok=True)
        made = False
        for name in _FANOUT:
            try:
                (self.blobs / name).mkdir()
                made = True
            except FileExistsError:
                pass
        if made and fsync:
            _fsync_path(self.blobs)
        self.hard_links = _hard_links_work(self.scratch.directory)

    def _path(self, key: str) -> pathlib.Path:
        parts = key.split("/")
        if len(parts) not in (2, 3) or any(not p or p in (".", "..") for p in parts):
            raise ValueError(f"malformed storage key {key!r}")
        return self.blobs.joinpath(*parts)

    def _marker(self, key: str) -> pathlib.Path:
        return self.pending_dir / self._path(key).name

    async def store(self, sha256: str, source: bytes | str) -> str:
        return await asyncio.to_thread(self._store, sha256, source)

    def _store(self, sha256: str, source: bytes | str) -> str:
        while True:
            key = new_key(sha256)
            try:
                self._store_as(key, source)
                return key
            except FileExistsError:  # 64 random bits met themselves: draw again
                continue

    def _store_as(self, key: str, source: bytes | str) -> None:
        """The upload's bytes under `key` and its registration, durably; on any failure nothing this
        call made is left (FileExistsError: a name was taken, and what holds it is not touched)."""
        final, marker = self._path(key), self._marker(key)
        made: list[pathlib.Path] = []
        fd = -1
        try:
            if not self.hard_links:  # the registration first: an empty file
                os.close(os.open(marker, _NEW, 0o644))
                made.append(marker)
            first = marker if self.hard_links else final
            if isinstance(source, bytes):
                fd = os.open(first, _NEW, 0o644)
                made.append(first)
                view = memoryview(source)
                while view:
                    view = view[os.write(fd, view):]
            else:  # a finished temporary file takes the name (no bytes are copied)
                os.chmod(source, 0o644)
                if self.hard_links:
                    os.link(source, first)
                elif first.exists():
                    raise FileExistsError(first)
                else:
                    os.replace(source, first)
                made.append(first)
            if self.hard_links:
                os.link(marker, final)
                made.append(final)
            if self.fsync:
                # Every change came first, then the file's bytes, then the directory that gained the
                # blob's name: a journalling filesystem commits them all at once. The registration's
                # directory is not synced (each sync costs a disk flush): a power cut
                # that keeps the blob but loses its registration leaves what the full sweep collects.
                os.fsync(fd) if fd >= 0 else _fsync_path(final)
                _fsync_path(final.parent)
            if self.hard_links and not isinstance(source, bytes):
                os.unlink(source)  # its bytes have their names now
        except BaseException:
            for path in made:
                _unlink(path)
            raise
        finally:
            if fd >= 0:
                os.close(fd)

    async def settle(self, key: str) -> None:
        # Not synced: a registration that comes back after a crash is settled again by the sweeper.
        await asyncio.to_thread(_unlink, self._marker(key))

    async def discard(self, key: str) -> None:
        await self.delete(key)
        await self.settle(key)

    async def pending(self, min_age_seconds: float) -> list[str]:
        return await asyncio.to_thread(lambda: list(self._iter_pending(min_age_seconds)))

    def _iter_pending(self, min_age_seconds: float) -> Iterator[str]:
        cutoff = time.time() - min_age_seconds
        for entry in os.scandir(self.pending_dir):
            if not BLOB_NAME.fullmatch(entry.name):
                continue
            try:
                if entry.stat().st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            name = entry.name
            earlier = f"{name[:2]}/{name[2:4]}/{name}"  # a key of an earlier version's shape
            yield earlier if (self.blobs / earlier).exists() else f"{name[:2]}/{name}"

    async def download(self, key: str, filename: str) -> Download:
        return LocalFile(str(self._path(key)))

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(_unlink, self._path(key))

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def sweep_incomplete(self, max_age_seconds: float) -> int:
        return await asyncio.to_thread(self.scratch.sweep, max_age_seconds)

    async def keys(self, min_age_seconds: float) -> list[str]:
        return await asyncio.to_thread(lambda: list(self._iter_keys(min_age_seconds)))

    def _iter_keys(self, min_age_seconds: float) -> Iterator[str]:
        cutoff = time.time() - min_age_seconds

        def old_enough(entry: os.DirEntry[str]) -> bool:
            try:
                return entry.is_file() and entry.stat().st_mtime < cutoff
            except FileNotFoundError:
                return False

        for first in os.scandir(self.blobs):
            if not first.is_dir():
                continue
            for entry in os.scandir(first.path):
                if entry.is_dir():  # `ab/cd/`: an earlier version's layout
                    yield from (f"{first.name}/{entry.name}/{blob.name}"
                                for blob in os.scandir(entry.path) if old_enough(blob))
                elif old_enough(entry):
                    yield f"{first.name}/{entry.name}"


def _unlink(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _hard_links_work(directory: pathlib.Path) -> bool:
    """Does this filesystem make hard links? (Tried once, on a scratch file.)"""
    probe = directory / f"link-probe-{secrets.token_hex(8)}"
    try:
        probe.touch(exist_ok=False)
    except OSError:
        return False
    try:
        os.link(probe, f"{probe}.2")
        os.unlink(f"{probe}.2")
        return True
    except OSError:
        return False
    finally:
        _unlink(probe)


def _fsync_path(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
