"""The legacy upload form as twine sends it: parsing and the checks that need no file bytes.

Messages follow PyPI's wording where twine users already know it; each says what is wrong and
how to fix it, on one line.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidName,
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from uploadgw.errors import Gone, InvalidUpload

METADATA_VERSIONS = ("1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3", "2.4")
FILETYPES = {"sdist": (".tar.gz", ".zip"), "bdist_wheel": (".whl",)}
LEGACY_FILETYPES = {"bdist_egg", "bdist_dumb", "bdist_rpm", "bdist_wininst", "bdist_msi", "bdist_dmg"}
HEX64 = re.compile(r"^[A-Fa-f0-9]{64}$")
HEX32 = re.compile(r"^[A-Fa-f0-9]{32}$")
DESCRIPTION_TYPES = {"text/plain", "text/x-rst", "text/markdown"}
SPEC_URL = "See https://packaging.python.org/specifications/core-metadata for more information."
# Fields that may be sent as files (everything else must be a plain form field).
FILE_FIELDS = {"content", "gpg_signature"}


@dataclasses.dataclass(frozen=True)
class UploadForm:
    """The validated form: identity of the release and the file, and the client's digests."""

    name: str
    canonical_name: str
    version: str              # normalised PEP 440 text, e.g. "1.0.post1"
    canonical_version: str    # for release identity: "1.0" and "1.0.0" are one release
    parsed_version: Version
    metadata_version: str
    filetype: str
    pyversion: str
    requires_python: str | None
    md5_digest: str | None
    sha256_digest: str | None
    blake2_256_digest: str | None
    fields: dict[str, list[str]]


def _show(value: str) -> str:
    return repr(value[:30] + "..." + value[-30:] if len(value) > 60 else value)


def _invalid(value: str, field: str, error: str) -> InvalidUpload:
    return InvalidUpload(f"{_show(value)} is an invalid value for {field}. Error: {error} {SPEC_URL}",
                         reason="invalid_metadata")


