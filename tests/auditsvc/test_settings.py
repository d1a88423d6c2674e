"""The audit service's settings come from the environment; bad ones stop start-up by name."""

from __future__ import annotations

import pytest

from auditsvc.settings import Settings
from gatehouse.infra.settings import SettingsError

BASE = {"AUDITSVC_DATABASE_URL": "sqlite:///x.db", "AUDITSVC_GATEWAY_KEY": "g" * 20,
        "AUDITSVC_OPERATOR_KEY": "o" * 20}


def test_defaults():
    s = Settings.from_env(BASE)
    assert s.default_window_days == 14 and s.event_stream == "gatehouse:events"
    assert s.dead_letter_stream == "gatehouse:events:dead-letter" and s.consumer_group == "auditsvc"
    assert s.consumer_name and not s.hash_ips
    assert (s.authsvc_target, s.authsvc_key, s.authsvc_timeout) == ("", "", 5.0)


def test_overrides():
    s = Settings.from_env({**BASE, "GATEHOUSE_EVENT_STREAM": "ev", "AUDITSVC_CLAIM_IDLE_MS": "500",
                           "AUDITSVC_MAX_DELIVERIES": "2", "AUDITSVC_HASH_IPS": "true",
                           "AUDITSVC_IP_HASH_KEY": "ab" * 32, "AUDITSVC_CONSUMER_NAME": "pod-1"})
    assert (s.dead_letter_stream, s.claim_idle_ms, s.max_deliveries) == ("ev:dead-letter", 500, 2)
    assert s.hash_ips and s.ip_hash_key == bytes.fromhex("ab" * 32) and s.consumer_name == "pod-1"


def test_dead_consumers_expire_after_an_hour_unless_told_otherwise():
    assert Settings.from_env(BASE).consumer_expiry_ms == 3_600_000
    assert Settings.from_env({**BASE, "AUDITSVC_CONSUMER_EXPIRY_MS": "120000"}).consumer_expiry_ms == 120_000


def test_the_authsvc_connection_for_the_admin_log():
    s = Settings.from_env({**BASE, "AUDITSVC_AUTHSVC_TARGET": "authsvc:50051", "AUDITSVC_AUTHSVC_KEY": "a" * 20,
                           "AUDITSVC_AUTHSVC_TIMEOUT": "2.5"})
    assert (s.authsvc_target, s.authsvc_key, s.authsvc_timeout) == ("authsvc:50051", "a" * 20, 2.5)


@pytest.mark.parametrize("env, name", [
    ({k: v for k, v in BASE.items() if k != "AUDITSVC_DATABASE_URL"}, "AUDITSVC_DATABASE_URL"),
    ({**BASE, "AUDITSVC_HASH_IPS": "yes"}, "AUDITSVC_IP_HASH_KEY"),
    ({**BASE, "AUDITSVC_OPERATOR_KEY": "g" * 20}, "AUDITSVC_OPERATOR_KEY"),
    ({**BASE, "AUDITSVC_MAX_DELIVERIES": "0"}, "AUDITSVC_MAX_DELIVERIES"),
    ({**BASE, "AUDITSVC_CONSUMER_EXPIRY_MS": "30000"}, "AUDITSVC_CONSUMER_EXPIRY_MS"),  # < claim idle
    ({**BASE, "AUDITSVC_DEAD_LETTER_STREAM": "gatehouse:events"}, "AUDITSVC_DEAD_LETTER_STREAM"),
    ({**BASE, "AUDITSVC_AUTHSVC_TARGET": "authsvc:50051"}, "AUDITSVC_AUTHSVC_KEY"),
    ({**BASE, "AUDITSVC_AUTHSVC_KEY": "a" * 20}, "AUDITSVC_AUTHSVC_TARGET"),
    ({**BASE, "AUDITSVC_AUTHSVC_TARGET": "a:1", "AUDITSVC_AUTHSVC_KEY": "o" * 20}, "AUDITSVC_AUTHSVC_KEY"),
    ({**BASE, "AUDITSVC_AUTHSVC_TARGET": "a:1", "AUDITSVC_AUTHSVC_KEY": "a" * 20, "AUDITSVC_AUTHSVC_TIMEOUT": "0"},
     "AUDITSVC_AUTHSVC_TIMEOUT"),
])
def test_bad_settings_name_the_variable(env, name):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert name in str(err.value)
