"""A real S3 server for the object-store tests: moto's standalone server, a subprocess on loopback.

`MotoServer.start()` runs it on a free port; `new_bucket()` makes an empty bucket and returns the
gateway's settings for it (path-style: the server answers on an IP address, with no bucket names
in DNS).
"""

from __future__ import annotations

import dataclasses
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

from aiobotocore.session import get_session

from uploadgw.settings import S3Settings

ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing-secret", "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    url: str

    @classmethod
    def start(cls, log_path: str) -> MotoServer:
        port = _free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                       stdout=log, stderr=subprocess.STDOUT)
        server = cls(process, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(server.url + "/moto-api/data.json", timeout=1):
                    return server
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    server.stop()
                    raise RuntimeError(f"moto's server did not start (see {log_path})") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def client(self):
        """An S3 client for the test's own looks into the bucket (an async context manager)."""
        return get_session().create_client("s3", region_name=REGION, endpoint_url=self.url,
                                           aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    async def new_bucket(self, **settings) -> S3Settings:
        bucket = "gh-" + secrets.token_hex(6)
        async with self.client() as s3:
            await s3.create_bucket(Bucket=bucket)
        return S3Settings(bucket=bucket, endpoint_url=self.url, region=REGION, access_key_id=ACCESS_KEY,
                          secret_access_key=SECRET_KEY, path_style=True, **settings)
