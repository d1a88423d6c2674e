"""The README's first promise: `gatehouse up` brings the whole system up on embedded defaults.

Runs the real command as a subprocess (its own Redis, SQLite files, file store and mailbox under
one data directory), then uses it the way a maintainer would: the operator CLI creates an account
and mints a token, twine uploads, pip installs, the project's audit log shows the upload; finally
Ctrl-C (SIGINT) stops every part.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from gatehouse.infra.redis_embed import free_port
from tests.uploadgw.dists import make_wheel

UP_TIMEOUT = 90


def _gatehouse(data_dir, *args, stdin=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSVC_", "AUDITSVC_", "UPLOADGW_"))}
    return subprocess.run([sys.executable, "-m", "gatehouse.cli", *args, "--data-dir", str(data_dir)],
                          input=stdin, capture_output=True, text=True, timeout=timeout, env=env)


def _ports() -> list[str]:
    ports = [free_port() for _ in range(4)]
    return ["--http-port", str(ports[0]), "--auth-port", str(ports[1]),
            "--audit-port", str(ports[2]), "--redis-port", str(ports[3])]


def test_up_check_starts_every_part_and_stops(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # No --data-dir: GATEHOUSE_DATA_DIR names it, as it does for the other commands.
    result = subprocess.run([sys.executable, "-m", "gatehouse.cli", "up", "--check", *_ports()],
                            capture_output=True, text=True, timeout=UP_TIMEOUT, cwd=elsewhere,
                            env={**os.environ, "GATEHOUSE_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr + result.stdout
    for line in ("Gatehouse is up.", "/legacy/", "/simple/", "auth service", "audit service", "redis"):
        assert line in result.stdout
    env_file = data / "gatehouse.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600", "generated secrets must be private"
    assert list(elsewhere.iterdir()) == []  # no ./var


def test_a_maintainer_uses_the_embedded_system(tmp_path):
    data = tmp_path / "var"
    ports = _ports()
    http_port = ports[1]
    up = subprocess.Popen([sys.executable, "-m", "gatehouse.cli", "up", "--data-dir", str(data), *ports],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + UP_TIMEOUT
        while True:
            line = up.stdout.readline()
            assert line or up.poll() is None, up.stderr.read()
            if "Gatehouse is up." in line:
                break
            assert time.monotonic() < deadline, "gatehouse up did not come up"

        created = _gatehouse(data, "admin", "user", "create", "maintainer", "--email", "m@example.org",
                             "--verified", "--password-stdin", "--json", stdin="a long enough password\n")
        assert created.returncode == 0, created.stderr
        minted = _gatehouse(data, "admin", "token", "mint", "maintainer", "--description", "ci", "--json")
        assert minted.returncode == 0, minted.stderr
        token = __import__("json").loads(minted.stdout)["token"]
        assert token.startswith("pypi-")

        wheel = make_wheel(tmp_path, "embedded-demo", "1.0")
        base = f"http://127.0.0.1:{http_port}"
        twine = subprocess.run([sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
                                "--repository-url", f"{base}/legacy/", "-u", "__token__", "-p", token, str(wheel)],
                               capture_output=True, text=True, timeout=120)
        assert twine.returncode == 0, twine.stdout + twine.stderr
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
                              "--index-url", f"{base}/simple/", "--target", str(tmp_path / "site"), "embedded-demo"],
                             capture_output=True, text=True, timeout=180)
        assert pip.returncode == 0, pip.stdout + pip.stderr

        # The upload reaches the project's audit log through the outbox, the relay and the stream.
        for _ in range(100):
            log = _gatehouse(data, "audit", "project", "embedded-demo", "--json")
            if log.returncode == 0 and '"file:add"' in log.stdout:
                break
            time.sleep(0.2)
        assert '"file:add"' in log.stdout, log.stdout + log.stderr
    finally:
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert code == 0
    # Ctrl-C stopped every part: the HTTP port is free again.
    import socket

    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(http_port))) != 0
