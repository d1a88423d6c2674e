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


def new_key(sha256_hex: str) -> str:
    """`ab/cd/<sha256>-<16 random hex>`: where the content is, and which upload stored it."""
    sha = sha256_hex.lower()
    if not _SHA256.fullmatch(sha):
        raise ValueError("a storage key is made from a hex SHA-256")
    return f"{sha[:2]}/{sha[2:4]}/{sha}-{secrets.token_hex(8)}"


class FileStore(Protocol):
    def new_temp(self) -> tuple[str, BinaryIO]:
        """A fresh temporary file for an incoming upload: (its path, opened for binary writing)."""

    def store(self, sha256: str, source: bytes | str) -> str:
        """Blocking: put an upload's bytes (`source` is the bytes, or a finished temporary file,
        which is moved) durably under a new key of its own, registered as pending; return the key.
        (A power cut during the call may leave the blob without its registration on a filesystem
        that does not keep metadata changes in order: the operator's full sweep collects it.)"""

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
    """Blobs under `<root>/blobs/ab/cd/<key name>`, temporaries under `<root>/tmp` (same filesystem),
    pending registrations as empty files `<root>/pending/<key name>`."""

    def __init__(self, root: str | os.PathLike, *, fsync: bool = True):
        self.root = pathlib.Path(root)
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        self.pending = self.root / "pending"
        self.fsync = fsync
        for directory in (self.blobs, self.tmp, self.pending):
            directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> pathlib.Path:
        parts = key.split("/")
        if len(parts) != 3 or any(not p or p in (".", "..") for p in parts):
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
            final = self._path(key)
            marker = self._marker(key)
            if final.exists():  # 64 random bits met themselves: draw again
                continue
            try:
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                continue
            break
        try:
            new_parents = self._make_dirs(final.parent)
            if isinstance(source, bytes):
                fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    view = memoryview(source)
                    while view:
                        view = view[os.write(fd, view):]
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            else:
                os.chmod(source, 0o644)
                os.replace(source, final)  # a fresh random name: nothing is replaced
                if self.fsync:
                    _fsync_path(final)
            # Every entry made above is made durable in its directory. The changes come first and
            # the file's fsync next, so a journalling filesystem commits them together and these
            # directory syncs find little left to do (one journal commit instead of several).
            if self.fsync:
                for directory in (self.pending, *new_parents, final.parent):
                    _fsync_path(directory)
        except BaseException:
            self.discard(key)
            raise
        return key

    def _make_dirs(self, directory: pathlib.Path) -> list[pathlib.Path]:
        """Create the missing directories; return the parents whose new entries need syncing."""
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for new in reversed(missing):
            try:
                new.mkdir()
            except FileExistsError:  # another upload is making it: its parent is synced here too
                continue
        return [new.parent for new in reversed(missing)]

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
                if entry.stat().st_mtime < cutoff:
                    yield f"{entry.name[:2]}/{entry.name[2:4]}/{entry.name}"
            except FileNotFoundError:
                continue

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
        for first in os.scandir(self.blobs):
            if not first.is_dir():
                continue
            for second in os.scandir(first.path):
                if not second.is_dir():
                    continue
                for blob in os.scandir(second.path):
                    try:
                        if blob.is_file() and blob.stat().st_mtime < cutoff:
                            yield f"{first.name}/{second.name}/{blob.name}"
                    except FileNotFoundError:
                        continue


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_path(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
