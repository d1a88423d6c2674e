#!/usr/bin/env python3
"""The two set-up commands of Gatehouse, for a fresh machine with only Python 3.11 and pip.

    python3 dev.py up      install into ./.venv if needed, then bring the whole system up
    python3 dev.py test    install test dependencies if needed, then run the whole test suite

Extra arguments go to `gatehouse up` or to pytest. `test --db URL` runs the suite against a
PostgreSQL server instead of SQLite. Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_installed(extra: str | None) -> None:
    """Create .venv and install the project (with `extra`), unless pyproject.toml is unchanged."""
    if sys.version_info < (3, 11):
        sys.exit("Gatehouse needs Python 3.11 or newer")
    if not PYTHON.exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / f".installed-{extra or 'base'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    target = f".[{extra}]" if extra else "."
    print(f"installing {target} into .venv …", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True, cwd=ROOT)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "-e", target], check=True, cwd=ROOT)
    stamp.write_text(digest)


def ensure_renderer() -> None:
    """The manifest tests render kustomize overlays with `pykustomize` (kustomize as a shared
    library, hash-pinned). Its wheel declares Python >= 3.14 but runs on 3.11, so it is installed
    here rather than through pyproject's test extra."""
    probe = subprocess.run([str(PYTHON), "-c", "import pykustomize"], capture_output=True)
    if probe.returncode == 0:
        return
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-requires-python",
                    "--require-hashes", "-r", str(ROOT / "tests" / "deploy" / "requirements-render.txt")],
                   check=True, cwd=ROOT)


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
    if not argv or argv[0] not in ("up", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "up":
        ensure_installed(None)
        return subprocess.call([str(BIN / "gatehouse"), "up", *rest], cwd=ROOT)
    ensure_installed("test")
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
