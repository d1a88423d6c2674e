"""The real client end to end: `uv publish --trusted-publishing always` from a simulated CI job
(GitHub Actions: its token-request URL and bearer; GitLab CI: the `<AUDIENCE>_ID_TOKEN` variable),
with no stored secret, uploads to the gateway served over HTTPS (UPLOADGW_HTTPS_CERT/KEY, a test CA
from trustme that uv trusts through SSL_CERT_FILE). With "trusted publishing only" on, twine's
upload with a long-lived API token is refused with the reason it prints, and uv still publishes."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
import trustme
from sqlalchemy import select

from gatehouse.auth.v1 import admin_pb2
from tests.authsvc.publishing_support import (  # noqa: F401  (fixtures)
    AUDIENCE, auth_overrides, ghes, github, github_spec, gitlab, gitlab_spec,
)
from tests.uploadgw.conftest import client_env, make_uploader, run, twine
from tests.uploadgw.dists import make_wheel
from uploadgw.models import File

# No secret a job could have stored: the upload credential comes from the exchange alone.
SECRETS = ("UV_PUBLISH_TOKEN", "UV_PUBLISH_PASSWORD", "UV_PUBLISH_USERNAME", "TWINE_PASSWORD", "PYPI_API_TOKEN")


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def gw_overrides(ca, tmp_path):
    pem = tmp_path / "gateway.pem"
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    return {"https_cert": str(pem), "https_key": str(pem)}


def uv() -> str:
    found = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
    assert found, "uv is in the test extra: run `python3 dev.py test`"
    return found


def upload_url(gw) -> str:
    return f"https://localhost:{gw.running.port}/legacy/"


def ca_bundle(ca, tmp_path) -> str:
    bundle = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return str(bundle)


async def uv_publish(gw, ca, tmp_path, wheel, **job_env: str):
    env = client_env(SSL_CERT_FILE=ca_bundle(ca, tmp_path), **job_env)
    assert not set(SECRETS) & set(env)
    return await run([uv(), "publish", "--trusted-publishing", "always", "--publish-url", upload_url(gw),
                      str(wheel)], env=env, cwd=str(tmp_path))


async def files_of(gw) -> list[str]:
    async with gw.gateway.db() as s:
        return sorted((await s.scalars(select(File.filename).where(File.deleted_at.is_(None)))).all())


async def test_uv_publishes_from_a_github_actions_job_over_tls(gw, github, ca, tmp_path):
    owner = await make_uploader(gw.auth, "alice", own=("widget",))
    await gw.auth.admin.AddPublisher(admin_pb2.AdminAddPublisherRequest(project_name="widget",
                                                                         spec=github_spec(github)))
    wheel = make_wheel(tmp_path, "widget", "1.0")
    job = github.actions_env(github.github_claims("octo/widget", audience="ignored: uv asks for it"))
    result = await uv_publish(gw, ca, tmp_path, wheel, **job)
    assert result.rc == 0, result.output
    assert await files_of(gw) == [wheel.name]
    fetches = github.fetches

    # "Trusted publishing only": the long-lived token is refused with a reason twine prints ...
    await gw.auth.admin.SetProjectTrustedPublishingOnly(admin_pb2.AdminSetTrustedPublishingOnlyRequest(
        project_name="widget", enabled=True))
    bundle = ca_bundle(ca, tmp_path)  # requests lets REQUESTS_CA_BUNDLE, where set, win over --cert
    refused = await twine(upload_url(gw), make_wheel(tmp_path, "widget", "1.1"), password=owner.token,
                          extra=("--cert", bundle), env=client_env(REQUESTS_CA_BUNDLE=bundle))
    assert refused.rc != 0 and "403" in refused.flat and "only from its trusted publishers" in refused.flat, \
        refused.output
    # ... while the CI job still publishes, with the key set it already has.
    again = await uv_publish(gw, ca, tmp_path, make_wheel(tmp_path, "widget", "1.2"),
                             **github.actions_env(github.github_claims("octo/widget")))
    assert again.rc == 0, again.output
    assert await files_of(gw) == sorted([wheel.name, "widget-1.2-py3-none-any.whl"])
    assert github.fetches == fetches


async def test_uv_refuses_to_publish_from_another_repository(gw, github, ca, tmp_path):
    await make_uploader(gw.auth, "alice", own=("widget",))
    await gw.auth.admin.AddPublisher(admin_pb2.AdminAddPublisherRequest(project_name="widget",
                                                                         spec=github_spec(github)))
    job = github.actions_env(github.github_claims("mallory/widget"))
    result = await uv_publish(gw, ca, tmp_path, make_wheel(tmp_path, "widget", "1.0"), **job)
    assert result.rc != 0 and "invalid-publisher" in result.output, result.output
    assert await files_of(gw) == []


async def test_uv_publishes_from_a_gitlab_ci_job_over_tls(gw, gitlab, ca, tmp_path):
    await make_uploader(gw.auth, "alice", own=("widget",))
    await gw.auth.admin.AddPublisher(admin_pb2.AdminAddPublisherRequest(project_name="widget",
                                                                         spec=gitlab_spec(gitlab)))
    token = gitlab.token(gitlab.gitlab_claims("group/widget", audience=AUDIENCE))
    variable = "".join(c.upper() if c.isalnum() else "_" for c in AUDIENCE) + "_ID_TOKEN"
    wheel = make_wheel(tmp_path, "widget", "2.0")
    result = await uv_publish(gw, ca, tmp_path, wheel, GITLAB_CI="true", **{variable: token})
    assert result.rc == 0, result.output
    assert await files_of(gw) == [wheel.name]
