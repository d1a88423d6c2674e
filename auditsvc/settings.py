"""The audit service's settings, built once from environment variables at start-up."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
import os
import socket

from gatehouse.infra.eventauth import EventKey, parse_accepted_keys
from gatehouse.infra.settings import Env, SettingsError, service_keys
from gatehouse.infra.tls import TlsSettings


def default_consumer_name() -> str:
    """Unique per process, so that a restarted pod does not inherit a dead consumer's entries."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str
    listen: str
    # Service credentials accepted on calls: the gateway's and the operator CLI's.
    gateway_key: str
    operator_key: str
    redis_url: str = ""
    event_stream: str = "gatehouse:events"
    # Run the stream consumer (and trimming) in the server process.
    consumer_enabled: bool = True
    consumer_group: str = "auditsvc"
    consumer_name: str = dataclasses.field(default_factory=default_consumer_name)
    batch_size: int = 500
    block_ms: int = 1000
    # Entries pending this long with another (presumably dead) consumer are claimed.
    claim_idle_ms: int = 60_000
    # An entry that cannot be decoded or stored after this many deliveries goes to the DLQ.
    max_deliveries: int = 5
    # A consumer idle this long with nothing pending is removed from the group (its process died).
    consumer_expiry_ms: int = 3_600_000
    dead_letter_stream: str = ""
    # The producers' event keys the consumer accepts ("producer:version:key"); an event sealed
    # with none of them is dead-lettered, never stored.
    event_keys: tuple[EventKey, ...] = ()
    trim_interval_seconds: float = 60.0
    # A log shows this many days unless the caller asks for another window.
    default_window_days: int = 14
    retention_days: int = 90
    prune_interval_seconds: float = 3600.0
    # Store client IPs as HMAC-SHA256(ip_hash_key, ip) instead of in clear.
    hash_ips: bool = False
    ip_hash_key: bytes = b""
    follow_poll_seconds: float = 0.5
    # Where auditsvc asks authsvc whether a session is an admin's (ListAllEvents), with its own
    # credential for authsvc (one that authsvc accepts as a service; never the operator's). Unset:
    # ListAllEvents answers UNAVAILABLE.
    authsvc_target: str = ""
    authsvc_key: str = ""
    authsvc_timeout: float = 5.0
    metrics_port: int = 0
    log_level: str = "INFO"
    # TLS (AUDITSVC_TLS_*; gatehouse.infra.tls) on the gRPC port and on the calls to authsvc: None
    # is plaintext both ways.
    tls: TlsSettings | None = None
    # A plaintext port with the health service alone, for the kubelet's gRPC probes under TLS ("": none).
    health_listen: str = ""

    def __post_init__(self) -> None:
        if self.hash_ips and len(self.ip_hash_key) < 32:
            raise SettingsError("AUDITSVC_IP_HASH_KEY (32+ bytes) is required when AUDITSVC_HASH_IPS is on")
        if self.operator_key in service_keys(self.gateway_key):
            raise SettingsError("AUDITSVC_GATEWAY_KEY and AUDITSVC_OPERATOR_KEY must differ")
        if bool(self.authsvc_target) != bool(self.authsvc_key):
            raise SettingsError("AUDITSVC_AUTHSVC_TARGET and AUDITSVC_AUTHSVC_KEY go together: set both or neither")
        if self.authsvc_key and self.authsvc_key in (*service_keys(self.gateway_key), self.operator_key):
            raise SettingsError("AUDITSVC_AUTHSVC_KEY must not be one of the audit service's own credentials")
        if self.authsvc_timeout <= 0:
            raise SettingsError("AUDITSVC_AUTHSVC_TIMEOUT must be more than 0 seconds")
        if self.consumer_expiry_ms < self.claim_idle_ms:
            raise SettingsError("AUDITSVC_CONSUMER_EXPIRY_MS must be at least AUDITSVC_CLAIM_IDLE_MS "
                                "(a dead consumer's entries are claimed before it is removed)")
        if not self.dead_letter_stream:
            object.__setattr__(self, "dead_letter_stream", f"{self.event_stream}:dead-letter")
        if self.consumer_enabled and self.redis_url and not self.event_keys:
            raise SettingsError("AUDITSVC_EVENT_KEYS is required when the consumer runs "
                                "(or set AUDITSVC_CONSUMER_ENABLED=false)")
        if self.dead_letter_stream == self.event_stream:
            raise SettingsError("AUDITSVC_DEAD_LETTER_STREAM must differ from GATEHOUSE_EVENT_STREAM")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = Env(environ)
        stream = env.str("GATEHOUSE_EVENT_STREAM", "gatehouse:events")
        hash_ips = env.bool("AUDITSVC_HASH_IPS", False)
        return cls(
            database_url=env.str("AUDITSVC_DATABASE_URL"),
            listen=env.str("AUDITSVC_LISTEN", "127.0.0.1:50052"),
            gateway_key=env.str("AUDITSVC_GATEWAY_KEY"),
            operator_key=env.str("AUDITSVC_OPERATOR_KEY"),
            redis_url=env.str("GATEHOUSE_REDIS_URL", ""),
            event_stream=stream,
            consumer_enabled=env.bool("AUDITSVC_CONSUMER_ENABLED", True),
            consumer_group=env.str("AUDITSVC_CONSUMER_GROUP", "auditsvc"),
            consumer_name=env.str("AUDITSVC_CONSUMER_NAME", default_consumer_name()),
            batch_size=env.int("AUDITSVC_BATCH_SIZE", 500, minimum=1),
            block_ms=env.int("AUDITSVC_BLOCK_MS", 1000, minimum=1),
            claim_idle_ms=env.int("AUDITSVC_CLAIM_IDLE_MS", 60_000, minimum=1),
            max_deliveries=env.int("AUDITSVC_MAX_DELIVERIES", 5, minimum=1),
            consumer_expiry_ms=env.int("AUDITSVC_CONSUMER_EXPIRY_MS", 3_600_000, minimum=1),
            dead_letter_stream=env.str("AUDITSVC_DEAD_LETTER_STREAM", f"{stream}:dead-letter"),
            trim_interval_seconds=env.float("AUDITSVC_TRIM_INTERVAL", 60.0),
            event_keys=parse_accepted_keys("AUDITSVC_EVENT_KEYS", env.str("AUDITSVC_EVENT_KEYS", "")),
            default_window_days=env.int("AUDITSVC_DEFAULT_WINDOW_DAYS", 14, minimum=1),
            retention_days=env.int("AUDITSVC_RETENTION_DAYS", 90, minimum=1),
            prune_interval_seconds=env.float("AUDITSVC_PRUNE_INTERVAL", 3600.0),
            hash_ips=hash_ips,
            ip_hash_key=env.secret("AUDITSVC_IP_HASH_KEY") if hash_ips else b"",
            follow_poll_seconds=env.float("AUDITSVC_FOLLOW_POLL", 0.5),
            authsvc_target=env.str("AUDITSVC_AUTHSVC_TARGET", ""),
            authsvc_key=env.service_key("AUDITSVC_AUTHSVC_KEY", ""),
            authsvc_timeout=env.float("AUDITSVC_AUTHSVC_TIMEOUT", 5.0),
            metrics_port=env.int("AUDITSVC_METRICS_PORT", 0, minimum=0),
            log_level=env.str("GATEHOUSE_LOG_LEVEL", "INFO"),
            tls=TlsSettings.from_env(env, "AUDITSVC"),
            health_listen=env.str("AUDITSVC_HEALTH_LISTEN", ""),
        )
