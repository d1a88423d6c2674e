"""The simple repository API's bodies: PEP 503 HTML and PEP 691 JSON, with PEPs 592, 658/714, 700.

Rendering is pure: rows in, bytes out. File URLs are relative to the project page
(`../../files/<key>/<filename>`), so the index works behind any host name or path prefix.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import html
import json
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from gatehouse.infra.clock import as_utc

API_VERSION = "1.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


@dataclasses.dataclass(frozen=True)
class FileRow:
    filename: str
    path: str
    sha256: str
    size: int
    uploaded_at: dt.datetime
    requires_python: str | None
    metadata_sha256: str | None
    version: str
    yanked: bool
    yanked_reason: str


def file_url(path: str, filename: str) -> str:
    return f"/files/{path}/{quote(filename, safe='')}"


def _relative(path: str, filename: str) -> str:
    return "../.." + file_url(path, filename)


def _version_key(version: str):
    try:
        return (0, Version(version))
    except InvalidVersion:  # pragma: no cover - versions are validated on upload
        return (1, version)


def _upload_time(value: dt.datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sort_rows(files: list[FileRow], versions: list[str]) -> tuple[list[FileRow], list[str]]:
    files = sorted(files, key=lambda f: (_version_key(f.version), f.filename))
    return files, sorted(set(versions), key=_version_key)


def project_json(name: str, serial: int, files: list[FileRow], versions: list[str]) -> bytes:
    out = []
    for f in files:
        entry: dict = {
            "filename": f.filename,
            "url": _relative(f.path, f.filename),
            "hashes": {"sha256": f.sha256},
            "size": f.size,
            "upload-time": _upload_time(f.uploaded_at),
            "yanked": (f.yanked_reason or True) if f.yanked else False,
        }
        if f.requires_python:
            entry["requires-python"] = f.requires_python
        meta = {"sha256": f.metadata_sha256} if f.metadata_sha256 else False
        entry["core-metadata"] = meta
        entry["dist-info-metadata"] = meta
        out.append(entry)
    body = {"meta": {"api-version": API_VERSION, "_last-serial": serial}, "name": name,
            "versions": versions, "files": out}
    return json.dumps(body, separators=(",", ":")).encode()


def project_html(name: str, serial: int, files: list[FileRow]) -> bytes:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>\n<html>\n  <head>\n",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n',
        f"    <title>Links for {esc(name)}</title>\n  </head>\n  <body>\n",
        f"    <h1>Links for {esc(name)}</h1>\n",
    ]
    for f in files:
        attrs = [f'href="{esc(_relative(f.path, f.filename))}#sha256={f.sha256}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{esc(f.requires_python)}"')
        if f.metadata_sha256:
            attrs.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
            attrs.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
        if f.yanked:
            attrs.append(f'data-yanked="{esc(f.yanked_reason)}"')
        parts.append(f"    <a {' '.join(attrs)}>{esc(f.filename)}</a><br />\n")
    parts.append(f"  </body>\n</html>\n<!--SERIAL {serial}-->\n")
    return "".join(parts).encode()


def root_json(projects: list[tuple[str, str]]) -> bytes:
    body = {"meta": {"api-version": API_VERSION}, "projects": [{"name": name} for name, _ in projects]}
    return json.dumps(body, separators=(",", ":")).encode()


def root_html(projects: list[tuple[str, str]]) -> bytes:
    esc = html.escape
    parts = ["<!DOCTYPE html>\n<html>\n  <head>\n",
             f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n',
             "    <title>Simple index</title>\n  </head>\n  <body>\n"]
    for name, normalized in projects:
        parts.append(f'    <a href="{esc(quote(normalized))}/">{esc(name)}</a>\n')
    parts.append("  </body>\n</html>\n")
    return "".join(parts).encode()


# -- content negotiation (PEP 691) -----------------------------------------------------------------
_ALIASES = {
    JSON_TYPE: "json",
    "application/vnd.pypi.simple.latest+json": "json",
    HTML_TYPE: "html",
    "application/vnd.pypi.simple.latest+html": "html",
    "text/html": "text",
}
_PREFERENCE = {"json": 3, "html": 2, "text": 1}


@functools.lru_cache(maxsize=256)  # clients send a few Accept values over and over (pip: one per version)
def negotiate(accept: str | None, query_format: str | None = None) -> str | None:
    """'json', 'html' (the v1+html type), 'text' (text/html), or None when nothing offered is served."""
    if query_format:
        # A literal '+' in a query string arrives as a space.
        return _ALIASES.get(query_format.strip().lower().replace(" ", "+"))
    if not accept or not accept.strip():
        return "text"
    best, best_q, best_pref = None, 0.0, 0
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        media = media.lower()
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        choice: str | None
        if media in ("*/*", "text/*"):
            choice = "text"
        elif media == "application/*":
            choice = "json"
        else:
            choice = _ALIASES.get(media)
        if choice is None or q <= 0:
            continue
        if q > best_q or (q == best_q and _PREFERENCE[choice] > best_pref):
            best, best_q, best_pref = choice, q, _PREFERENCE[choice]
    return best


CONTENT_TYPES = {"json": JSON_TYPE, "html": HTML_TYPE, "text": "text/html; charset=utf-8"}
