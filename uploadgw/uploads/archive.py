"""Looking inside an uploaded distribution, cheaply and within bounds.

A wheel (zip) is read from its central directory; an sdist (.tar.gz or .zip) is scanned member by
member. Refused before anything large is decompressed: too many members, unsafe member names
(absolute, `..`, links leaving the tree, devices), compression beyond a ratio, oversized metadata.
Only the core metadata file itself is ever decompressed into memory.
"""

from __future__ import annotations

import dataclasses
import io
import posixpath
import re
import tarfile
import zipfile

from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata, parse_email
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from uploadgw.errors import InvalidUpload


@dataclasses.dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 100_000
    max_metadata_size: int = 4 * 1024 * 1024
    ratio_min_size: int = 64 * 1024 * 1024
    max_ratio: int = 50


@dataclasses.dataclass(frozen=True)
class ArchiveInfo:
    metadata_bytes: bytes
    requires_python: str | None
    # For wheels, the METADATA file served as PEP 658 `.metadata`.
    wheel_metadata: bytes | None


def _bad(message: str, reason: str = "invalid_distribution") -> InvalidUpload:
    return InvalidUpload(f"Invalid distribution file: {message}", reason=reason)


_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\\]")  # control characters (NUL among them), backslashes


def _check_member_name(name: str) -> None:
    if not name or _UNSAFE_CHARS.search(name):
        raise _bad(f"member {name[:80]!r} has an unsafe name.", "unsafe_member")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _bad(f"member {name[:80]!r} has an absolute path.", "unsafe_member")
    if ".." in name.split("/"):
        raise _bad(f"member {name[:80]!r} points outside the archive.", "unsafe_member")


def _check_ratio(declared: int, compressed: int, limits: ArchiveLimits) -> None:
    if declared > limits.ratio_min_size and declared > limits.max_ratio * max(compressed, 1):
        raise _bad(f"it expands to {declared} bytes from {compressed} (more than {limits.max_ratio} times "
                   f"its size).", "compression_ratio")


def inspect(source: str | bytes, *, filename: str, filetype: str, limits: ArchiveLimits, size: int) -> ArchiveInfo:
    """Check the archive (a path, or the bytes themselves) and return its core metadata (blocking)."""
    path = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        if filename.endswith(".whl"):
            raw = _wheel_metadata(path, filename, limits, size)
            return _info(raw, wheel=True)
        if filename.endswith(".zip"):
            return _info(_zip_sdist_metadata(path, limits, size), wheel=False)
        return _info(_tar_sdist_metadata(path, limits, size), wheel=False)
    except InvalidUpload:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, OSError,
            NotImplementedError, RuntimeError, ValueError) as exc:
        raise _bad(f"it is not a readable {'wheel' if filetype == 'bdist_wheel' else 'sdist'} archive "
                   f"({type(exc).__name__}).") from None


def _info(raw: bytes, *, wheel: bool) -> ArchiveInfo:
    return ArchiveInfo(metadata_bytes=raw, requires_python=None, wheel_metadata=raw if wheel else None)


def _read_bounded(fp, limit: int, what: str) -> bytes:
    data = fp.read(limit + 1)
    if len(data) > limit:
        raise _bad(f"its {what} is larger than {limit} bytes.", "metadata_too_large")
    return data


def _open_zip(path, limits: ArchiveLimits, size: int) -> zipfile.ZipFile:
    if not zipfile.is_zipfile(path):
        raise _bad("it is not a zip archive.")
    zf = zipfile.ZipFile(path)
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        zf.close()
        raise _bad(f"it has more than {limits.max_members} members.", "too_many_members")
    declared = 0
    seen: set[str] = set()
    for info in infos:
        _check_member_name(info.filename)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            zf.close()
            raise _bad(f"member {info.filename[:80]!r} uses an unsupported compression method.")
        if info.filename in seen:
            zf.close()
            raise _bad(f"member {info.filename[:80]!r} appears twice.", "duplicate_member")
        seen.add(info.filename)
        declared += info.file_size
    _check_ratio(declared, size, limits)
    return zf


def _wheel_metadata(path, filename: str, limits: ArchiveLimits, size: int) -> bytes:
    name_part, version_part = filename.split("-", 2)[:2]
    with _open_zip(path, limits, size) as zf:
        names = set(zf.namelist())
        wanted = f"{name_part}-{version_part}.dist-info"
        if f"{wanted}/METADATA" not in names:
            # Older tools escaped the directory name differently from the file name.
            wanted_name, wanted_version = canonicalize_name(name_part), Version(version_part)
            candidates = []
            for entry in names:
                top, _, rest = entry.partition("/")
                if rest != "METADATA" or not top.endswith(".dist-info") or "-" not in top:
                    continue
                dname, _, dversion = top[: -len(".dist-info")].rpartition("-")
                try:
                    if canonicalize_name(dname) == wanted_name and Version(dversion) == wanted_version:
                        candidates.append(top)
                except InvalidVersion:
                    continue
            if len(candidates) != 1:
                raise InvalidUpload(f"Wheel {filename!r} does not contain the required METADATA file: "
                                    f"{name_part}-{version_part}.dist-info/METADATA", reason="no_metadata")
            wanted = candidates[0]
        if f"{wanted}/WHEEL" not in names:
            raise InvalidUpload(f"Wheel {filename!r} does not contain the required WHEEL file: {wanted}/WHEEL",
                                reason="no_wheel_file")
        info = zf.getinfo(f"{wanted}/METADATA")
        if info.file_size > limits.max_metadata_size:
            raise _bad(f"its METADATA is larger than {limits.max_metadata_size} bytes.", "metadata_too_large")
        with zf.open(info) as fp:
            return _read_bounded(fp, limits.max_metadata_size, "METADATA")


