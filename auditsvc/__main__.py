"""`python -m auditsvc`: the audit service (gRPC, stream consumer, pruning) from the environment."""

from __future__ import annotations

import gc

from gatehouse.infra.grpccore import apply_grpc_defaults

apply_grpc_defaults()  # before anything imports grpc

from auditsvc.server import create_server  # noqa: E402
from auditsvc.settings import Settings  # noqa: E402
from gatehouse.infra.runner import run_service  # noqa: E402


def missing_redis(settings: Settings) -> str | None:
    if settings.consumer_enabled and not settings.redis_url:
        return "GATEHOUSE_REDIS_URL is required (or set AUDITSVC_CONSUMER_ENABLED=false)"
    return None


def main() -> None:
    # The imported modules' objects live as long as the process: frozen, they are left out of the
    # full collections that the consumer's many short-lived objects trigger.
    gc.freeze()
    run_service("auditsvc", Settings.from_env, lambda settings: create_server(settings, migrate_first=True),
                address=lambda settings, running: f"port {running.port}",
                stop=lambda running: running.stop(grace=10.0), check=missing_redis)


if __name__ == "__main__":
    main()
