"""`python -m uploadgw`: run the upload gateway with settings from the environment."""

from __future__ import annotations

import gc

from gatehouse.infra.grpccore import apply_grpc_defaults

apply_grpc_defaults()  # before anything imports grpc

from gatehouse.infra.runner import run_service  # noqa: E402
from uploadgw.server import RunningGateway, start  # noqa: E402
from uploadgw.settings import Settings  # noqa: E402


async def serve(settings: Settings) -> RunningGateway:
    running = await start(settings, migrate_first=True)
    # What start-up made (modules, the app, templates, connection pools) lives as long as the
    # process: out of the collector's sight, a full collection scans only what requests leave
    # behind instead of stalling every connection for tens of milliseconds.
    gc.freeze()
    return running


def main() -> None:
    run_service("uploadgw", Settings.from_env, serve,
                address=lambda settings, running: f"{settings.listen_host}:{running.port}",
                stop=lambda running: running.stop())


if __name__ == "__main__":
    main()