def _single_root(names) -> str:
    roots = {name.split("/", 1)[0] for name in names if name.strip("/")}
    if len(roots) != 1:
        raise _bad("an sdist must contain exactly one top-level directory.", "sdist_layout")
    return roots.pop()


def _zip_sdist_metadata(path, limits: ArchiveLimits, size: int) -> bytes:
    with _open_zip(path, limits, size) as zf:
        root = _single_root(zf.namelist())
        try:
            info = zf.getinfo(f"{root}/PKG-INFO")
        except KeyError:
            raise _bad(f"the sdist has no {root}/PKG-INFO file.", "no_metadata") from None
        if info.file_size > limits.max_metadata_size:
            raise _bad(f"its PKG-INFO is larger than {limits.max_metadata_size} bytes.", "metadata_too_large")
        with zf.open(info) as fp:
            return _read_bounded(fp, limits.max_metadata_size, "PKG-INFO")


def _tar_sdist_metadata(path, limits: ArchiveLimits, size: int) -> bytes:
    # Stream mode: members are visited in order and never seeked back to.
    pkg_info: bytes | None = None
    root: str | None = None
    declared = 0
    count = 0
    names: set[str] = set()
    budget = max(limits.ratio_min_size, limits.max_ratio * size)
    opened = tarfile.open(fileobj=path, mode="r|gz") if isinstance(path, io.BytesIO) else \
        tarfile.open(path, mode="r|gz")
    with opened as tar:
        for member in tar:
            count += 1
            if count > limits.max_members:
                raise _bad(f"it has more than {limits.max_members} members.", "too_many_members")
            name = member.name.rstrip("/")
            _check_member_name(name)
            top = name.split("/", 1)[0]
            if root is None:
                root = top
            elif top != root:
                raise _bad("an sdist must contain exactly one top-level directory.", "sdist_layout")
            if member.isdev() or member.isfifo() or not (member.isfile() or member.isdir() or member.issym()
                                                          or member.islnk()):
                raise _bad(f"member {name[:80]!r} is not a regular file, directory or link.", "unsafe_member")
            if member.issym():
                target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
                if member.linkname.startswith("/") or target == ".." or target.startswith("../") \
                        or not (target == root or target.startswith(root + "/")):
                    raise _bad(f"link {name[:80]!r} points outside the archive.", "unsafe_member")
            if member.islnk() and member.linkname.rstrip("/") not in names:
                raise _bad(f"hard link {name[:80]!r} points to a member that is not in the archive.",
                           "unsafe_member")
            names.add(name)
            declared += max(member.size, 0)
            if declared > budget:
                raise _bad(f"it expands to more than {budget} bytes (more than {limits.max_ratio} times its "
                           f"size).", "compression_ratio")
            if member.isfile() and name == f"{root}/PKG-INFO" and pkg_info is None:
                if member.size > limits.max_metadata_size:
                    raise _bad(f"its PKG-INFO is larger than {limits.max_metadata_size} bytes.",
                               "metadata_too_large")
                fp = tar.extractfile(member)
                pkg_info = _read_bounded(fp, limits.max_metadata_size, "PKG-INFO")
    if root is None:
        raise _bad("the sdist is empty.", "sdist_layout")
    if pkg_info is None:
        raise _bad(f"the sdist has no {root}/PKG-INFO file.", "no_metadata")
    return pkg_info


def check_metadata(info: ArchiveInfo, *, canonical_name: str, version: Version, form_name: str) -> ArchiveInfo:
    """The archive's metadata must be valid and name the project and version of the upload."""
    raw, _unparsed = parse_email(info.metadata_bytes)
    name, raw_version = raw.get("name"), raw.get("version")
    if not name or not raw_version:
        raise InvalidUpload("Invalid distribution metadata: the metadata file has no Name or Version.",
                            reason="metadata_mismatch")
    try:
        same_version = Version(raw_version) == version
    except InvalidVersion:
        same_version = False
    if canonicalize_name(name) != canonical_name or not same_version:
        raise InvalidUpload(f"The distribution's metadata names {name!r} version {raw_version!r}, but the upload "
                            f"is for {form_name!r} version {str(version)!r}.", reason="metadata_mismatch")
    metadata_version = raw.get("metadata_version", "1.0")
    try:
        if Version(metadata_version) < Version("2.4"):
            # setuptools wrote License-File before Metadata 2.4 defined it; twine drops it too.
            raw.pop("license_files", None)
    except InvalidVersion:
        pass
    try:
        Metadata.from_raw(raw)
    except ExceptionGroup as group:
        problems = "; ".join(sorted(str(e) for e in group.exceptions))
        raise InvalidUpload(f"Invalid distribution metadata: {problems}", reason="invalid_metadata") from None
    except InvalidMetadata as exc:
        raise InvalidUpload(f"Invalid distribution metadata: {exc}", reason="invalid_metadata") from None
    return dataclasses.replace(info, requires_python=raw.get("requires_python"))
