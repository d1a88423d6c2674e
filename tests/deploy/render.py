"""Render the Kustomize overlays under deploy/ with a real kustomize, whichever is installed.

Renderers, in order of preference:
- GATEHOUSE_KUSTOMIZE: the path of a `kustomize` binary (v5 or newer);
- pykustomize, the PyPI wheel that carries kustomize as a shared library (`python3 dev.py test`
  installs it as uv.lock pins it, hash-checked);
- `kustomize` on PATH (v5 or newer);
- `kubectl kustomize`, when the kustomize built into kubectl is v5 or newer (kubectl 1.27+).
Anything a renderer writes to stderr (a deprecation, a warning) counts as a failure.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys

import yaml

INSTALL_HINT = (
    "no kustomize renderer found. Install the PyPI wheel that carries kustomize, as uv.lock pins it:\n"
    "    .venv/bin/python dev.py renderer\n"
    "or put kustomize >= 5 (or kubectl >= 1.27) on PATH, or set GATEHOUSE_KUSTOMIZE to a kustomize binary."
)

_PYKUSTOMIZE = """
import asyncio, sys
from pykustomize import build
sys.stdout.write(asyncio.run(build(sys.argv[1])).yaml)
"""


class RenderError(AssertionError):
    """Kustomize failed or warned; the message carries its output."""


@dataclasses.dataclass(frozen=True)
class Renderer:
    name: str
    command: tuple[str, ...]

    def render(self, directory: pathlib.Path) -> list[dict]:
        """The objects `kustomize build directory` produces, failing on any stderr output."""
        done = subprocess.run([*self.command, str(directory)], capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or done.stderr.strip():
            raise RenderError(f"{self.name} on {directory} (exit {done.returncode}):\n{done.stderr}")
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _major(version_text: str) -> int | None:
    match = re.search(r"v(\d+)\.\d+", version_text)
    return int(match.group(1)) if match else None


def _kustomize_binary(path: str) -> Renderer | None:
    try:
        out = subprocess.run([path, "version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    if (_major(out) or 0) < 5:
        return None
    return Renderer(f"kustomize ({path})", (path, "build"))


def _kubectl(path: str) -> Renderer | None:
    try:
        out = subprocess.run([path, "version", "--client"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    match = re.search(r"Kustomize Version:\s*(v\S+)", out)
    if not match or (_major(match.group(1)) or 0) < 5:
        return None
    return Renderer(f"kubectl kustomize ({path}, {match.group(1)})", (path, "kustomize"))


def _loads_pykustomize() -> bool:
    """The wheel carries the library for linux-amd64 only; elsewhere it cannot load."""
    check = "import pykustomize; pykustomize.native_version()"
    return subprocess.run([sys.executable, "-c", check], capture_output=True, timeout=60).returncode == 0


def available_renderers() -> list[Renderer]:
    """Every usable renderer on this machine, preferred first."""
    found: list[Renderer] = []
    explicit = os.environ.get("GATEHOUSE_KUSTOMIZE")
    if explicit:
        renderer = _kustomize_binary(explicit)
        if renderer is None:
            raise RenderError(f"GATEHOUSE_KUSTOMIZE={explicit} is not a kustomize v5 or newer")
        found.append(renderer)
    if importlib.util.find_spec("pykustomize") is not None and _loads_pykustomize():
        found.append(Renderer("pykustomize", (sys.executable, "-c", _PYKUSTOMIZE)))
    if shutil.which("kustomize"):
        renderer = _kustomize_binary(shutil.which("kustomize"))
        if renderer:
            found.append(renderer)
    if shutil.which("kubectl"):
        renderer = _kubectl(shutil.which("kubectl"))
        if renderer:
            found.append(renderer)
    return found
