"""`gatehouse relay --service S`: move a service's committed outbox rows to the Redis stream.

The services run a relay in-process by default; on Kubernetes the relay runs as its own
Deployment (set AUTHSVC_RELAY_ENABLED=false etc.). Several relays may run at once.
"""

from __future__ import annotations

import asyncio
import importlib
import signal

from gatehouse.cli.output import fail
from gatehouse.cli.settings import DATA_DIR_HELP, load_environ
from gatehouse.infra.db import make_engine, make_session_factory
from gatehouse.infra.logging import configure_logging
from gatehouse.infra.settings import Env

PRODUCERS = {"authsvc": "authsvc.db", "uploadgw": "uploadgw.models"}


def add_parser(sub) -> None:
    p = sub.add_parser("relay", help="publish a service's outbox to the Redis stream")
    p.add_argument("--service", choices=sorted(PRODUCERS), required=True)
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.set_defaults(handler=run)


def run(args) -> int:
    from gatehouse.infra.relay import OutboxRelay

    environ, env_file = load_environ(args.data_dir)
    env = Env(environ)
    url = env.str(f"{args.service.upper()}_DATABASE_URL", "")
    redis_url = env.str("GATEHOUSE_REDIS_URL", "")
    if not url or not redis_url:
        return fail(args, f"{args.service.upper()}_DATABASE_URL and GATEHOUSE_REDIS_URL are required "
                          f"(looked in the environment and {env_file})", 2)
    configure_logging(env.str("GATEHOUSE_LOG_LEVEL", "INFO"))
    outbox = importlib.import_module(PRODUCERS[args.service]).outbox

    async def main():
        engine = make_engine(url)
        relay = OutboxRelay(make_session_factory(engine), outbox, redis_url,
                            env.str("GATEHOUSE_EVENT_STREAM", "gatehouse:events"))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await relay.run_forever(stop)
        finally:
            await engine.dispose()

    asyncio.run(main())
    return 0
