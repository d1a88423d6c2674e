"""Test distributions written with zipfile/tarfile (fast), and a tiny project for `python -m build`."""

from __future__ import annotations

import base64
import hashlib
import io
import pathlib
import tarfile
import zipfile


def metadata_text(name: str, version: str, *, summary: str = "a test distribution",
                  requires_python: str | None = ">=3.8", extra: str = "", metadata_version: str = "2.4") -> str:
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
        "Author-email: Test Bot <bot@example.org>",
    ]
    if metadata_version == "2.4":
        lines += ["License-Expression: MIT", "License-File: LICENSE"]
    lines += ["Classifier: Programming Language :: Python :: 3",
              "Project-URL: Homepage, https://example.org/home"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    if extra:
        lines.append(extra.rstrip("\n"))
    lines += ["Description-Content-Type: text/markdown", "", f"# {name}\n\nHello.\n"]
    return "\n".join(lines)


def _record(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def wheel_name(name: str, version: str, tag: str = "py3-none-any") -> str:
    return f"{name.replace('-', '_')}-{version}-{tag}.whl"


def make_wheel(outdir: pathlib.Path, name: str, version: str, *, metadata: str | None = None,
               extra_files: dict[str, bytes] | None = None, payload: bytes | None = None,
               filename: str | None = None, tag: str = "py3-none-any", omit_metadata: bool = False,
               requires_python: str | None = ">=3.8", module: str | None = None) -> pathlib.Path:
    dist = name.replace("-", "_")
    distinfo = f"{dist}-{version}.dist-info"
    module = module or dist
    files: dict[str, bytes] = {
        f"{module}/__init__.py": f'__version__ = "{version}"\nNAME = "{name}"\n'.encode(),
        f"{distinfo}/WHEEL": f"Wheel-Version: 1.0\nGenerator: gatehouse-tests\nRoot-Is-Purelib: true\n"
                             f"Tag: {tag}\n".encode(),
        f"{distinfo}/licenses/LICENSE": b"MIT License\n",
    }
    if not omit_metadata:
        files[f"{distinfo}/METADATA"] = (metadata if metadata is not None else
                                         metadata_text(name, version, requires_python=requires_python)).encode()
    if payload is not None:
        files[f"{module}/payload.bin"] = payload
    files.update(extra_files or {})
    record = "\n".join(_record(p, d) for p, d in files.items()) + f"\n{distinfo}/RECORD,,\n"
    files[f"{distinfo}/RECORD"] = record.encode()
    path = outdir / (filename or wheel_name(name, version, tag))
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in files.items():
            info = zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if member.endswith(".bin") else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return path


def sdist_name(name: str, version: str) -> str:
    return f"{name.replace('-', '_')}-{version}.tar.gz"


def make_sdist(outdir: pathlib.Path, name: str, version: str, *, metadata: str | None = None,
               members: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] | None = None,
               filename: str | None = None, root: str | None = None) -> pathlib.Path:
    dist = name.replace("-", "_")
    root = root or f"{dist}-{version}"
    contents = {
        f"{root}/PKG-INFO": (metadata if metadata is not None else metadata_text(name, version)).encode(),
        f"{root}/pyproject.toml": f'[project]\nname = "{name}"\nversion = "{version}"\n'.encode(),
        f"{root}/{dist}/__init__.py": f'__version__ = "{version}"\n'.encode(),
    }
    path = outdir / (filename or sdist_name(name, version))
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for member, data in contents.items():
            info = tarfile.TarInfo(member)
            info.size, info.mtime, info.mode = len(data), 1704067200, 0o644
            tf.addfile(info, io.BytesIO(data))
        for extra in members or []:
            if isinstance(extra, tuple):
                tf.addfile(extra[0], io.BytesIO(extra[1]))
            else:
                tf.addfile(extra)
    return path


def write_build_project(root: pathlib.Path, name: str, version: str) -> pathlib.Path:
    """A minimal setuptools project, to be built by `python -m build` in the test."""
    module = name.replace("-", "_")
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        "[build-system]\nrequires = [\"setuptools>=70\"]\nbuild-backend = \"setuptools.build_meta\"\n\n"
        f"[project]\nname = \"{name}\"\nversion = \"{version}\"\ndescription = \"built in a test\"\n"
        "requires-python = \">=3.8\"\nlicense = \"MIT\"\nreadme = \"README.md\"\n\n"
        "[tool.setuptools]\npackages = [\"" + module + "\"]\n")
    (root / "README.md").write_text(f"# {name}\n\nBuilt by the gateway tests.\n")
    (root / "LICENSE").write_text("MIT License\n")
    (root / module).mkdir(exist_ok=True)
    (root / module / "__init__.py").write_text(f'VERSION = "{version}"\n')
    return root
