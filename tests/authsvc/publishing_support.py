"""Test data for the trusted-publishing tests: an auth service trusting local OIDC issuers
(tests/oidc_issuer.py), publishers added through the real gRPC APIs, exchanges."""

from __future__ import annotations

import json

import pytest

from authsvc.settings import OidcIssuer as IssuerSetting
from gatehouse.auth.v1 import common_pb2, publishing_pb2, publishing_pb2_grpc
from gatehouse.infra.rpcstatus import ErrorStatus
from tests.oidc_issuer import OidcIssuer

AUDIENCE = "gatehouse-test"


@pytest.fixture
def github():
    with OidcIssuer() as issuer:
        yield issuer


@pytest.fixture
def gitlab():
    with OidcIssuer(algorithm="ES256", path="/gitlab") as issuer:
        yield issuer


@pytest.fixture
def ghes():
    """A GitHub Enterprise Server-like issuer (its URL has a path), trusted beside `github`."""
    with OidcIssuer(path="/_services/token") as issuer:
        yield issuer


@pytest.fixture
def auth_overrides(github, gitlab, ghes):
    return dict(oidc_audience=AUDIENCE, oidc_issuers=(
        IssuerSetting(url=github.url, kind="github", name="GitHub"),
        IssuerSetting(url=gitlab.url, kind="gitlab", name="GitLab"),
        IssuerSetting(url=ghes.url, kind="github", name="GitHub Enterprise")))


def publishing(auth) -> publishing_pb2_grpc.PublishingServiceStub:
    return publishing_pb2_grpc.PublishingServiceStub(auth.gateway)


def github_spec(issuer: OidcIssuer, repository: str = "octo/widget", workflow: str = "release.yml",
                environment: str = "") -> publishing_pb2.PublisherSpec:
    owner, name = repository.split("/")
    return publishing_pb2.PublisherSpec(issuer_url=issuer.url, owner=owner, repository=name, workflow=workflow,
                                        environment=environment)


def gitlab_spec(issuer: OidcIssuer, project_path: str = "group/widget", ci_config: str = ".gitlab-ci.yml",
                environment: str = "") -> publishing_pb2.PublisherSpec:
    namespace, name = project_path.rsplit("/", 1)
    return publishing_pb2.PublisherSpec(issuer_url=issuer.url, owner=namespace, repository=name,
                                        workflow=ci_config, environment=environment)


async def add_publisher(auth, session: str, project: str, spec) -> publishing_pb2.Publisher:
    reply = await publishing(auth).AddPublisher(publishing_pb2.AddPublisherRequest(
        session_token=session, project_name=project, spec=spec))
    return reply.publisher


async def mint(auth, token: str, *, single_use: bool = False) -> publishing_pb2.MintPublisherTokenResponse:
    return await publishing(auth).MintToken(publishing_pb2.MintPublisherTokenRequest(
        token=token, single_use=single_use, client=common_pb2.ClientInfo(ip_address="192.0.2.50")))


def claims_of(event) -> dict[str, str]:
    return {k[len("claim_"):]: v for k, v in event.details.items() if k.startswith("claim_")}


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True)


def reason_of(err) -> str:
    """The ErrorInfo reason of a failed call (UPPER_SNAKE_CASE)."""
    return ErrorStatus.of_rpc(err).reason
