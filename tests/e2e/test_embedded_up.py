"""The README's first promise: `gatehouse up` brings the whole system up on embedded defaults.

Runs the real command as a subprocess (its own Redis, SQLite files, file store and mailbox under
one data directory), then uses it the way a maintainer would: the operator CLI creates an account
and mints a token, twine uploads, pip installs, the project's audit log shows the upload; finally
Ctrl-C (SIGINT) stops every part.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from tests.e2e.embedded import UP_TIMEOUT, gatehouse, port_args, ports, running_up
from tests.uploadgw.dists import make_wheel


def test_up_check_starts_every_part_and_stops(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # No --data-dir: GATEHOUSE_DATA_DIR names it, as it does for the other commands.
    result = subprocess.run([sys.executable, "-m", "gatehouse.cli", "up", "--check", *port_args(ports())],
                            capture_output=True, text=True, timeout=UP_TIMEOUT, cwd=elsewhere,
                            env={**os.environ, "GATEHOUSE_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr + result.stdout
    for line in ("Gatehouse is up.", "/legacy/", "/simple/", "auth service", "audit service", "redis"):
        assert line in result.stdout
    env_file = data / "gatehouse.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600", "generated secrets must be private"
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    # Redis has a generated password, in the URL every part uses and nowhere in the output.
    assert len(env["REDIS_PASSWORD"]) >= 43 and f":{env['REDIS_PASSWORD']}@" in env["GATEHOUSE_REDIS_URL"]
    assert env["REDIS_PASSWORD"] not in result.stdout + result.stderr
    # Each producer seals with its own key; the audit consumer accepts exactly those.
    assert env["AUDITSVC_EVENT_KEYS"] == (f"authsvc:{env['AUTHSVC_EVENT_KEYS']},"
                                         f"uploadgw:{env['UPLOADGW_EVENT_KEYS']}")
    assert env["AUTHSVC_EVENT_KEYS"] != env["UPLOADGW_EVENT_KEYS"]
    assert list(elsewhere.iterdir()) == []  # no ./var


def test_a_maintainer_uses_the_embedded_system(tmp_path):
    data = tmp_path / "var"
    chosen = ports()
    http_port = chosen["--http-port"]
    with running_up(data, *port_args(chosen)):
        created = gatehouse("admin", "user", "create", "maintainer", "--email", "m@example.org", "--verified",
                            "--password-stdin", "--json", "--data-dir", str(data), stdin="a long enough password\n")
        assert created.returncode == 0, created.stderr
        minted = gatehouse("admin", "token", "mint", "maintainer", "--description", "ci", "--json",
                           "--data-dir", str(data))
        assert minted.returncode == 0, minted.stderr
        token = json.loads(minted.stdout)["token"]
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
            log = gatehouse("audit", "project", "embedded-demo", "--json", "--data-dir", str(data))
            if log.returncode == 0 and '"file:add"' in log.stdout:
                break
            time.sleep(0.2)
        assert '"file:add"' in log.stdout, log.stdout + log.stderr

        # Without the generated password nothing reaches the stream.
        with socket.create_connection(("127.0.0.1", chosen["--redis-port"]), timeout=5) as raw:
            raw.sendall(b"XADD gatehouse:events * event_id x tag account:login:success event x\r\n")
            assert raw.recv(256).startswith(b"-NOAUTH")
    # Ctrl-C stopped every part (exit code 0, checked by running_up): the HTTP port is free again.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", http_port)) != 0
