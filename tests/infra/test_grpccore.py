"""gRPC core's configuration: every service sets it before grpc is imported, and the pinned grpcio
knows every experiment it names."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gatehouse.infra.grpccore import GRPC_EXPERIMENTS_DEFAULT

# Imports a service's entry module (without running it) and prints GRPC_EXPERIMENTS as it was when
# `grpc` itself was first imported.
PROBE = """
import importlib, os, sys
seen = []
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "grpc" and not seen:
            seen.append(os.environ.get("GRPC_EXPERIMENTS"))
        return None
sys.meta_path.insert(0, Probe())
importlib.import_module(sys.argv[1])
print(repr(seen[0]) if seen else "grpc was not imported")
"""

# Starts a gRPC server and calls it once; grpc core complains on stderr about experiments it lacks.
CALL = """
import asyncio, grpc
async def main():
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", {"Echo": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        print((await channel.unary_unary("/t.T/Echo")(b"ping", timeout=10)).decode())
    await server.stop(None)
asyncio.run(main())
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    env.update(extra)
    return env


def _python(code: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("service", ["authsvc", "uploadgw", "auditsvc"])
def test_each_service_configures_grpc_before_importing_it(service):
    result = _python(PROBE, f"{service}.__main__", env=_env())
    assert result.stdout.strip() == repr(GRPC_EXPERIMENTS_DEFAULT), result.stderr


def test_an_operators_value_is_kept_and_empty_means_grpcs_own_defaults():
    assert _python(PROBE, "uploadgw.__main__", env=_env(GRPC_EXPERIMENTS="")).stdout.strip() == "''"
    custom = "-event_engine_client"
    assert _python(PROBE, "authsvc.__main__", env=_env(GRPC_EXPERIMENTS=custom)).stdout.strip() == repr(custom)


def test_the_pinned_grpcio_knows_every_experiment_named():
    result = _python(CALL, env=_env(GRPC_EXPERIMENTS=GRPC_EXPERIMENTS_DEFAULT))
    assert result.returncode == 0 and result.stdout.strip() == "ping", result.stderr
    assert "Unknown experiment" not in result.stderr, result.stderr
    # The check above can fail: grpc core does report a name it does not know.
    unknown = _python(CALL, env=_env(GRPC_EXPERIMENTS="-no_such_experiment_here"))
    assert "Unknown experiment: no_such_experiment_here" in unknown.stderr, unknown.stderr
