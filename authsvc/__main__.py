"""`python -m authsvc`: run the auth service with settings from the environment."""

from __future__ import annotations

from gatehouse.infra.grpccore import apply_grpc_defaults

apply_grpc_defaults()  # before anything imports grpc

from authsvc.server import create_server  # noqa: E402
from authsvc.settings import Settings  # noqa: E402
from gatehouse.infra.runner import run_service  # noqa: E402


def main() -> None:
    run_service("authsvc", Settings.from_env, lambda settings: create_server(settings, migrate_first=True),
                address=lambda settings, running: f"port {running.port}",
                stop=lambda running: running.stop(grace=10.0))


if __name__ == "__main__":
    main()
