"""gRPC core's process-wide configuration, which must be in place before `grpc` is first imported.

gRPC reads `GRPC_EXPERIMENTS` once, as the module is imported. The services turn off the
EventEngine I/O experiments (on by default in grpcio 1.85): gRPC core then reads and writes its
sockets in the thread that polls the completion queue (grpc.aio's poller thread), instead of handing
every read and write to EventEngine's own thread pool, so a request crosses one thread less on its
way in and on its way out. Each crossing wakes a sleeping thread, which is costly on a virtual
machine whose CPUs sit idle between requests (the figures are in the commit that made this choice).

An operator who sets `GRPC_EXPERIMENTS` keeps their value; an empty value keeps gRPC's own defaults.
"""

from __future__ import annotations

import os

# gRPC core's poll-based I/O for clients, servers and every other endpoint (the EventEngine callback
# completion queue depends on the first two, and is listed so that nothing half-enabled remains).
GRPC_EXPERIMENTS_DEFAULT = ",".join((
    "-event_engine_client",
    "-event_engine_listener",
    "-event_engine_for_all_other_endpoints",
    "-event_engine_callback_cq",
))


def apply_grpc_defaults() -> None:
    """Set `GRPC_EXPERIMENTS` unless the environment has it (call it before `grpc` is imported)."""
    os.environ.setdefault("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS_DEFAULT)
