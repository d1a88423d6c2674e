"""The auth service's settings, built once from environment variables at start-up."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from authsvc.tokens.scannerkeys import TrustedScanner, check_keys_url
from gatehouse.infra.eventauth import parse_producer_keys
from gatehouse.infra.settings import Env, SettingsError, service_keys
from gatehouse.infra.tls import TlsSettings


ISSUER_KINDS = ("github", "gitlab", "forgejo", "google", "custom")
MAX_TRUSTED_TOKEN_SECONDS = 900  # minted upload tokens live at most 15 minutes
MAX_OIDC_LEEWAY_SECONDS = 30


@dataclasses.dataclass(frozen=True)
class OidcIssuer:
    """An identity-token issuer the operator trusts for trusted publishing. `url` is the `iss` claim
    exactly (its discovery document must repeat it); `claims`: for a custom issuer, the claims a
    publisher must give values for (every one must match the token's exactly)."""

    url: str
    kind: str
    name: str
    claims: tuple[str, ...] = ()


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
    # The audit API's credential: it may call ValidateSession only (to check admin sessions).
    audit_key: str = ""
    redis_url: str = ""
    event_stream: str = "gatehouse:events"
    relay_enabled: bool = True
    # Seals every event this service emits ("version:key", newest first: the first signs). Empty
    # only in tests that do not relay: auditsvc dead-letters unsealed events.
    event_keys: tuple[tuple[int, bytes], ...] = ()
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
    login_max_wait_seconds: int = 86400
    login_failures_per_day: int = 100
    login_failures_per_device: int = 5
    device_token_lifetime_seconds: int = 180 * 86400
    # Hold a login from a new browser and network until a mailed link is followed (newdevice.py).
    new_device_confirmation: bool = True
    login_confirmation_lifetime_seconds: int = 15 * 60
    emails_per_user: int = 5
    email_window_seconds: int = 3600
    reset_requests_per_ip: int = 20
    # Reset mails (anyone may ask for one) have their own budget, apart from emails_per_user.
    reset_mails_per_user: int = 10
    reset_mails_per_user_ip: int = 3
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    hash_workers: int = 2
    # Callers that may wait for a hashing worker; beyond that RESOURCE_EXHAUSTED with a retry-after.
    hash_queue: int = 16
    allow_project_creation: bool = True
    # VerifyUploadToken/VerifyIndexToken record a token's last use at most this often.
    token_last_used_interval_seconds: int = 60
    # Every token expires: a token created without an expiry gets the default, longer is refused.
    token_default_days: int = 90
    token_max_days: int = 365
    # The notice mail goes this long before a token ends; the sweep that sends it (and records the
    # expiry event) runs this often on every replica (each mail and event once: see tokens/expiry.py).
    token_expiry_notice_days: int = 7
    token_expiry_sweep_seconds: int = 300
    metrics_port: int = 0
    log_level: str = "INFO"
    # Two-factor authentication (authsvc/twofactor). TOTP seeds are encrypted at rest with these
    # keys ("version:key", newest first; older versions stay readable so keys can rotate).
    totp_keys: tuple[tuple[int, bytes], ...] = ()
    totp_issuer: str = "Gatehouse"
    webauthn_rp_id: str = "localhost"
    webauthn_rp_name: str = "Gatehouse"
    webauthn_origins: tuple[str, ...] = ("http://localhost:8000",)
    webauthn_user_verification: str = "preferred"  # required | preferred | discouraged
    require_2fa_for_upload: bool = False
    second_factor_failures_per_user: int = 5
    second_factor_failures_per_ip: int = 10
    second_factor_window_seconds: int = 300
    second_factor_max_wait_seconds: int = 86400
    pending_login_seconds: int = 300
    # Secret scanners whose leaked-token reports are believed (authsvc/tokens/disclosure.py), and
    # how long their public keys are cached.
    leak_scanners: tuple[TrustedScanner, ...] = ()
    leak_keys_cache_seconds: int = 300
    # TLS on the gRPC port (AUTHSVC_TLS_*; gatehouse.infra.tls): None serves plaintext.
    tls: TlsSettings | None = None
    # A plaintext port with the health service alone, for the kubelet's gRPC probes under TLS ("": none).
    health_listen: str = ""
    # Trusted publishing (authsvc/publishing): off while no issuer is configured.
    oidc_issuers: tuple[OidcIssuer, ...] = ()
    oidc_audience: str = "gatehouse"
    oidc_token_seconds: int = MAX_TRUSTED_TOKEN_SECONDS
    oidc_leeway_seconds: int = 30
    # The issuer's keys are re-fetched at most this often for an unknown `kid`, kept this long,
    # and still used this long after a failed refresh (a short issuer outage).
    oidc_keys_refresh_seconds: int = 60
    oidc_keys_max_age_seconds: int = 3600
    oidc_keys_stale_seconds: int = 900
    # A PEM bundle of CAs for issuers with a private CA (GitHub Enterprise Server, self-managed GitLab).
    oidc_ca_file: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
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
        if len({v for v, _ in secrets}) != len(secrets) or not all(0 < v < 10**9 for v, _ in secrets):
            raise SettingsError("AUTHSVC_TOKEN_SECRETS versions must be unique numbers from 1 to 999999999")
        settings = cls(
            database_url=env.str("AUTHSVC_DATABASE_URL"),
            listen=env.str("AUTHSVC_LISTEN", "127.0.0.1:50051"),
            gateway_key=env.str("AUTHSVC_GATEWAY_KEY"),
            operator_key=env.str("AUTHSVC_OPERATOR_KEY"),
            audit_key=env.str("AUTHSVC_AUDIT_KEY", ""),
            token_secrets=tuple(secrets),
            token_prefix=env.str("AUTHSVC_TOKEN_PREFIX", "pypi-"),
            token_location=env.str("AUTHSVC_TOKEN_LOCATION", "gatehouse"),
            redis_url=env.str("GATEHOUSE_REDIS_URL", ""),
            event_stream=env.str("GATEHOUSE_EVENT_STREAM", "gatehouse:events"),
            relay_enabled=env.bool("AUTHSVC_RELAY_ENABLED", True),
            event_keys=parse_producer_keys("AUTHSVC_EVENT_KEYS", env.str("AUTHSVC_EVENT_KEYS")),
            smtp_url=env.str("AUTHSVC_SMTP_URL", ""),
            mailbox_dir=env.str("AUTHSVC_MAILBOX_DIR", ""),
            mail_from=env.str("AUTHSVC_MAIL_FROM", "Gatehouse <noreply@localhost>"),
            public_url=env.str("GATEHOUSE_PUBLIC_URL", "http://localhost:8000"),
            session_lifetime_seconds=env.int("AUTHSVC_SESSION_LIFETIME", 12 * 3600, minimum=60),
            reauth_seconds=env.int("AUTHSVC_REAUTH_SECONDS", 30 * 60, minimum=60),
            email_token_lifetime_seconds=env.int("AUTHSVC_EMAIL_TOKEN_LIFETIME", 24 * 3600, minimum=60),
            reset_token_lifetime_seconds=env.int("AUTHSVC_RESET_TOKEN_LIFETIME", 3600, minimum=60),
            login_failures_per_user=env.int("AUTHSVC_LOGIN_FAILURES_PER_USER", 10, minimum=1),
            login_failures_per_ip=env.int("AUTHSVC_LOGIN_FAILURES_PER_IP", 10, minimum=1),
            login_window_seconds=env.int("AUTHSVC_LOGIN_WINDOW", 300, minimum=1),
            login_max_wait_seconds=env.int("AUTHSVC_LOGIN_MAX_WAIT", 86400, minimum=1),
            login_failures_per_day=env.int("AUTHSVC_LOGIN_FAILURES_PER_DAY", 100, minimum=1),
            login_failures_per_device=env.int("AUTHSVC_LOGIN_FAILURES_PER_DEVICE", 5, minimum=1),
            device_token_lifetime_seconds=env.int("AUTHSVC_DEVICE_TOKEN_LIFETIME", 180 * 86400, minimum=60),
            new_device_confirmation=env.bool("AUTHSVC_NEW_DEVICE_CONFIRMATION", True),
            login_confirmation_lifetime_seconds=env.int("AUTHSVC_LOGIN_CONFIRMATION_LIFETIME", 15 * 60, minimum=60),
            emails_per_user=env.int("AUTHSVC_EMAILS_PER_USER", 5, minimum=1),
            email_window_seconds=env.int("AUTHSVC_EMAIL_WINDOW", 3600, minimum=1),
            reset_requests_per_ip=env.int("AUTHSVC_RESET_REQUESTS_PER_IP", 20, minimum=1),
            reset_mails_per_user=env.int("AUTHSVC_RESET_MAILS_PER_USER", 10, minimum=1),
            reset_mails_per_user_ip=env.int("AUTHSVC_RESET_MAILS_PER_USER_IP", 3, minimum=1),
            argon2_time_cost=env.int("AUTHSVC_ARGON2_TIME_COST", 3, minimum=2),
            argon2_memory_kib=env.int("AUTHSVC_ARGON2_MEMORY_KIB", 65536, minimum=19456),
            argon2_parallelism=env.int("AUTHSVC_ARGON2_PARALLELISM", 4, minimum=1),
            hash_workers=env.int("AUTHSVC_HASH_WORKERS", 2, minimum=1),
            hash_queue=env.int("AUTHSVC_HASH_QUEUE", 16, minimum=0),
            allow_project_creation=env.bool("AUTHSVC_ALLOW_PROJECT_CREATION", True),
            token_last_used_interval_seconds=env.int("AUTHSVC_TOKEN_LAST_USED_INTERVAL", 60, minimum=0),
            token_default_days=env.int("AUTHSVC_TOKEN_DEFAULT_DAYS", 90, minimum=1),
            token_max_days=env.int("AUTHSVC_TOKEN_MAX_DAYS", 365, minimum=1),
            token_expiry_notice_days=env.int("AUTHSVC_TOKEN_EXPIRY_NOTICE_DAYS", 7, minimum=1),
            token_expiry_sweep_seconds=env.int("AUTHSVC_TOKEN_EXPIRY_SWEEP", 300, minimum=0),
            metrics_port=env.int("AUTHSVC_METRICS_PORT", 0, minimum=0),
            log_level=env.str("GATEHOUSE_LOG_LEVEL", "INFO"),
            leak_scanners=_leak_scanners(env.str("AUTHSVC_LEAK_SCANNERS", "")),
            leak_keys_cache_seconds=env.int("AUTHSVC_LEAK_KEYS_CACHE_SECONDS", 300, minimum=0),
            tls=TlsSettings.from_env(env, "AUTHSVC"),
            health_listen=env.str("AUTHSVC_HEALTH_LISTEN", ""),
            **_two_factor_settings(env),
            **_publishing_settings(env),
        )
        if settings.smtp_url:
            from authsvc.mail import SmtpConfig

            try:
                SmtpConfig.from_url(settings.smtp_url)
            except ValueError as exc:
                raise SettingsError(f"AUTHSVC_SMTP_URL: {exc}") from None
        if settings.reset_token_lifetime_seconds > 3600:
            raise SettingsError("AUTHSVC_RESET_TOKEN_LIFETIME must be at most 3600 (a reset link "
                                "expires within an hour)")
        if settings.token_default_days > settings.token_max_days:
            raise SettingsError("AUTHSVC_TOKEN_DEFAULT_DAYS must not be more than AUTHSVC_TOKEN_MAX_DAYS")
        if not service_keys(settings.gateway_key):
            raise SettingsError("AUTHSVC_GATEWAY_KEY is required but empty")
        if settings.operator_key in service_keys(settings.gateway_key):
            raise SettingsError("AUTHSVC_GATEWAY_KEY and AUTHSVC_OPERATOR_KEY must differ")
        if set(service_keys(settings.audit_key)) & {*service_keys(settings.gateway_key), settings.operator_key}:
            raise SettingsError("AUTHSVC_AUDIT_KEY must differ from AUTHSVC_GATEWAY_KEY and AUTHSVC_OPERATOR_KEY")
        return settings


def _leak_scanners(raw: str) -> tuple[TrustedScanner, ...]:
    """AUTHSVC_LEAK_SCANNERS: a JSON list of {"name": ..., "keys_url": ...} (empty: none trusted)."""
    if not raw.strip():
        return ()
    try:
        entries = json.loads(raw)
        scanners = tuple(TrustedScanner(name=e["name"], keys_url=check_keys_url(e["keys_url"])) for e in entries)
    except (ValueError, TypeError, KeyError) as exc:
        raise SettingsError('AUTHSVC_LEAK_SCANNERS must be a JSON list of {"name": ..., "keys_url": '
                            f'"https://..."}} objects ({exc})') from None
    if not all(isinstance(s.name, str) and s.name.strip() for s in scanners):
        raise SettingsError("AUTHSVC_LEAK_SCANNERS: every scanner needs a name")
    return scanners


def _two_factor_settings(env: Env) -> dict[str, Any]:  # keyword arguments of Settings
    """The two-factor settings (AUTHSVC_TOTP_KEYS is required: seeds are never stored in clear)."""
    from gatehouse.infra.settings import decode_key

    keys = []
    for item in env.list("AUTHSVC_TOTP_KEYS"):
        version, sep, raw = item.partition(":")
        key = decode_key(raw) if sep and version.isdigit() else None
        if key is None or len(key) < 32:
            raise SettingsError("AUTHSVC_TOTP_KEYS entries must look like '<version>:<key>' with a base64 "
                                "or hex key of at least 32 bytes")
        keys.append((int(version), key))
    if not keys:
        raise SettingsError("AUTHSVC_TOTP_KEYS is required but not set")
    if len({v for v, _ in keys}) != len(keys):
        raise SettingsError("AUTHSVC_TOTP_KEYS versions must be unique")
    origins = tuple(o.rstrip("/") for o in env.list("AUTHSVC_WEBAUTHN_ORIGINS", ("http://localhost:8000",)))
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("https", "http") or not sep or not rest or "/" in rest:
            raise SettingsError(f"AUTHSVC_WEBAUTHN_ORIGINS entries must look like 'https://host[:port]', "
                                f"got {origin!r}")
    verification = env.str("AUTHSVC_WEBAUTHN_USER_VERIFICATION", "preferred")
    if verification not in ("required", "preferred", "discouraged"):
        raise SettingsError("AUTHSVC_WEBAUTHN_USER_VERIFICATION must be required, preferred or discouraged")
    return dict(
        totp_keys=tuple(keys),
        totp_issuer=env.str("AUTHSVC_TOTP_ISSUER", "Gatehouse"),
        webauthn_rp_id=env.str("AUTHSVC_WEBAUTHN_RP_ID", "localhost"),
        webauthn_rp_name=env.str("AUTHSVC_WEBAUTHN_RP_NAME", "Gatehouse"),
        webauthn_origins=origins,
        webauthn_user_verification=verification,
        require_2fa_for_upload=env.bool("AUTHSVC_REQUIRE_2FA_FOR_UPLOAD", False),
        second_factor_failures_per_user=env.int("AUTHSVC_2FA_FAILURES_PER_USER", 5, minimum=1),
        second_factor_failures_per_ip=env.int("AUTHSVC_2FA_FAILURES_PER_IP", 10, minimum=1),
        second_factor_window_seconds=env.int("AUTHSVC_2FA_WINDOW", 300, minimum=1),
        second_factor_max_wait_seconds=env.int("AUTHSVC_2FA_MAX_WAIT", 86400, minimum=1),
        pending_login_seconds=env.int("AUTHSVC_PENDING_LOGIN_SECONDS", 300, minimum=30),
    )


def _publishing_settings(env: Env) -> dict[str, Any]:  # keyword arguments of Settings
    """AUTHSVC_OIDC_ISSUERS is a JSON list of {"url", "kind", "name"?, "claims"?} objects."""
    raw = env.str("AUTHSVC_OIDC_ISSUERS", "").strip()
    issuers = parse_issuers(raw) if raw else ()
    return dict(
        oidc_issuers=issuers,
        oidc_audience=env.str("AUTHSVC_OIDC_AUDIENCE", "gatehouse"),
        oidc_token_seconds=_at_most(env, "AUTHSVC_OIDC_TOKEN_SECONDS", MAX_TRUSTED_TOKEN_SECONDS, 60),
        oidc_leeway_seconds=_at_most(env, "AUTHSVC_OIDC_LEEWAY", MAX_OIDC_LEEWAY_SECONDS, 0),
        oidc_keys_refresh_seconds=env.int("AUTHSVC_OIDC_KEYS_REFRESH", 60, minimum=60),
        oidc_keys_max_age_seconds=env.int("AUTHSVC_OIDC_KEYS_MAX_AGE", 3600, minimum=60),
        oidc_keys_stale_seconds=env.int("AUTHSVC_OIDC_KEYS_STALE", 900, minimum=0),
        oidc_ca_file=env.str("AUTHSVC_OIDC_CA_FILE", ""),
    )


def _at_most(env: Env, name: str, maximum: int, minimum: int) -> int:
    value = env.int(name, maximum, minimum=minimum)
    if value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}")
    return value


