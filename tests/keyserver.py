"""A secret scanner's public-key endpoint on loopback (GitHub's meta/public_keys shape), with keys
made per test, and the scanner's signature over a report's raw body."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


class KeyServer:
    """A scanner's public-key endpoint (GitHub's meta/public_keys shape) on a loopback port."""

    def __init__(self) -> None:
        self.document: bytes = b'{"public_keys": []}'
        self.status = 200
        self.fetches = 0
        keys = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                keys.fetches += 1
                self.send_response(keys.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(keys.document)))
                self.end_headers()
                self.wfile.write(keys.document)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/meta/public_keys/secret_scanning"

    def publish(self, *keys: tuple[str, ec.EllipticCurvePrivateKey, bool]) -> None:
        """Serve these (key id, private key's public half, is_current)."""
        self.document = json.dumps({"public_keys": [
            {"key_identifier": key_id, "is_current": current, "key": private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}
            for key_id, private, current in keys]}).encode()

    @contextlib.contextmanager
    def running(self):
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


def new_key(keys: KeyServer, *, current: bool = True) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key_id = secrets.token_hex(32)
    private = ec.generate_private_key(ec.SECP256R1())
    keys.publish((key_id, private, current))
    return key_id, private


def sign(private: ec.EllipticCurvePrivateKey, body: bytes) -> str:
    return base64.b64encode(private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
