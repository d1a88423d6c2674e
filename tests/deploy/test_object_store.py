"""deploy/components/object-store: the prod overlay with its files in an S3 bucket renders, validates,
drops the shared volume, and gives the gateway an environment it accepts."""

from __future__ import annotations

import shutil

import pytest

from tests.deploy.manifests import Manifests
from tests.deploy.test_manifests import strict_errors
from tests.deploy.test_settings_env import env_of, variables_read_by_code

SITE = """UPLOADGW_S3_BUCKET=gatehouse-files
UPLOADGW_S3_ENDPOINT_URL=http://minio.storage:9000
UPLOADGW_S3_PATH_STYLE=true
UPLOADGW_S3_DOWNLOADS=redirect
UPLOADGW_S3_PUBLIC_ENDPOINT_URL=https://files.gatehouse.example.com
"""


@pytest.fixture(scope="module")
def with_bucket(deploy_dir, renderer) -> Manifests:
    """The prod overlay, copied, with the component and the bucket as deploy/README.md says."""
    overlay = deploy_dir / "overlays" / "prod-s3"
    shutil.copytree(deploy_dir / "overlays" / "prod", overlay)
    with open(overlay / "kustomization.yaml", "a") as fh:
        fh.write("\ncomponents:\n  - ../../components/object-store\n")
    with open(overlay / "site.env", "a") as fh:
        fh.write(SITE)
    with open(overlay / "secrets.env", "a") as fh:
        fh.write("UPLOADGW_S3_ACCESS_KEY_ID=AKIAEXAMPLE\nUPLOADGW_S3_SECRET_ACCESS_KEY=example-secret-key\n")
    return Manifests(renderer.render(overlay))


def test_the_object_store_overlay_validates_and_has_no_shared_volume(with_bucket):
    errors = [e for doc in with_bucket.docs for e in strict_errors(doc)]
    assert not errors, "\n".join(errors)
    assert with_bucket.of_kind("PersistentVolumeClaim") == []
    gateway = with_bucket.workload("uploadgw")
    volumes = {v["name"]: v for v in gateway.pod["volumes"]}
    (mount,) = [m for m in gateway.pod["containers"][0]["volumeMounts"] if m["mountPath"] != "/tmp"]
    assert set(volumes[mount["name"]]) == {"name", "emptyDir"}  # scratch space of this pod only
    env = with_bucket.environment(gateway.pod["containers"][0])
    assert env["UPLOADGW_STORAGE_DIR"] == mount["mountPath"]


def test_the_gateway_accepts_the_object_store_environment(with_bucket):
    from uploadgw.settings import Settings

    env = env_of(with_bucket, "uploadgw")
    assert not set(env) - variables_read_by_code()
    settings = Settings.from_env(env).s3
    assert settings is not None and settings.bucket == "gatehouse-files" and settings.path_style
    assert (settings.access_key_id, settings.secret_access_key) == ("AKIAEXAMPLE", "example-secret-key")
    assert settings.downloads == "redirect" and settings.public_endpoint_url.startswith("https://")
