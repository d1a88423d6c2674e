"""Installs are reproducible: uv.lock pins every environment with hashes, and it agrees with
pyproject.toml (a dependency changed in one and not the other fails here, offline)."""

from __future__ import annotations

import importlib.util
import pathlib
import shutil
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
UV = pathlib.Path(sys.executable).parent / "uv"


def _dev():
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(project: pathlib.Path, cache: pathlib.Path) -> subprocess.CompletedProcess:
    """`uv lock --check` with no network and an empty cache: it passes only when the lock already
    records exactly what pyproject.toml asks for (anything else would need a new resolution)."""
    return subprocess.run([str(UV), "lock", "--check", "--offline", "--cache-dir", str(cache)],
                          cwd=project, capture_output=True, text=True, timeout=60)


def test_the_lock_agrees_with_pyproject(tmp_path):
    result = _check(ROOT, tmp_path / "cache")
    assert result.returncode == 0, f"uv.lock is out of date, run `python3 dev.py lock`:\n{result.stderr}"


def test_a_dependency_changed_in_pyproject_alone_is_caught(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "uv.lock", project)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"pyotp>=2.9,<3"' in pyproject
    (project / "pyproject.toml").write_text(pyproject.replace('"pyotp>=2.9,<3"', '"pyotp>=2.9.1,<3"'))
    assert _check(project, tmp_path / "cache").returncode != 0


def test_every_locked_file_has_a_hash_and_the_lock_covers_each_environment():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    names = {p["name"] for p in lock["package"]}
    # the services, the test extra (the generator, twine, the tools) and the kustomize renderer
    assert {"grpcio", "aiohttp", "grpcio-tools", "twine", "pytest", "uv", "pip", "pykustomize"} <= names
    for package in lock["package"]:
        if package["source"].get("registry"):
            files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
            assert files and all(f["hash"].startswith("sha256:") for f in files), package["name"]


def test_what_dev_py_installs_with_pip_is_pinned_and_hashed_by_the_lock():
    dev = _dev()
    for name in ("uv", "pykustomize"):
        line = dev.locked_requirement(name)
        assert line.startswith(f"{name}==") and "--hash=sha256:" in line, line
    assert dev.locked_requirement("uv").split()[0] == f"uv=={_installed_uv()}"


def _installed_uv() -> str:
    return subprocess.run([str(UV), "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
