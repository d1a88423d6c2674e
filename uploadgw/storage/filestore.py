"""Where distribution files live: a small interface and its local-filesystem implementation.

Keys are chosen by the server from the content's SHA-256 (see `key_for`), never taken from the
client's filename. A blob appears under its key only by an atomic rename of a finished temporary
file, so readers never see a partial file. Several gateway replicas may share one directory (a
network filesystem): renames are atomic, identical content lands on the identical key, and the
temporary area is swept by age only.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import secrets
import time
from typing import BinaryIO, Protocol


def key_for(sha256_hex: str, filename: str, *, kind: str = "") -> str:
    """`ab/cd/<sha256>-<16 hex of the filename's hash><kind>`: content-addressed, and distinct per file.

    Filenames are never reused, so a key belongs to one file for ever: deleting it cannot race an
    upload of the same bytes under another name."""
    sha = sha256_hex.lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError("a storage key is made from a hex SHA-256")
    tag = hashlib.sha256(filename.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{sha[:2]}/{sha[2:4]}/{sha}-{tag}{kind}"


class FileStore(Protocol):
    def new_temp(self) -> tuple[str, BinaryIO]:
        """A fresh temporary file for an incoming upload: (its path, opened for binary writing)."""

    def write_temp(self, data: bytes) -> str:
        """A temporary file holding `data`, already flushed to stable storage (see `seal`)."""

    def seal(self, temp_path: str) -> None:
        """Make a finished temporary file's bytes durable before it is published."""

    def prepare(self, key: str) -> None:
        """Ready what `put_from_temp(..., key)` needs that may be made before the upload is authorised
        and reveals nothing (a local store: the key's directories, durably)."""

    def put_from_temp(self, temp_path: str, key: str, *, sealed: bool = False) -> bool:
        """Move a finished temporary file under `key` atomically; True when it was not there before.

        When the key already exists (identical content) the temporary file is removed instead."""

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
        """Keys of blobs older than the given age (for collecting blobs that no row references)."""


class LocalFileStore:
    """Blobs under `<root>/blobs/ab/cd/<sha256>`, temporaries under `<root>/tmp` (same filesystem)."""

    def __init__(self, root: str | os.PathLike, *, fsync: bool = True):
        self.root = pathlib.Path(root)
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        self.fsync = fsync
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> pathlib.Path:
        parts = key.split("/")
        if len(parts) != 3 or any(not p or p in (".", "..") for p in parts):
            raise ValueError(f"malformed storage key {key!r}")
        return self.blobs.joinpath(*parts)

    def new_temp(self) -> tuple[str, BinaryIO]:
        path = self.tmp / f"upload-{secrets.token_hex(12)}.part"
        fp = open(path, "xb")  # noqa: SIM115 - the caller owns and closes it
        return str(path), fp

    def write_temp(self, data: bytes) -> str:
        path, fp = self.new_temp()
        try:
            with fp:
                fp.write(data)
                if self.fsync:
                    fp.flush()
                    os.fsync(fp.fileno())
        except BaseException:
            self.discard_temp(path)
            raise
        return path

    def seal(self, temp_path: str) -> None:
        if self.fsync:
            fd = os.open(temp_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def prepare(self, key: str) -> None:
        self._make_dirs(self._path(key).parent)

    def _make_dirs(self, directory: pathlib.Path) -> None:
        """Create the missing directories, each new entry made durable in its parent."""
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for new in reversed(missing):
            try:
                new.mkdir()
            except FileExistsError:  # another upload made it
                continue
            if self.fsync:
                _fsync_dir(new.parent)

    def put_from_temp(self, temp_path: str, key: str, *, sealed: bool = False) -> bool:
        final = self._path(key)
        if final.exists():
            self.discard_temp(temp_path)
            return False
        self._make_dirs(final.parent)  # nothing to do after `prepare`
        if not sealed:
            self.seal(temp_path)
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, final)
        if self.fsync:
            _fsync_dir(final.parent)
        return True

    def put_bytes(self, data: bytes, key: str) -> bool:
        if self._path(key).exists():
            return False
        return self.put_from_temp(self.write_temp(data), key, sealed=True)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def discard_temp(self, temp_path: str) -> None:
        try:
            os.unlink(temp_path)
        except FileNotFoundError:
            pass

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


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
