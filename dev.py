#!/usr/bin/env python3
"""The set-up commands of Gatehouse, for a fresh machine with only Python 3.11 and pip.

    python3 dev.py up      install into ./.venv from uv.lock, then bring the whole system up
    python3 dev.py test    install with the test extra from uv.lock, then run the whole test suite
    python3 dev.py lock    refresh uv.lock: the newest versions pyproject.toml's ranges admit

Extra arguments go to `gatehouse up`, to pytest or to `uv lock` (for example
`lock --upgrade-package aiohttp` to move one package only). `test --db URL` runs the suite against
a PostgreSQL server instead of SQLite. Standard library only: this runs before anything is
installed. Two helpers for tox and the container image:

    python3 dev.py locked NAME   print NAME's pip requirement line (version and hashes) from uv.lock
    python dev.py renderer       install the kustomize renderer into the Python that runs this

Every install comes from uv.lock, with hashes: first uv itself (the version and hashes the lock
names, installed with the venv's pip), then `uv sync --frozen`, which never resolves anew.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
import venv

ROOT = pathlib.Path(__file__).resolve().parent
LOCK = ROOT / "uv.lock"
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
UV = BIN / ("uv.exe" if os.name == "nt" else "uv")
# The kustomize renderer of tests/deploy: its wheel declares Python >= 3.14 but runs on 3.11, so
# uv.lock holds it for 3.14 only and it is installed here from the lock's pin and hashes.
RENDERER = "pykustomize"


def locked_requirement(name: str, lock: pathlib.Path = LOCK) -> str:
    """`name==version --hash=…` for every file uv.lock records of `name`: a pip requirement line."""
    packages = tomllib.loads(lock.read_text(encoding="utf-8"))["package"]
    (package,) = [p for p in packages if p["name"] == name]
    files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
    return " ".join([f"{name}=={package['version']}", *(f"--hash={f['hash']}" for f in files)])


def pip_install_locked(python: pathlib.Path | str, name: str, *flags: str) -> None:
    """Install `name` with `python`'s pip, exactly as uv.lock pins it (hash-checked, no dependencies)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(locked_requirement(name) + "\n")
    try:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--require-hashes", *flags, "-r", fh.name], check=True)
    finally:
        os.unlink(fh.name)


def ensure_uv() -> None:
    """.venv with the uv that uv.lock names (the one tool installed outside `uv sync`)."""
    if sys.version_info < (3, 11):
        sys.exit("Gatehouse needs Python 3.11 or newer")
    if not PYTHON.exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = locked_requirement("uv").split()[0].partition("==")[2]
    if UV.exists():
        found = subprocess.run([str(UV), "--version"], capture_output=True, text=True).stdout.split()
        if found[1:2] == [wanted]:
            return
    print(f"installing uv {wanted} into .venv …", flush=True)
    pip_install_locked(PYTHON, "uv")


def uv(*args: str) -> None:
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENV), "UV_PYTHON": str(PYTHON)}
    subprocess.run([str(UV), *args], check=True, cwd=ROOT, env=env)


def sync(extra: str | None) -> None:
    """Make .venv match uv.lock (with `extra`). --inexact: what another command installed stays."""
    ensure_uv()
    uv("sync", "--frozen", "--inexact", "--quiet", *(["--extra", extra] if extra else []))


def ensure_renderer(python: pathlib.Path | str = PYTHON) -> None:
    """tests/deploy render the kustomize overlays with pykustomize (kustomize as a shared library)."""
    probe = subprocess.run([str(python), "-c", f"import {RENDERER}"], capture_output=True)
    if probe.returncode != 0:
        pip_install_locked(python, RENDERER, "--ignore-requires-python")


def ensure_browser() -> None:
    """The page tests drive Debian's headless Chromium; install it with apt when it is missing."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        print("Chromium is missing: install Debian's `chromium` and `chromium-driver` packages "
              "(the browser tests will fail without them)", file=sys.stderr)
        return
    print("installing chromium from Debian's packages …", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    subprocess.run([apt, "-qq", "update"], check=True, **quiet)
    subprocess.run([apt, "-qq", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"],
                   check=True, **quiet)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("up", "test", "lock", "locked", "renderer"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "up":
        sync(None)
        return subprocess.call([str(BIN / "gatehouse"), "up", *rest], cwd=ROOT)
    if command == "lock":
        ensure_uv()
        uv("lock", *(rest or ["--upgrade"]))
        return 0
    if command == "locked":
        print(locked_requirement(*rest))
        return 0
    if command == "renderer":
        ensure_renderer(sys.executable)
        return 0
    sync("test")
    ensure_renderer()
    ensure_browser()
    env = dict(os.environ)
    if "--db" in rest:
        i = rest.index("--db")
        env["GATEHOUSE_TEST_DB"] = rest[i + 1]
        rest = rest[:i] + rest[i + 2:]
    return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
