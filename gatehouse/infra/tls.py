"""TLS on the gRPC calls between services: settings, server and channel credentials, and reloading.

Each service reads one set of files, `<PREFIX>_TLS_CERT`, `<PREFIX>_TLS_KEY` and `<PREFIX>_TLS_CA`
(PEM: its certificate chain, its private key, the CA that signs its peers), and uses them both ways:
a server presents the certificate and, with `<PREFIX>_TLS_CLIENT_AUTH`, refuses any client without a
certificate signed by the CA (mutual TLS); a client verifies the server against the CA and presents
its own certificate when it has one. Nothing set: plaintext (the embedded `gatehouse up` on loopback).

The files are watched, so a certificate that cert-manager renews needs no restart: the server asks
for its certificates at every TLS handshake (`grpc.dynamic_ssl_server_credentials`), and a client
channel (`ReloadingChannel`) opens a fresh inner channel once the files change while the old one
drains its calls in flight. A change is seen by the files' mtime, size and inode (a Kubernetes
secret volume swaps a symlink); files that do not load as a matching certificate and key (half
written, say) leave the old ones in use. The service credential in call metadata stays the second
check on every call (`gatehouse.infra.grpcserver`). The kubelet's gRPC probes speak no TLS: a
server under TLS may also serve the health service alone in plaintext (`serve_plaintext_health`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health, health_pb2_grpc

from gatehouse.infra.settings import Env, SettingsError

log = logging.getLogger(__name__)

# The variables `TlsSettings.from_env(env, PREFIX)` reads, each as `<PREFIX>_<name>`.
TLS_VARIABLES = ("TLS_CERT", "TLS_KEY", "TLS_CA", "TLS_CLIENT_AUTH", "TLS_SERVER_NAME")
# How long a replaced client channel may finish its calls in flight before it is closed.
DRAIN_SECONDS = 300.0
_FileStamp = tuple[int, int, int] | None  # (mtime_ns, size, inode) of one file; None: missing


class TlsError(SettingsError):
    """The TLS files are missing or unusable; the message names the file, never its content."""


@dataclasses.dataclass(frozen=True)
class TlsSettings:
    """One service's TLS files (paths), read from `<prefix>_TLS_*`; `from_env` gives None when
    none is set (plaintext)."""

    prefix: str
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    # Server: refuse a client that presents no certificate signed by `ca_file` (mutual TLS).
    client_auth: bool = False
    # Client: the name the server's certificate must carry when it is not the target's host (a
    # pod calling itself on 127.0.0.1, whose certificate names its Service).
    server_name: str = ""
    # Seconds between two looks at the files' stamps from a client channel.
    check_seconds: float = 1.0

    @classmethod
    def from_env(cls, env: Env, prefix: str) -> TlsSettings | None:
        tls = cls(
            prefix=prefix,
            cert_file=env.str(f"{prefix}_TLS_CERT", ""),
            key_file=env.str(f"{prefix}_TLS_KEY", ""),
            ca_file=env.str(f"{prefix}_TLS_CA", ""),
            client_auth=env.bool(f"{prefix}_TLS_CLIENT_AUTH", False),
            server_name=env.str(f"{prefix}_TLS_SERVER_NAME", ""),
        )
        if not (tls.cert_file or tls.key_file or tls.ca_file):
            if tls.client_auth or tls.server_name:
                raise SettingsError(f"{prefix}_TLS_CLIENT_AUTH and {prefix}_TLS_SERVER_NAME need "
                                    f"{prefix}_TLS_CERT, {prefix}_TLS_KEY and {prefix}_TLS_CA")
            return None
        if bool(tls.cert_file) != bool(tls.key_file):
            raise SettingsError(f"{prefix}_TLS_CERT and {prefix}_TLS_KEY go together: set both or neither")
        if tls.client_auth and not tls.ca_file:
            raise SettingsError(f"{prefix}_TLS_CLIENT_AUTH needs {prefix}_TLS_CA (the CA that signs clients)")
        return tls

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f for f in (self.cert_file, self.key_file, self.ca_file) if f)

    def stamps(self) -> tuple[_FileStamp, ...]:
        """What tells a changed file from the one loaded: mtime, size, inode (following symlinks)."""
        return tuple(_stamp(path) for path in self.files)


def _stamp(path: str) -> _FileStamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


@dataclasses.dataclass(frozen=True)
class _Pems:
    chain: bytes | None
    key: bytes | None
    ca: bytes | None


def _read(path: str, variable: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise TlsError(f"{variable}: cannot read {path}: {exc.strerror}") from None


def load_pems(tls: TlsSettings) -> _Pems:
    """Read and check the files: a certificate chain with the private key of its first
    certificate, and a CA bundle. Raises TlsError naming the file at fault."""
    chain = key = ca = None
    if tls.cert_file:
        chain = _read(tls.cert_file, f"{tls.prefix}_TLS_CERT")
        key = _read(tls.key_file, f"{tls.prefix}_TLS_KEY")
        try:
            leaf = x509.load_pem_x509_certificates(chain)[0]
        except ValueError:
            raise TlsError(f"{tls.prefix}_TLS_CERT: {tls.cert_file} holds no PEM certificate") from None
        try:
            private = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise TlsError(f"{tls.prefix}_TLS_KEY: {tls.key_file} holds no unencrypted PEM private key") from None
        if _public_der(private.public_key()) != _public_der(leaf.public_key()):
            raise TlsError(f"{tls.prefix}_TLS_KEY: {tls.key_file} is not the key of the certificate in "
                           f"{tls.cert_file}")
    if tls.ca_file:
        ca = _read(tls.ca_file, f"{tls.prefix}_TLS_CA")
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError:
            raise TlsError(f"{tls.prefix}_TLS_CA: {tls.ca_file} holds no PEM certificate") from None
    return _Pems(chain=chain, key=key, ca=ca)


def _public_der(public_key: Any) -> bytes:
    return bytes(public_key.public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo))


# -- server side -----------------------------------------------------------------------------------


class _ServerCertificates:
    """The certificate fetcher of `grpc.dynamic_ssl_server_credentials`: gRPC calls it before
    every TLS handshake; it answers None (keep the current certificates) unless the files changed
    and load."""

    def __init__(self, tls: TlsSettings) -> None:
        self._tls = tls
        self._loaded = tls.stamps()
        self.initial = self._configuration(load_pems(tls))
        self._refused: tuple[_FileStamp, ...] | None = None

    def _configuration(self, pems: _Pems) -> grpc.ServerCertificateConfiguration:
        assert pems.key is not None and pems.chain is not None
        return grpc.ssl_server_certificate_configuration([(pems.key, pems.chain)], root_certificates=pems.ca)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        stamps = self._tls.stamps()
        if stamps == self._loaded:
            return None
        try:
            pems = load_pems(self._tls)
        except TlsError as exc:
            if stamps != self._refused:  # one warning per state of the files; retried next handshake
                self._refused = stamps
                log.warning("TLS files changed but do not load; serving the previous certificate",
                            extra={"error": str(exc)})
            return None
        self._loaded = stamps
        log.info("TLS certificate reloaded", extra={"files": list(self._tls.files)})
        return self._configuration(pems)


def server_credentials(tls: TlsSettings | None) -> grpc.ServerCredentials | None:
    """Credentials for `start_server` (None: plaintext) that follow the files; mutual TLS when
    `client_auth` is on. Fails at start-up when the files do not load."""
    if tls is None:
        return None
    if not tls.cert_file:
        raise TlsError(f"{tls.prefix}_TLS_CERT and {tls.prefix}_TLS_KEY are required to serve TLS")
    fetcher = _ServerCertificates(tls)
    # types-grpcio types the fetcher's result without None; gRPC documents None as "no change".
    return grpc.dynamic_ssl_server_credentials(fetcher.initial, fetcher,  # type: ignore[arg-type]
                                               require_client_authentication=tls.client_auth)


async def serve_plaintext_health(listen: str, servicer: health.aio.HealthServicer) -> grpc.aio.Server:
    """A plaintext port that serves the standard health service alone (the server's own
    servicer, so it drains with it): the kubelet's gRPC probes speak no TLS. Stop it with the server."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if server.add_insecure_port(listen) == 0:
        raise OSError(f"could not listen on {listen}")
    await server.start()
    return server


