"""Render each overlay once per session, from a copy of deploy/ with freshly generated secrets."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

from tests.deploy.manifests import Manifests
from tests.deploy.render import INSTALL_HINT, available_renderers

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "prod")
PROD_URLS = [
    "--database-url", "postgresql://gatehouse:pw-1@db.internal:5432/{service}?ssl=require",
    "--redis-url", "rediss://:pw-2@redis.internal:6380/0",
    "--smtp-url", "smtp+starttls://mailer:pw-3@smtp.internal:587",
]


def generate_secrets(deploy_dir: pathlib.Path, overlay: str) -> pathlib.Path:
    """Run deploy/gen_secrets.py the way the README tells operators to."""
    target = deploy_dir / "overlays" / overlay / "secrets.env"
    extra = PROD_URLS if overlay == "prod" else []
    subprocess.run([sys.executable, str(deploy_dir / "gen_secrets.py"), overlay, "-o", str(target), *extra],
                   check=True, capture_output=True, text=True, timeout=60)
    return target


@pytest.fixture(scope="session")
def deploy_dir(tmp_path_factory) -> pathlib.Path:
    """A copy of deploy/ whose overlays have a secrets.env each (the real ones are never committed)."""
    copy = tmp_path_factory.mktemp("deploy") / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("secrets.env", "*.tmp", "__pycache__"))
    for overlay in OVERLAYS:
        generate_secrets(copy, overlay)
    return copy


@pytest.fixture(scope="session")
def renderer():
    renderers = available_renderers()
    if not renderers:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return renderers[0]


@pytest.fixture(scope="session")
def rendered(deploy_dir, renderer) -> dict[str, Manifests]:
    return {overlay: Manifests(renderer.render(deploy_dir / "overlays" / overlay)) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay(request, rendered) -> Manifests:
    """Each overlay in turn."""
    return rendered[request.param]
