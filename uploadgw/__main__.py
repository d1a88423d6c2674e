"""`python -m uploadgw`: run the upload gateway with settings from the environment."""

from __future__ import annotations

from gatehouse.infra.runner import run_service
from uploadgw.server import start
from uploadgw.settings import Settings


def main() -> None:
    run_service("uploadgw", Settings.from_env, lambda settings: start(settings, migrate_first=True),
                address=lambda settings, running: f"{settings.listen_host}:{running.port}",
                stop=lambda running: running.stop())


if __name__ == "__main__":
    main()
