"""The two-factor settings read from the environment: required keys, origins, policy values."""

from __future__ import annotations

import base64
import secrets

import pytest

from authsvc.settings import Settings
from gatehouse.infra.settings import SettingsError


def key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


@pytest.fixture
def env():
    return {"AUTHSVC_DATABASE_URL": "sqlite:///x.db", "AUTHSVC_GATEWAY_KEY": "gw", "AUTHSVC_OPERATOR_KEY": "op",
            "AUTHSVC_TOKEN_SECRETS": f"1:{key()}", "AUTHSVC_TOTP_KEYS": f"2:{key()},1:{key()}",
            "AUTHSVC_EVENT_KEYS": f"1:{key()}"}


def test_defaults_and_parsing(env):
    settings = Settings.from_env({**env, "AUTHSVC_WEBAUTHN_ORIGINS": "https://pypi.example, http://localhost:8000/",
                                  "AUTHSVC_REQUIRE_2FA_FOR_UPLOAD": "true"})
    assert [v for v, _ in settings.totp_keys] == [2, 1] and all(len(k) == 32 for _, k in settings.totp_keys)
    assert settings.webauthn_origins == ("https://pypi.example", "http://localhost:8000")
    assert settings.require_2fa_for_upload
    plain = Settings.from_env(env)
    assert (plain.webauthn_rp_id, plain.webauthn_user_verification, plain.require_2fa_for_upload) == (
        "localhost", "preferred", False)
    assert (plain.second_factor_failures_per_user, plain.second_factor_window_seconds,
            plain.pending_login_seconds) == (5, 300, 300)


@pytest.mark.parametrize("bad, message", [
    ({"AUTHSVC_TOTP_KEYS": ""}, "AUTHSVC_TOTP_KEYS is required"),
    ({"AUTHSVC_TOTP_KEYS": "1:c2hvcnQ"}, "at least 32 bytes"),
    ({"AUTHSVC_TOTP_KEYS": f"x:{key()}"}, "'<version>:<key>'"),
    ({"AUTHSVC_TOTP_KEYS": f"1:{key()},1:{key()}"}, "unique"),
    ({"AUTHSVC_WEBAUTHN_ORIGINS": "localhost"}, "AUTHSVC_WEBAUTHN_ORIGINS"),
    ({"AUTHSVC_WEBAUTHN_ORIGINS": "https://pypi.example/login"}, "AUTHSVC_WEBAUTHN_ORIGINS"),
    ({"AUTHSVC_WEBAUTHN_USER_VERIFICATION": "always"}, "required, preferred or discouraged"),
    ({"AUTHSVC_REQUIRE_2FA_FOR_UPLOAD": "maybe"}, "AUTHSVC_REQUIRE_2FA_FOR_UPLOAD"),
])
def test_bad_values_stop_start_up_with_the_variable_named(env, bad, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**env, **bad})
