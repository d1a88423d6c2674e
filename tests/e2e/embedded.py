"""The real `gatehouse up` in tests: free ports, started as a subprocess, used until the block ends,
then stopped with Ctrl-C (SIGINT) as a maintainer stops it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from gatehouse.infra.redis_embed import free_port

UP_TIMEOUT = 90


def ports() -> dict[str, int]:
    """Free ports for every part (never the defaults, which a developer's own system may hold)."""
    return {name: free_port() for name in ("--http-port", "--auth-port", "--audit-port", "--redis-port")}


def port_args(chosen: dict[str, int]) -> list[str]:
    return [text for option, port in chosen.items() for text in (option, str(port))]


def gatehouse(*args: str, stdin: str | None = None, timeout: float = 60, cwd=None,
              **env: str) -> subprocess.CompletedProcess:
    """The real `gatehouse` command in an operator's shell: no service variables but `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSVC_", "AUDITSVC_", "UPLOADGW_",
                                                                        "GATEHOUSE_"))}
    return subprocess.run([sys.executable, "-m", "gatehouse.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env={**clean, **env}, cwd=cwd)


@contextlib.contextmanager
def running_up(data, *args: str):
    """`gatehouse up --data-dir DATA ARGS`, up (its lines read) for the block; then Ctrl-C, which
    must stop it with exit code 0."""
    up = subprocess.Popen([sys.executable, "-m", "gatehouse.cli", "up", "--data-dir", str(data), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + UP_TIMEOUT
        while True:
            line = up.stdout.readline()
            assert line or up.poll() is None, up.stderr.read()
            if "Gatehouse is up." in line:
                break
            assert time.monotonic() < deadline, "gatehouse up did not come up"
        yield up
    finally:
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert code == 0, up.stderr.read()
