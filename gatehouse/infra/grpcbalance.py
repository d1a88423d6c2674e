"""How Gatehouse's gRPC clients spread their calls over a service's pods, and what its servers allow.

A client channel resolves its target through DNS (`dns:///authsvc.gatehouse.svc.cluster.local:50051`
for a headless Service names every ready pod), keeps a connection to each address, and sends each
call to the next ready one (`round_robin`), skipping a pod whose health service says NOT_SERVING (a
stopping one). Keepalive pings find a connection whose peer vanished without closing it (a node
that died). A call to a method named in `IDEMPOTENT_METHODS` that fails UNAVAILABLE (its pod went
away, the connection broke) is tried again, on another pod; any other call is never repeated by the
channel: a retried single-use code check or token mint could act twice.

Servers accept those pings, and authsvc ends each connection after `MAX_CONNECTION_AGE` (with a
grace for the calls on it), so that clients resolve the name again and find pods added since.

Credentials (TLS) are not chosen here: the channel and server builders in `grpcserver` pass these
options beside whatever credentials they use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

ChannelOptions = list[tuple[str, Any]]

# The methods whose repetition changes nothing a caller can tell: reads, and the token checks
# (an upload check converges: its project exists once, whichever attempt created it; its last-use
# stamp is a time). Everything else (logins, code and challenge checks, mints, changes) is absent
# on purpose: a call that failed UNAVAILABLE may still have been carried out.
IDEMPOTENT_METHODS: Mapping[str, tuple[str, ...]] = {
    "gatehouse.auth.v1.AccountService": ("GetAccount", "ValidateSession", "ListSessions"),
    "gatehouse.auth.v1.ProjectService": ("GetProject", "ListMyProjects", "ListRoles", "CheckPermission"),
    "gatehouse.auth.v1.TokenService": ("ListTokens", "VerifyUploadToken", "VerifyIndexToken"),
    "gatehouse.auth.v1.TwoFactorService": ("GetTwoFactorStatus",),
    "gatehouse.auth.v1.AdminService": ("GetUser", "ListTokens"),
    "gatehouse.audit.v1.AuditService": ("ListUserEvents", "ListProjectEvents", "ListAllEvents"),
    # FollowEvents: retried only until its first event arrives (gRPC commits a call then).
    "gatehouse.audit.v1.AuditAdminService": ("ListEvents", "FollowEvents"),
    "gatehouse.diag.v1.EchoService": ("Echo",),
    "grpc.health.v1.Health": ("Check",),
}

# Attempts in all (the first and two retries), within the call's own deadline.
RETRY_ATTEMPTS = 3
# Client pings on an idle connection every 20 s; a peer that does not answer in 10 s is gone.
KEEPALIVE_TIME_MS = 20_000
KEEPALIVE_TIMEOUT_MS = 10_000
# Servers refuse pings more frequent than this (the clients' interval, with margin).
MIN_PING_INTERVAL_MS = 10_000
# authsvc ends a connection after about this long (gRPC adds ±10 % jitter), then lets its calls
# finish for the grace: longer than the gateway's upload-check streams live (UPLOAD_CHECK_STREAM_MAX_AGE in
# uploadgw.authclient), so those are always renewed by the client, never cut.
MAX_CONNECTION_AGE_MS = 300_000
MAX_CONNECTION_AGE_GRACE_MS = 120_000


def service_config() -> dict[str, Any]:
    """The service config every client channel carries (never one from DNS TXT records)."""
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        # Pods report NOT_SERVING on the standard health service while they drain.
        "healthCheckConfig": {"serviceName": ""},
        "methodConfig": [{
            "name": [{"service": service, "method": method}
                     for service, methods in IDEMPOTENT_METHODS.items() for method in methods],
            "retryPolicy": {
                "maxAttempts": RETRY_ATTEMPTS,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }],
        # gRPC's retry throttling: each failed call takes a token, each success gives a tenth of one
        # back, and below half of maxTokens nothing is retried: no retry storm in an outage.
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }


def channel_options() -> ChannelOptions:
    """Options for every client channel: balancing, retries and keepalive (with any credentials)."""
    return [
        ("grpc.service_config", json.dumps(service_config())),
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_options(*, max_connection_age: bool = False) -> ChannelOptions:
    """Options for every server: accept the clients' keepalive pings; with `max_connection_age`,
    end connections after `MAX_CONNECTION_AGE_MS` so that clients find new pods."""
    options: ChannelOptions = [
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
    ]
    if max_connection_age:
        options += [("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
                    ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS)]
    return options