def parse_issuers(raw: str) -> tuple[OidcIssuer, ...]:
    """The issuers of AUTHSVC_OIDC_ISSUERS, or SettingsError naming what is wrong."""
    name = "AUTHSVC_OIDC_ISSUERS"
    try:
        items = json.loads(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a JSON list of issuer objects") from None
    if not isinstance(items, list):
        raise SettingsError(f"{name} must be a JSON list of issuer objects")
    issuers: list[OidcIssuer] = []
    for item in items:
        if not isinstance(item, dict) or not set(item) <= {"url", "kind", "name", "claims"}:
            raise SettingsError(f"{name}: each issuer is an object with url, kind, and optionally name and claims")
        url, kind = item.get("url"), item.get("kind")
        if not isinstance(url, str) or not issuer_url_ok(url):
            raise SettingsError(f"{name}: issuer url {url!r} must be https:// (http:// only on a loopback "
                                "address), with no query or fragment")
        if kind not in ISSUER_KINDS:
            raise SettingsError(f"{name}: issuer {url} has kind {kind!r}; choose one of {', '.join(ISSUER_KINDS)}")
        claims = item.get("claims", [])
        if kind == "custom":
            if (not isinstance(claims, list) or not claims
                    or not all(isinstance(c, str) and c.isidentifier() for c in claims)):
                raise SettingsError(f"{name}: custom issuer {url} needs \"claims\": the names of the claims "
                                    "a publisher must match")
        elif claims:
            raise SettingsError(f"{name}: only custom issuers take \"claims\" ({url} is {kind})")
        if any(i.url == url for i in issuers):
            raise SettingsError(f"{name}: issuer {url} is listed twice")
        label = item.get("name") or url
        issuers.append(OidcIssuer(url=url, kind=kind, name=str(label), claims=tuple(claims)))
    return tuple(issuers)


def issuer_url_ok(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname or parts.username or parts.password:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False