def collect_fields(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for key, value in pairs:
        if "\x00" in value:
            raise InvalidUpload(f"Null bytes are not allowed in the {key!r} field.", reason="null_byte")
        value = value.strip()
        if value == "UNKNOWN" or value == "":
            # setuptools used to write UNKNOWN for missing values; PyPI drops them too.
            fields.setdefault(key, [])
            continue
        fields.setdefault(key, []).append(value)
    return fields


def _one(fields: dict[str, list[str]], key: str) -> str | None:
    values = fields.get(key) or []
    if len(values) > 1:
        raise InvalidUpload(f"The {key!r} field was sent {len(values)} times; send it once.",
                            reason="repeated_field")
    return values[0] if values else None


def check_action(fields: dict[str, list[str]]) -> None:
    """`:action` and `protocol_version`, checked first (PyPI answers these before anything else)."""
    action = _one(fields, ":action")
    if action in ("submit", "submit_pkg_info"):
        raise Gone("Project pre-registration is no longer required or supported, upload your files instead.",
                   reason="register")
    if action == "doc_upload":
        raise Gone("Uploading documentation is not supported.", reason="doc_upload")
    if action != "file_upload":
        raise InvalidUpload("Unknown or missing ':action' field; this endpoint only accepts ':action=file_upload'.",
                            reason="unknown_action")
    if (_one(fields, "protocol_version") or "1") != "1":
        raise InvalidUpload("Unknown protocol version.", reason="protocol_version")


def parse_form(fields: dict[str, list[str]]) -> UploadForm:
    """Validate the metadata fields (not the file). Raises InvalidUpload with PyPI-like messages."""
    check_action(fields)

    metadata_version = _one(fields, "metadata_version") or ""
    if metadata_version not in METADATA_VERSIONS:
        raise _invalid(metadata_version, "Metadata-Version", "Use a known metadata version.")

    name = _one(fields, "name") or ""
    try:
        canonicalize_name(name, validate=True)  # the core metadata rule, as authsvc checks it too
    except InvalidName:
        raise _invalid(name, "Name", "Start and end with a letter or numeral containing only ASCII "
                                     "numeric and '.', '_' and '-'.") from None
    if len(name) > 200:
        raise _invalid(name, "Name", "Use at most 200 characters.")

    raw_version = _one(fields, "version") or ""
    try:
        parsed = Version(raw_version)
    except InvalidVersion:
        raise _invalid(raw_version, "Version", "Start and end with a letter or numeral containing only "
                                               "ASCII numeric and '.', '_' and '-'.") from None
    if parsed.local is not None:
        raise _invalid(raw_version, "Version", "Can't use PEP 440 local versions.")
    if len(str(parsed)) > 100:
        raise _invalid(raw_version, "Version", "Use at most 100 characters.")

    summary = _one(fields, "summary")
    if summary is not None and ("\n" in summary or "\r" in summary):
        raise _invalid(summary, "Summary", "Use a single line only.")
    if summary is not None and len(summary) > 512:
        raise _invalid(summary, "Summary", "Use at most 512 characters.")

    requires_python = _one(fields, "requires_python")
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            raise _invalid(requires_python, "Requires-Python", "Invalid specifier.") from None
        if len(requires_python) > 200:
            raise _invalid(requires_python, "Requires-Python", "Use at most 200 characters.")

    dct = _one(fields, "description_content_type")
    if dct is not None:
        main = dct.split(";", 1)[0].strip().lower()
        if main not in DESCRIPTION_TYPES:
            raise _invalid(dct, "Description-Content-Type",
                           "Invalid description content type: type/subtype is not valid.")

    license_expression = _one(fields, "license_expression")
    if license_expression is not None:
        _check_license_expression(license_expression)

    for requirement in fields.get("requires_dist", []):
        _check_requirement(requirement)

    for url in fields.get("project_urls", []):
        label, sep, target = (part.strip() for part in url.partition(","))
        if not sep or not label or not target:
            raise _invalid(url, "Project-URL", "Use both a label and an URL.")

    filetype = _one(fields, "filetype") or ""
    if filetype in LEGACY_FILETYPES:
        raise InvalidUpload(f"Uploading {filetype} files is not supported; upload a wheel or an sdist.",
                            reason="filetype")
    if filetype not in FILETYPES:
        raise InvalidUpload(f"Invalid value for filetype: {_show(filetype)}. Use 'sdist' or 'bdist_wheel'.",
                            reason="filetype")

    pyversion = _one(fields, "pyversion") or ""
    if filetype == "sdist":
        if pyversion and pyversion != "source":
            raise InvalidUpload("Use 'source' as Python version for an sdist.", reason="pyversion")
        pyversion = "source"
    elif not pyversion:
        raise InvalidUpload("Python version is required for binary distribution uploads.", reason="pyversion")
    if len(pyversion) > 100:
        raise InvalidUpload("Invalid value for pyversion: too long.", reason="pyversion")

    md5 = _one(fields, "md5_digest")
    sha256 = _one(fields, "sha256_digest")
    blake2 = _one(fields, "blake2_256_digest")
    if md5 is not None and not HEX32.match(md5):
        raise InvalidUpload("Invalid value for md5_digest: use a valid, hex-encoded MD5 digest.", reason="digest")
    if sha256 is not None and not HEX64.match(sha256):
        raise InvalidUpload("Invalid value for sha256_digest: use a valid, hex-encoded SHA256 message digest.",
                            reason="digest")
    if blake2 is not None and not HEX64.match(blake2):
        raise InvalidUpload("Invalid value for blake2_256_digest: use a valid, hex-encoded BLAKE2 message "
                            "digest.", reason="digest")
    if sha256 is None and blake2 is None:
        raise InvalidUpload("Include at least one strong message digest (sha256_digest or blake2_256_digest).",
                            reason="digest")

    return UploadForm(
        name=name, canonical_name=canonicalize_name(name), version=str(parsed),
        canonical_version=canonicalize_version(parsed), parsed_version=parsed,
        metadata_version=metadata_version, filetype=filetype, pyversion=pyversion,
        requires_python=requires_python, md5_digest=md5 and md5.lower(),
        sha256_digest=sha256 and sha256.lower(), blake2_256_digest=blake2 and blake2.lower(),
        fields=fields,
    )


def _check_license_expression(value: str) -> None:
    # packaging compiles each expression, and most uploads repeat a few short ones: those are cached.
    problem = (_known_license_expression_problem if len(value) <= 200 else _license_expression_problem)(value)
    if problem is not None:
        raise _invalid(value, "License-Expression", problem)


def _license_expression_problem(value: str) -> str | None:
    try:
        from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
    except ImportError:  # pragma: no cover - packaging < 24.2
        return None
    try:
        canonicalize_license_expression(value)
    except InvalidLicenseExpression as exc:
        return f"{exc}."
    return None


_known_license_expression_problem = functools.lru_cache(maxsize=256)(_license_expression_problem)


def _check_requirement(value: str) -> None:
    try:
        requirement = Requirement(value)
    except InvalidRequirement:
        raise _invalid(value, "Requires-Dist", "Invalid requirement.") from None
    if requirement.url is not None:
        raise _invalid(value, "Requires-Dist", "Can't have direct dependency.")


_DISALLOWED_CHARS = {chr(c) for c in range(32)} | {chr(127)}


def check_filename(filename: str, form: UploadForm) -> None:
    """The uploaded file's name: safe characters, the right extension, this project and version."""
    if not filename:
        raise InvalidUpload("Upload payload does not have a file name.", reason="filename")
    if any(ch in _DISALLOWED_CHARS for ch in filename):
        raise InvalidUpload("Cannot upload a file with non-printable characters (ordinals 0-31) or the DEL "
                            "character (ordinal 127) in the name.", reason="filename")
    if "/" in filename or "\\" in filename:
        raise InvalidUpload("Cannot upload a file with '/' or '\\' in the name.", reason="filename")
    if len(filename) > 255 or filename.startswith("."):
        raise InvalidUpload("Invalid file name: use at most 255 characters and do not start with '.'.",
                            reason="filename")
    lowered = filename.lower()
    extension = next((ext for ext in (".tar.gz", ".zip", ".whl") if lowered.endswith(ext)), None)
    if extension is None:
        raise InvalidUpload("Invalid file extension: Use .tar.gz, .whl or .zip extension. See "
                            "https://peps.python.org/pep-0527 and https://peps.python.org/pep-0715 for more "
                            "information.", reason="extension")
    if extension not in FILETYPES[form.filetype]:
        raise InvalidUpload(f"Invalid file extension: Extension {extension} is invalid for filetype "
                            f"{form.filetype}. See https://peps.python.org/pep-0527 for more information.",
                            reason="extension")
    if not filename.endswith(extension):
        raise InvalidUpload(f"Invalid file extension: use a lower-case {extension!r}.", reason="extension")

    if form.filetype == "bdist_wheel":
        try:
            name, version, _build, _tags = parse_wheel_filename(filename)
        except (InvalidWheelFilename, InvalidVersion) as exc:
            raise InvalidUpload(f"Invalid wheel filename: {exc}", reason="filename") from None
    else:
        try:
            name, version = parse_sdist_filename(filename)
        except (InvalidSdistFilename, InvalidVersion) as exc:
            raise InvalidUpload(f"Invalid sdist filename: {exc}", reason="filename") from None
    if name != form.canonical_name:
        prefix = form.canonical_name.replace("-", "_")
        raise InvalidUpload(f"Start filename for {form.name!r} with {prefix!r}.", reason="filename_project")
    if version != form.parsed_version:
        raise InvalidUpload(f"Version in filename should be {form.version!r} not {str(version)!r}.",
                            reason="filename_version")