# -- client side -----------------------------------------------------------------------------------

OpenChannel = Callable[[grpc.ChannelCredentials, Sequence[tuple[str, Any]]], grpc.aio.Channel]


def _channel_credentials(tls: TlsSettings) -> grpc.ChannelCredentials:
    pems = load_pems(tls)
    return grpc.ssl_channel_credentials(root_certificates=pems.ca, private_key=pems.key,
                                        certificate_chain=pems.chain)


class ReloadingChannel(grpc.aio.Channel):
    """A TLS channel that follows its files. `open(credentials, options)` builds an inner channel;
    when the files change (looked at once per `check_seconds`, on a call), the next calls go to a
    new inner channel and the old one is closed after its calls in flight finish (up to
    DRAIN_SECONDS). Stubs keep working: each method returns a multi-callable that resolves the
    current inner channel on every call."""

    def __init__(self, tls: TlsSettings, open: OpenChannel) -> None:
        if not tls.ca_file:
            raise TlsError(f"{tls.prefix}_TLS_CA is required to call a TLS server (it verifies the server)")
        self._tls = tls
        self._open = open
        self._options: list[tuple[str, Any]] = (
            [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else [])
        self._stamps = tls.stamps()
        self._current = open(_channel_credentials(tls), self._options)
        self._next_check = time.monotonic() + tls.check_seconds
        self._draining: dict[asyncio.Task[None], grpc.aio.Channel] = {}
        self._refused: tuple[_FileStamp, ...] | None = None

    def current(self) -> grpc.aio.Channel:
        """The inner channel for the next call (a new one if the files changed and load)."""
        now = time.monotonic()
        if now < self._next_check:
            return self._current
        self._next_check = now + self._tls.check_seconds
        stamps = self._tls.stamps()
        if stamps == self._stamps:
            return self._current
        try:
            credentials = _channel_credentials(self._tls)
        except TlsError as exc:
            if stamps != self._refused:
                self._refused = stamps
                log.warning("TLS files changed but do not load; calling with the previous certificate",
                            extra={"error": str(exc)})
            return self._current
        old, self._current, self._stamps = self._current, self._open(credentials, self._options), stamps
        task = asyncio.get_running_loop().create_task(old.close(grace=DRAIN_SECONDS))
        self._draining[task] = old
        task.add_done_callback(self._draining.pop)
        log.info("TLS client certificate reloaded", extra={"files": list(self._tls.files)})
        return self._current

    def unary_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                    _registered_method: bool | None = False) -> Any:
        return _Following(self, "unary_unary", method, request_serializer, response_deserializer, _registered_method)

    def unary_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                     _registered_method: bool | None = False) -> Any:
        return _Following(self, "unary_stream", method, request_serializer, response_deserializer, _registered_method)

    def stream_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                     _registered_method: bool | None = False) -> Any:
        return _Following(self, "stream_unary", method, request_serializer, response_deserializer, _registered_method)

    def stream_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                      _registered_method: bool | None = False) -> Any:
        return _Following(self, "stream_stream", method, request_serializer, response_deserializer, _registered_method)

    async def close(self, grace: float | None = None) -> None:
        draining = list(self._draining.items())
        for task, _ in draining:
            task.cancel()
        await asyncio.gather(*(task for task, _ in draining), return_exceptions=True)
        await asyncio.gather(self._current.close(grace), *(old.close(grace) for _, old in draining))

    async def __aenter__(self) -> ReloadingChannel:
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close(None)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._current.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()


class _Following:
    """A multi-callable of a `ReloadingChannel`: made once by a stub, it builds the inner
    channel's own multi-callable again only when the inner channel has been replaced."""

    def __init__(self, channel: ReloadingChannel, kind: str, method: str, request_serializer: Any,
                 response_deserializer: Any, registered: bool | None) -> None:
        self._channel = channel
        self._kind = kind
        self._args = (method, request_serializer, response_deserializer, registered)
        self._inner: grpc.aio.Channel | None = None
        self._callable: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inner = self._channel.current()
        if inner is not self._inner:
            self._inner, self._callable = inner, getattr(inner, self._kind)(*self._args)
        return self._callable(*args, **kwargs)
