"""The auth service's settings, built once from environment variables at start-up."""

from __future__ import annotations

import dataclasses

from gatehouse.infra.settings import Env, SettingsError


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str
    listen: str
    # Service credentials accepted on calls: the gateway's and the operator CLI's.
    gateway_key: str
    operator_key: str
    # Token root keys are derived from these secrets ("version:key", newest first) and never stored.
    token_secrets: tuple[tuple[int, bytes], ...]
    token_prefix: str = "pypi-"
    token_location: str = "gatehouse"
    redis_url: str = ""
    event_stream: str = "gatehouse:events"
    relay_enabled: bool = True
    # Mail: SMTP in production, a file mailbox (one .eml per message) on the embedded default.
    smtp_url: str = ""
    mailbox_dir: str = ""
    mail_from: str = "Gatehouse <noreply@localhost>"
    public_url: str = "http://localhost:8000"
    session_lifetime_seconds: int = 12 * 3600
    reauth_seconds: int = 30 * 60
    email_token_lifetime_seconds: int = 24 * 3600
    reset_token_lifetime_seconds: int = 3600
    login_failures_per_user: int = 10
    login_failures_per_ip: int = 10
    login_window_seconds: int = 300
    emails_per_user: int = 5
    email_window_seconds: int = 3600
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    hash_workers: int = 2
    allow_project_creation: bool = True
    metrics_port: int = 0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ=None) -> "Settings":
        env = Env(environ)
        secrets = []
        for item in env.list("AUTHSVC_TOKEN_SECRETS"):
            version, sep, raw = item.partition(":")
            if not sep or not version.isdigit():
                raise SettingsError("AUTHSVC_TOKEN_SECRETS entries must look like '<version>:<key>'")
            from gatehouse.infra.settings import decode_key

            key = decode_key(raw)
            if key is None or len(key) < 32:
                raise SettingsError("AUTHSVC_TOKEN_SECRETS keys must be base64 or hex of at least 32 bytes")
            secrets.append((int(version), key))
        if not secrets:
            raise SettingsError("AUTHSVC_TOKEN_SECRETS is required but not set")
        settings = cls(
            database_url=env.str("AUTHSVC_DATABASE_URL"),
            listen=env.str("AUTHSVC_LISTEN", "127.0.0.1:50051"),
            gateway_key=env.str("AUTHSVC_GATEWAY_KEY"),
            operator_key=env.str("AUTHSVC_OPERATOR_KEY"),
            token_secrets=tuple(secrets),
            token_prefix=env.str("AUTHSVC_TOKEN_PREFIX", "pypi-"),
            token_location=env.str("AUTHSVC_TOKEN_LOCATION", "gatehouse"),
            redis_url=env.str("GATEHOUSE_REDIS_URL", ""),
            event_stream=env.str("GATEHOUSE_EVENT_STREAM", "gatehouse:events"),
            relay_enabled=env.bool("AUTHSVC_RELAY_ENABLED", True),
            smtp_url=env.str("AUTHSVC_SMTP_URL", ""),
            mailbox_dir=env.str("AUTHSVC_MAILBOX_DIR", ""),
            mail_from=env.str("AUTHSVC_MAIL_FROM", "Gatehouse <noreply@localhost>"),
            public_url=env.str("GATEHOUSE_PUBLIC_URL", "http://localhost:8000"),
            session_lifetime_seconds=env.int("AUTHSVC_SESSION_LIFETIME", 12 * 3600, minimum=60),
            reauth_seconds=env.int("AUTHSVC_REAUTH_SECONDS", 30 * 60, minimum=60),
            reset_token_lifetime_seconds=env.int("AUTHSVC_RESET_TOKEN_LIFETIME", 3600, minimum=60),
            login_failures_per_user=env.int("AUTHSVC_LOGIN_FAILURES_PER_USER", 10, minimum=1),
            login_failures_per_ip=env.int("AUTHSVC_LOGIN_FAILURES_PER_IP", 10, minimum=1),
            login_window_seconds=env.int("AUTHSVC_LOGIN_WINDOW", 300, minimum=1),
            emails_per_user=env.int("AUTHSVC_EMAILS_PER_USER", 5, minimum=1),
            email_window_seconds=env.int("AUTHSVC_EMAIL_WINDOW", 3600, minimum=1),
            argon2_time_cost=env.int("AUTHSVC_ARGON2_TIME_COST", 3, minimum=2),
            argon2_memory_kib=env.int("AUTHSVC_ARGON2_MEMORY_KIB", 65536, minimum=19456),
            argon2_parallelism=env.int("AUTHSVC_ARGON2_PARALLELISM", 4, minimum=1),
            hash_workers=env.int("AUTHSVC_HASH_WORKERS", 2, minimum=1),
            allow_project_creation=env.bool("AUTHSVC_ALLOW_PROJECT_CREATION", True),
            metrics_port=env.int("AUTHSVC_METRICS_PORT", 0, minimum=0),
            log_level=env.str("GATEHOUSE_LOG_LEVEL", "INFO"),
        )
        if settings.gateway_key == settings.operator_key:
            raise SettingsError("AUTHSVC_GATEWAY_KEY and AUTHSVC_OPERATOR_KEY must differ")
        return settings
