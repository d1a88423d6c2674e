"""Types are checked: mypy, as pyproject.toml's [tool.mypy] configures it (strict by default, with
the not-yet-strict modules listed there), passes on the services and the shared package.

mypy runs as a subprocess of the locked version, offline, with a fresh cache in a temporary folder,
so that the result depends on the code and the configuration only.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Packages where every new module is strict (a module may only be exempted by name).
STRICT_PACKAGES = ("gatehouse/infra", "authsvc/tokens")


def _mypy(cwd: pathlib.Path, cache: pathlib.Path, *files: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPY")}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(cwd / "pyproject.toml"), "--cache-dir", str(cache),
         "--no-color-output", *files],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_mypy_is_the_locked_version():
    packages = tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    locked = next(p["version"] for p in packages if p["name"] == "mypy")
    installed = importlib.metadata.version("mypy")
    assert installed == locked, f"mypy {installed} is installed, uv.lock names {locked}: run `python3 dev.py test`"


def test_mypy_passes_as_configured(tmp_path):
    result = _mypy(ROOT, tmp_path / "cache")
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"


def test_a_new_module_in_a_strict_package_is_held_to_strict(tmp_path):
    """Guards the configuration itself: no wildcard exempts the strict packages, so a module added
    there with an unannotated function fails the check above."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    probes = []
    for package in STRICT_PACKAGES:
        parts = pathlib.PurePosixPath(package).parts
        for depth in range(1, len(parts) + 1):
            tmp_path.joinpath(*parts[:depth]).mkdir(exist_ok=True)
            tmp_path.joinpath(*parts[:depth], "__init__.py").touch()
        probe = tmp_path / package / "typing_probe.py"
        probe.write_text("def untyped(value):\n    return value\n")
        probes.append(str(probe.relative_to(tmp_path)))
    result = _mypy(tmp_path, tmp_path / "cache", *probes)
    for probe in probes:
        assert f"{probe}:1: error: Function is missing a type annotation  [no-untyped-def]" in result.stdout, \
            result.stdout + result.stderr
