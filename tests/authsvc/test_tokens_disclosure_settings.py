"""AUTHSVC_LEAK_SCANNERS: which secret scanners' leaked-token reports authsvc believes, and from
where it fetches their keys (HTTPS, or plain HTTP to loopback only). The reports themselves are
tested through the whole system in tests/e2e/test_leaked_tokens.py."""

from __future__ import annotations

import json
import secrets

import pytest

from authsvc.settings import Settings
from gatehouse.infra.settings import SettingsError

BASE = {"AUTHSVC_DATABASE_URL": "sqlite:///x.db", "AUTHSVC_GATEWAY_KEY": "g", "AUTHSVC_OPERATOR_KEY": "o",
        "AUTHSVC_TOKEN_SECRETS": "1:" + secrets.token_hex(32), "AUTHSVC_TOTP_KEYS": "1:" + secrets.token_hex(32),
        "AUTHSVC_EVENT_KEYS": "1:" + secrets.token_hex(32)}


def scanners(value: str) -> Settings:
    return Settings.from_env({**BASE, "AUTHSVC_LEAK_SCANNERS": value})


@pytest.mark.parametrize("url", ["http://keys.example.org/k", "http://10.0.0.1/k", "ftp://127.0.0.1/k",
                                 "https:///k", "keys.example.org/k"])
def test_a_keys_url_must_be_https_or_loopback_http(url):
    with pytest.raises(SettingsError, match="AUTHSVC_LEAK_SCANNERS.*https://"):
        scanners(json.dumps([{"name": "x", "keys_url": url}]))


@pytest.mark.parametrize("value", ["{", '{"name": "x"}', '[{"name": "x"}]', '["x"]',
                                   '[{"name": " ", "keys_url": "https://a/k"}]', '[{"name": 1, "keys_url": "https://a/k"}]'])
def test_a_malformed_list_stops_start_up_naming_the_variable(value):
    with pytest.raises(SettingsError, match="AUTHSVC_LEAK_SCANNERS"):
        scanners(value)


def test_none_trusted_by_default_and_a_list_read_in_order():
    assert Settings.from_env(BASE).leak_scanners == ()
    trusted = [{"name": "GitHub", "keys_url": "https://api.github.com/meta/public_keys/secret_scanning"},
               {"name": "Local", "keys_url": "http://[::1]:8080/keys"},
               {"name": "Loop", "keys_url": "http://localhost:8080/keys"}]
    settings = scanners(json.dumps(trusted))
    assert [(s.name, s.keys_url) for s in settings.leak_scanners] == [(t["name"], t["keys_url"]) for t in trusted]
