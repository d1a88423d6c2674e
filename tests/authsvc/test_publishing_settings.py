"""AUTHSVC_OIDC_* settings: issuers as the operator writes them, and the bounds that keep minted tokens
short-lived and the leeway small."""

from __future__ import annotations

import json

import pytest

from authsvc.settings import OidcIssuer, Settings
from gatehouse.infra.settings import SettingsError

BASE = {"AUTHSVC_DATABASE_URL": "sqlite:///x.db", "AUTHSVC_GATEWAY_KEY": "gw-key-123456",
        "AUTHSVC_OPERATOR_KEY": "op-key-123456", "AUTHSVC_TOKEN_SECRETS": "1:" + "ab" * 32,
        "AUTHSVC_TOTP_KEYS": "1:" + "cd" * 32, "AUTHSVC_EVENT_KEYS": "1:" + "ef" * 32}


def settings(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


def test_issuers_parse_with_their_kinds_and_claims():
    issuers = [{"url": "https://token.actions.githubusercontent.com", "kind": "github", "name": "GitHub"},
               {"url": "https://gitlab.example.org", "kind": "gitlab"},
               {"url": "http://127.0.0.1:8080/oidc", "kind": "custom", "claims": ["sub", "project"]}]
    parsed = settings(AUTHSVC_OIDC_ISSUERS=json.dumps(issuers), AUTHSVC_OIDC_AUDIENCE="our-index")
    assert parsed.oidc_issuers == (
        OidcIssuer("https://token.actions.githubusercontent.com", "github", "GitHub"),
        OidcIssuer("https://gitlab.example.org", "gitlab", "https://gitlab.example.org"),
        OidcIssuer("http://127.0.0.1:8080/oidc", "custom", "http://127.0.0.1:8080/oidc", ("sub", "project")))
    assert parsed.oidc_audience == "our-index" and parsed.oidc_token_seconds == 900
    assert settings().oidc_issuers == ()  # trusted publishing is off until an issuer is configured


@pytest.mark.parametrize("issuers, fragment", [
    ("not json", "JSON list"),
    ('{"url": "https://a"}', "JSON list"),
    ('[{"url": "http://gitlab.example.org", "kind": "gitlab"}]', "must be https://"),
    ('[{"url": "https://a.example/?x=1", "kind": "gitlab"}]', "no query"),
    ('[{"url": "https://a.example", "kind": "bitbucket"}]', "choose one of"),
    ('[{"url": "https://a.example", "kind": "custom"}]', 'needs "claims"'),
    ('[{"url": "https://a.example", "kind": "github", "claims": ["sub"]}]', "only custom issuers"),
    ('[{"url": "https://a.example", "kind": "github"}, {"url": "https://a.example", "kind": "gitlab"}]', "twice"),
    ('[{"url": "https://a.example", "kind": "github", "audience": "x"}]', "each issuer is an object"),
])
def test_bad_issuers_stop_start_up_with_what_is_wrong(issuers, fragment):
    with pytest.raises(SettingsError) as err:
        settings(AUTHSVC_OIDC_ISSUERS=issuers)
    assert fragment in str(err.value)


@pytest.mark.parametrize("name, value", [("AUTHSVC_OIDC_TOKEN_SECONDS", "901"), ("AUTHSVC_OIDC_LEEWAY", "31")])
def test_token_lifetime_and_leeway_are_bounded(name, value):
    with pytest.raises(SettingsError, match=name):
        settings(**{name: value})
