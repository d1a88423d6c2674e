"""The upload gateway's settings, built once from environment variables at start-up."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from gatehouse.infra.eventauth import parse_producer_keys
from gatehouse.infra.settings import Env, SettingsError
from gatehouse.infra.tls import TlsSettings

MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclasses.dataclass(frozen=True)
class S3Settings:
    """The object-store backend (uploadgw/storage/s3store.py): any service that speaks the S3 API."""

    bucket: str
    # Empty: AWS's endpoint for the region. MinIO, Ceph RGW, R2: their URL.
    endpoint_url: str = ""
    region: str = "us-east-1"
    # Empty: botocore's usual chain (environment, web identity / IRSA, instance profile).
    access_key_id: str = ""
    secret_access_key: str = dataclasses.field(default="", repr=False)
    # `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key` (MinIO, Ceph RGW).
    path_style: bool = False
    # Every object's name starts with this (several indexes may share a bucket).
    prefix: str = ""
    # "stream": downloads go through the gateway; "redirect": a 302 to a presigned URL.
    downloads: str = "stream"
    presign_seconds: int = 30
    # The endpoint clients reach for presigned URLs, when it is not the gateway's (a CDN, a public
    # name in front of an in-cluster MinIO). Empty: `endpoint_url`.
    public_endpoint_url: str = ""


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str
    storage_dir: str
    authsvc_target: str
    # The gateway's service credential for authsvc (never the operator's).
    authsvc_key: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 8000
    auth_timeout: float = 5.0
    max_file_size: int = 100 * MIB
    max_project_size: int = 10 * GIB
    # Everything that is not the file (metadata fields, description) in one upload.
    max_form_size: int = 8 * MIB
    max_metadata_file_size: int = 4 * MIB
    max_archive_members: int = 100_000
    # A declared archive size above this many bytes must not expand more than `max_compression_ratio`.
    compression_ratio_min_size: int = 64 * MIB
    max_compression_ratio: int = 50
    index_private: bool = False
    # Seconds a successful private-index token check is remembered (0: every read asks authsvc).
    index_auth_cache_seconds: float = 0.0
    index_cache_projects: int = 2048
    # Seconds a cached simple page or file lookup is used before the database confirms it again
    # (uploadgw/index/service.py): how late a change made by another replica may show (0: always ask).
    index_recheck_seconds: float = 1.0
    fsync: bool = True
    temp_max_age_seconds: int = 6 * 3600
    sweep_interval_seconds: int = 300
    redis_url: str = ""
    event_stream: str = "gatehouse:events"
    # Run the outbox relay in the gateway process (needs GATEHOUSE_REDIS_URL); off when it runs apart.
    relay_enabled: bool = True
    # Seals every event this service emits ("version:key", newest first: the first signs). Empty
    # only in tests that do not relay: auditsvc dead-letters unsealed events.
    event_keys: tuple[tuple[int, bytes], ...] = ()
    # Remove the files of projects deleted in authsvc, from the event stream (needs GATEHOUSE_REDIS_URL).
    project_events: bool = True
    public_url: str = "http://localhost:8000"
    access_log: bool = True
    metrics_port: int = 0
    log_level: str = "INFO"
    # Account pages (uploadgw/pages): the key that signs CSRF tokens and notices (empty: a random
    # key per process, so forms do not survive a restart or move between replicas), and auditsvc.
    session_key: str = ""
    # Reverse proxies in front of the gateway whose X-Forwarded-For entries are trusted (0: none).
    trusted_proxy_hops: int = 0
    auditsvc_target: str = ""
    auditsvc_key: str = ""
    # The public edge's bounds on slow or idle clients (uploadgw/http/edge.py): a request head must
    # be complete within `header_timeout` of the connection opening or of its first byte; an idle
    # connection between requests is closed after `keepalive_timeout` (above a proxy's upstream
    # keep-alive, 60 s in ingress-nginx); a body that stops for `body_idle_timeout`, or brings less
    # than `body_min_rate` bytes a second over `body_rate_window` after `body_rate_grace`, is cut.
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    body_idle_timeout: float = 30.0
    body_min_rate: int = 1024
    body_rate_window: float = 60.0
    body_rate_grace: float = 30.0
    # Uploads running at once per API token and per client address, in one replica (0: no cap).
    max_uploads_per_token: int = 4
    max_uploads_per_ip: int = 8
    # TLS on the calls to authsvc and auditsvc (UPLOADGW_TLS_*; gatehouse.infra.tls): None is plaintext.
    tls: TlsSettings | None = None
    # Blobs in an S3 bucket instead of under `storage_dir` (which then holds uploads in progress only).
    s3: S3Settings | None = None
    # Serve HTTPS directly (PEM files; both or neither). Behind a TLS-terminating proxy, leave empty.
    https_cert: str = ""
    https_key: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = Env(environ)
        host, port = _parse_listen(env.str("UPLOADGW_LISTEN", "127.0.0.1:8000"))
        settings = cls(
            database_url=env.str("UPLOADGW_DATABASE_URL"),
            storage_dir=env.str("UPLOADGW_STORAGE_DIR"),
            authsvc_target=env.str("UPLOADGW_AUTHSVC_TARGET"),
            authsvc_key=env.service_key("UPLOADGW_AUTHSVC_KEY"),
            listen_host=host,
            listen_port=port,
            auth_timeout=env.float("UPLOADGW_AUTH_TIMEOUT", 5.0),
            max_file_size=env.int("UPLOADGW_MAX_FILE_SIZE", 100 * MIB, minimum=1),
            max_project_size=env.int("UPLOADGW_MAX_PROJECT_SIZE", 10 * GIB, minimum=1),
            max_form_size=env.int("UPLOADGW_MAX_FORM_SIZE", 8 * MIB, minimum=64 * 1024),
            max_metadata_file_size=env.int("UPLOADGW_MAX_METADATA_FILE_SIZE", 4 * MIB, minimum=1024),
            max_archive_members=env.int("UPLOADGW_MAX_ARCHIVE_MEMBERS", 100_000, minimum=10),
            index_private=env.bool("UPLOADGW_INDEX_PRIVATE", False),
            index_auth_cache_seconds=env.float("UPLOADGW_INDEX_AUTH_CACHE_SECONDS", 0.0),
            index_recheck_seconds=env.float("UPLOADGW_INDEX_RECHECK_SECONDS", 1.0),
            fsync=env.bool("UPLOADGW_FSYNC", True),
            temp_max_age_seconds=env.int("UPLOADGW_TEMP_MAX_AGE", 6 * 3600, minimum=60),
            sweep_interval_seconds=env.int("UPLOADGW_SWEEP_INTERVAL", 300, minimum=0),
            redis_url=env.str("GATEHOUSE_REDIS_URL", ""),
            event_stream=env.str("GATEHOUSE_EVENT_STREAM", "gatehouse:events"),
            relay_enabled=env.bool("UPLOADGW_RELAY_ENABLED", True),
            event_keys=parse_producer_keys("UPLOADGW_EVENT_KEYS", env.str("UPLOADGW_EVENT_KEYS")),
            project_events=env.bool("UPLOADGW_PROJECT_EVENTS", True),
            public_url=env.str("GATEHOUSE_PUBLIC_URL", "http://localhost:8000"),
            access_log=env.bool("UPLOADGW_ACCESS_LOG", True),
            metrics_port=env.int("UPLOADGW_METRICS_PORT", 0, minimum=0),
            log_level=env.str("GATEHOUSE_LOG_LEVEL", "INFO"),
            session_key=env.str("UPLOADGW_SESSION_KEY", ""),
            trusted_proxy_hops=env.int("UPLOADGW_TRUSTED_PROXY_HOPS", 0, minimum=0),
            auditsvc_target=env.str("UPLOADGW_AUDITSVC_TARGET", ""),
            auditsvc_key=env.service_key("UPLOADGW_AUDITSVC_KEY", ""),
            header_timeout=env.float("UPLOADGW_HEADER_TIMEOUT", 10.0),
            keepalive_timeout=env.float("UPLOADGW_KEEPALIVE_TIMEOUT", 75.0),
            body_idle_timeout=env.float("UPLOADGW_BODY_IDLE_TIMEOUT", 30.0),
            body_min_rate=env.int("UPLOADGW_BODY_MIN_RATE", 1024, minimum=0),
            body_rate_window=env.float("UPLOADGW_BODY_RATE_WINDOW", 60.0),
            body_rate_grace=env.float("UPLOADGW_BODY_RATE_GRACE", 30.0),
            max_uploads_per_token=env.int("UPLOADGW_MAX_UPLOADS_PER_TOKEN", 4, minimum=0),
            max_uploads_per_ip=env.int("UPLOADGW_MAX_UPLOADS_PER_IP", 8, minimum=0),
            tls=TlsSettings.from_env(env, "UPLOADGW"),
            s3=_s3_from_env(env, private=env.bool("UPLOADGW_INDEX_PRIVATE", False)),
            https_cert=env.str("UPLOADGW_HTTPS_CERT", ""),
            https_key=env.str("UPLOADGW_HTTPS_KEY", ""),
        )
        if bool(settings.https_cert) != bool(settings.https_key):
            raise SettingsError("UPLOADGW_HTTPS_CERT and UPLOADGW_HTTPS_KEY go together: set both (HTTPS) or neither")
        for name, value in (("UPLOADGW_AUTH_TIMEOUT", settings.auth_timeout),
                            ("UPLOADGW_HEADER_TIMEOUT", settings.header_timeout),
                            ("UPLOADGW_KEEPALIVE_TIMEOUT", settings.keepalive_timeout),
                            ("UPLOADGW_BODY_IDLE_TIMEOUT", settings.body_idle_timeout),
                            ("UPLOADGW_BODY_RATE_WINDOW", settings.body_rate_window)):
            if value <= 0:
                raise SettingsError(f"{name} must be a positive number of seconds")
        for name, value in (("UPLOADGW_BODY_RATE_GRACE", settings.body_rate_grace),
                            ("UPLOADGW_INDEX_RECHECK_SECONDS", settings.index_recheck_seconds)):
            if value < 0:
                raise SettingsError(f"{name} must be zero or more seconds")
        return settings


MAX_PRESIGN_SECONDS_PRIVATE = 60


def _s3_from_env(env: Env, *, private: bool) -> S3Settings | None:
    backend = env.str("UPLOADGW_STORAGE_BACKEND", "local")
    if backend not in ("local", "s3"):
        raise SettingsError(f"UPLOADGW_STORAGE_BACKEND must be 'local' or 's3', got {backend!r}")
    if backend == "local":
        return None
    downloads = env.str("UPLOADGW_S3_DOWNLOADS", "stream")
    if downloads not in ("stream", "redirect"):
        raise SettingsError(f"UPLOADGW_S3_DOWNLOADS must be 'stream' or 'redirect', got {downloads!r}")
    # A private index checks every read: the URL it hands out must not stay valid much longer.
    longest = MAX_PRESIGN_SECONDS_PRIVATE if private else 3600
    presign_seconds = env.int("UPLOADGW_S3_PRESIGN_SECONDS", 30, minimum=1)
    if presign_seconds > longest:
        raise SettingsError(f"UPLOADGW_S3_PRESIGN_SECONDS must be at most {longest}"
                            f"{' on a private index' if private else ''}, got {presign_seconds}")
    access_key_id = env.str("UPLOADGW_S3_ACCESS_KEY_ID", "")
    secret_access_key = env.str("UPLOADGW_S3_SECRET_ACCESS_KEY", "")
    if bool(access_key_id) != bool(secret_access_key):
        raise SettingsError("UPLOADGW_S3_ACCESS_KEY_ID and UPLOADGW_S3_SECRET_ACCESS_KEY are set together, or neither")
    return S3Settings(
        bucket=env.str("UPLOADGW_S3_BUCKET"),
        endpoint_url=env.str("UPLOADGW_S3_ENDPOINT_URL", ""),
        region=env.str("UPLOADGW_S3_REGION", "us-east-1"),
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        path_style=env.bool("UPLOADGW_S3_PATH_STYLE", False),
        prefix=env.str("UPLOADGW_S3_PREFIX", ""),
        downloads=downloads,
        presign_seconds=presign_seconds,
        public_endpoint_url=env.str("UPLOADGW_S3_PUBLIC_ENDPOINT_URL", ""),
    )


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise SettingsError(f"UPLOADGW_LISTEN must look like host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
