"""The accounts settings read from the environment, and how they reach the accounts service."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest

from authsvc.accounts.core import AccountsConfig
from authsvc.settings import Settings
from gatehouse.infra.settings import SettingsError


def env(**extra) -> dict[str, str]:
    return {
        "AUTHSVC_DATABASE_URL": "sqlite:///x.db",
        "AUTHSVC_GATEWAY_KEY": "gw-key",
        "AUTHSVC_OPERATOR_KEY": "op-key",
        "AUTHSVC_TOKEN_SECRETS": "1:" + secrets.token_hex(32),
        "AUTHSVC_TOTP_KEYS": "1:" + secrets.token_hex(32),
        "AUTHSVC_EVENT_KEYS": "1:" + secrets.token_hex(32),
        **extra,
    }


def test_account_settings_from_env_reach_the_config():
    settings = Settings.from_env(env(
        AUTHSVC_EMAIL_TOKEN_LIFETIME="7200", AUTHSVC_RESET_TOKEN_LIFETIME="1800",
        AUTHSVC_RESET_REQUESTS_PER_IP="7", AUTHSVC_LOGIN_FAILURES_PER_USER="4", AUTHSVC_LOGIN_WINDOW="60",
        AUTHSVC_EMAILS_PER_USER="2", AUTHSVC_SMTP_URL="smtp+starttls://relay.example.org",
        GATEHOUSE_PUBLIC_URL="https://pkgs.example.org"))
    config = AccountsConfig.from_settings(settings)
    assert config.email_token_lifetime == dt.timedelta(hours=2)
    assert config.reset_token_lifetime == dt.timedelta(minutes=30)
    assert (config.login_user.limit, config.login_user.window) == (4, 60)
    assert (config.reset_ip.limit, config.email_user.limit) == (7, 2)
    assert config.public_url == "https://pkgs.example.org"


@pytest.mark.parametrize("name, value, fragment", [
    ("AUTHSVC_RESET_TOKEN_LIFETIME", "3601", "within an hour"),
    ("AUTHSVC_SMTP_URL", "http://relay", "AUTHSVC_SMTP_URL"),
    ("AUTHSVC_EMAILS_PER_USER", "0", "AUTHSVC_EMAILS_PER_USER"),
    ("AUTHSVC_GATEWAY_KEY", "new-key,op-key", "must differ"),
    ("AUTHSVC_GATEWAY_KEY", " , ", "AUTHSVC_GATEWAY_KEY is required"),
    ("AUTHSVC_AUDIT_KEY", "gw-key", "AUTHSVC_AUDIT_KEY must differ"),
    ("AUTHSVC_AUDIT_KEY", "op-key", "AUTHSVC_AUDIT_KEY must differ"),
])
def test_bad_account_settings_stop_start_up(name, value, fragment):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env(**{name: value}))
    assert fragment in str(err.value)
