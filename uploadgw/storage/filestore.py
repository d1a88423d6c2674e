"""Where distribution files live: a small interface and its local-filesystem implementation.

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

import os
import pathlib
import re
import secrets
import time
from typing import BinaryIO, Protocol

_SHA256 = re.compile(r"[0-9a-f]{64}")
_BLOB_NAME = re.compile(r"[0-9a-f]{64}-[0-9a-f]{16}")
_FANOUT = [f"{i:02x}" for i in range(256)]
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL


def new_key(sha256_hex: str) -> str:
    """`ab/<sha256>-<16 random hex>`: where the content is, and which upload stored it. (Keys of
    earlier versions, `ab/cd/<sha256>-<tag>`, stay valid.)"""
    sha = sha256_hex.lower()
    if not _SHA256.fullmatch(sha):
        raise ValueError("a storage key is made from a hex SHA-256")
    return f"{sha[:2]}/{sha}-{secrets.token_hex(8)}"


class FileStore(Protocol):
    def new_temp(self) -> tuple[str, BinaryIO]:
        """A fresh temporary file for an incoming upload: (its path, opened for binary writing)."""

    def store(self, sha256: str, source: bytes | str) -> str:
        """Blocking: put an upload's bytes (`source` is the bytes, or a finished temporary file,
        which is moved) durably under a new key of its own, registered as pending; return the key.
        (The registration itself is not synced: a power cut soon after the call may leave the blob
        without it on a filesystem that does not keep metadata changes in order; the operator's
        full sweep collects such a blob if no row names it.)"""

    def settle(self, key: str) -> None:
        """The key's row committed: the blob is no longer pending."""

    def discard(self, key: str) -> None:
        """The key will never be recorded: remove the blob and its pending entry."""

    def iter_pending(self, min_age_seconds: float):
        """Keys stored at least this long ago and not settled (or discarded) since."""

    def open(self, key: str) -> BinaryIO: ...

    def local_path(self, key: str) -> str | None:
        """A filesystem path for zero-copy serving, or None for stores that have none."""

    def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error (deletions are re-run after crashes)."""

    def exists(self, key: str) -> bool: ...

    def discard_temp(self, temp_path: str) -> None: ...

    def sweep_temp(self, max_age_seconds: float) -> int:
        """Remove temporary files older than the given age (left by a crashed replica)."""

    def iter_keys(self, min_age_seconds: float):
        """Keys of all blobs older than the given age (a full scan, for the operator's sweep)."""


class LocalFileStore:
    """Blobs under `<root>/blobs/ab/<key name>` (the 256 `ab` directories are made when the store
    is opened, so an upload creates none), temporaries under `<root>/tmp` (same filesystem), pending
    registrations under `<root>/pending/<key name>`.

    A pending registration is a second name of the blob itself (a hard link): the bytes are written
    under the registration's name, which is then linked to the blob's place, so the registration
    exists before the blob does, costs no file of its own, and carries the blob's age. Where the
    filesystem has no hard links (some SMB shares), the registration is an empty file made first."""

    def __init__(self, root: str | os.PathLike, *, fsync: bool = True):
        self.root = pathlib.Path(root)
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        self.pending = self.root / "pending"
        self.fsync = fsync
        for directory in (self.blobs, self.tmp, self.pending):
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
        self.hard_links = _hard_links_work(self.tmp)

    def _path(self, key: str) -> pathlib.Path:
        parts = key.split("/")
        if len(parts) not in (2, 3) or any(not p or p in (".", "..") for p in parts):
            raise ValueError(f"malformed storage key {key!r}")
        return self.blobs.joinpath(*parts)

    def _marker(self, key: str) -> pathlib.Path:
        return self.pending / self._path(key).name

    def new_temp(self) -> tuple[str, BinaryIO]:
        path = self.tmp / f"upload-{secrets.token_hex(12)}.part"
        fp = open(path, "xb")  # noqa: SIM115 - the caller owns and closes it
        return str(path), fp

    def store(self, sha256: str, source: bytes | str) -> str:
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

    def settle(self, key: str) -> None:
        # Not synced: a registration that comes back after a crash is settled again by the sweeper.
        _unlink(self._marker(key))

    def discard(self, key: str) -> None:
        self.delete(key)
        self.settle(key)

    def iter_pending(self, min_age_seconds: float):
        cutoff = time.time() - min_age_seconds
        for entry in os.scandir(self.pending):
            if not _BLOB_NAME.fullmatch(entry.name):
                continue
            try:
                if entry.stat().st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            name = entry.name
            earlier = f"{name[:2]}/{name[2:4]}/{name}"  # a key of an earlier version's shape
            yield earlier if (self.blobs / earlier).exists() else f"{name[:2]}/{name}"

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))

    def delete(self, key: str) -> None:
        _unlink(self._path(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def discard_temp(self, temp_path: str) -> None:
        _unlink(temp_path)

    def sweep_temp(self, max_age_seconds: float) -> int:
        cutoff = time.time() - max_age_seconds
        removed = 0
        for entry in os.scandir(self.tmp):
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def iter_keys(self, min_age_seconds: float):
        cutoff = time.time() - min_age_seconds

        def old_enough(entry: os.DirEntry) -> bool:
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


def _unlink(path) -> None:
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


def _fsync_path(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
