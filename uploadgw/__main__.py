"""`python -m uploadgw`: run the upload gateway with settings from the environment."""

from __future__ import annotations

from gatehouse.infra.grpccore import apply_grpc_defaults

apply_grpc_defaults()  # before anything imports grpc

from gatehouse.infra.runner import run_service  # noqa: E402
from uploadgw.server import start  # noqa: E402
from uploadgw.settings import Settings  # noqa: E402


def main() -> None:
    run_service("uploadgw", Settings.from_env, lambda settings: start(settings, migrate_first=True),
                address=lambda settings, running: f"{settings.listen_host}:{running.port}",
                stop=lambda running: running.stop())


if __name__ == "__main__":
    main()
