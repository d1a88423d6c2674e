"""Publishers of the other kinds against local issuers: Forgejo/Gitea Actions, Google service
accounts, and an operator-defined issuer whose named claims must match exactly."""

from __future__ import annotations

import grpc
import pytest

from authsvc.settings import OidcIssuer as IssuerSetting
from gatehouse.auth.v1 import publishing_pb2
from tests.authsvc.project_token_factories import make_project, make_user, verify
from tests.authsvc.publishing_support import AUDIENCE, add_publisher, mint, reason_of
from tests.oidc_issuer import OidcIssuer


@pytest.fixture
def issuers():
    with OidcIssuer() as forgejo, OidcIssuer(algorithm="ES256") as google, OidcIssuer(path="/ci") as custom:
        yield {"forgejo": forgejo, "google": google, "custom": custom}


@pytest.fixture
def auth_overrides(issuers):
    return dict(oidc_audience=AUDIENCE, oidc_issuers=(
        IssuerSetting(url=issuers["forgejo"].url, kind="forgejo", name="Codeberg"),
        IssuerSetting(url=issuers["google"].url, kind="google", name="Google"),
        IssuerSetting(url=issuers["custom"].url, kind="custom", name="Our CI", claims=("sub", "pipeline_owner"))))


@pytest.fixture
async def session(auth):
    _, session = await make_user(auth, "alice")
    await make_project(auth, "widget", "alice")
    return session


async def _refused(auth, token: str, fragment: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await mint(auth, token)
    assert reason_of(err.value) == "INVALID_PUBLISHER" and fragment in err.value.details(), err.value.details()


async def test_forgejo_workflows_in_their_own_folder(auth, issuers, session):
    forgejo = issuers["forgejo"]
    await add_publisher(auth, session, "widget", publishing_pb2.PublisherSpec(
        issuer_url=forgejo.url, owner="octo", repository="widget", workflow="release.yml"))
    claims = forgejo.github_claims(audience=AUDIENCE, workflow_ref="octo/widget/.forgejo/workflows/release.yml@refs/tags/v1")
    minted = await mint(auth, forgejo.token(claims))
    assert (await verify(auth, minted.token, "widget")).publisher.kind == "forgejo"
    claims = forgejo.github_claims(audience=AUDIENCE, workflow_ref="octo/widget/.forgejo/workflows/evil.yml@refs/tags/v1")
    await _refused(auth, forgejo.token(claims), "workflow is not release.yml")


async def test_google_service_accounts_match_email_and_optional_subject(auth, issuers, session):
    google = issuers["google"]
    await add_publisher(auth, session, "widget", publishing_pb2.PublisherSpec(
        issuer_url=google.url, email="ci@proj.iam.gserviceaccount.com", subject="1234"))

    def claims(**kw):
        base = {"iss": google.url, "aud": AUDIENCE, "email": "ci@proj.iam.gserviceaccount.com",
                "email_verified": True, "sub": "1234"}
        times = google.github_claims(audience=AUDIENCE)
        return {**base, "iat": times["iat"], "exp": times["exp"], "jti": times["jti"], **kw}

    await mint(auth, google.token(claims()))
    await _refused(auth, google.token(claims(sub="999")), "subject (sub) differs")
    await _refused(auth, google.token(claims(email_verified=False)), "not verified")


async def test_custom_issuers_match_every_named_claim_exactly(auth, issuers, session):
    custom = issuers["custom"]
    await add_publisher(auth, session, "widget", publishing_pb2.PublisherSpec(
        issuer_url=custom.url, claims={"sub": "pipeline:widget", "pipeline_owner": "team-a"}))
    times = custom.github_claims(audience=AUDIENCE)
    base = {"iss": custom.url, "aud": AUDIENCE, "iat": times["iat"], "exp": times["exp"]}
    await mint(auth, custom.token({**base, "jti": "1", "sub": "pipeline:widget", "pipeline_owner": "team-a"}))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await mint(auth, custom.token({**base, "jti": "2", "sub": "pipeline:widget", "pipeline_owner": "team-b"}))
    assert reason_of(err.value) == "INVALID_PUBLISHER"
