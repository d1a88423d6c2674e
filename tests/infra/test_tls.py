"""TLS between services (gatehouse.infra.tls) with a throwaway CA (trustme): a real server from
`start_server` on a loopback port and real channels from `open_channel`. Calls work over TLS with
the service credential still checked; mutual TLS refuses a client without a certificate, with one
from another CA, and a plaintext client; a rotated certificate (new files) is picked up by the
running server and by the open channel while a call in flight goes on."""

from __future__ import annotations

import dataclasses
import logging

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gatehouse.diag.v1 import echo_pb2, echo_pb2_grpc
from gatehouse.infra.grpcserver import CallerRole, Credentials, open_channel, start_server
from gatehouse.infra.settings import Env, SettingsError
from gatehouse.infra.tls import TlsError, TlsSettings, server_credentials
from tests.tlsfiles import Identity

KEY = "test-service-key"


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def served(ca, tmp_path):
    """A server with mutual TLS (certificate for 127.0.0.1 and localhost): (port, health, files)."""
    files = Identity(tmp_path / "server").write(ca, "127.0.0.1", "localhost")
    server, port, health = await start_server(
        listen="127.0.0.1:0", register=lambda server: [], credentials=Credentials({KEY: CallerRole.SERVICE}),
        server_credentials=server_credentials(files.tls("AUTHSVC", client_auth=True)))
    yield port, health, files
    await server.stop(0)


async def echo(channel: grpc.aio.Channel, payload: bytes = b"ping", *, timeout: float = 5) -> bytes:
    reply = await echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(payload=payload), timeout=timeout)
    return reply.payload


async def refused(channel: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await echo(channel, timeout=3)
    await channel.close()
    return caught.value


async def test_a_call_over_mutual_tls_works_and_still_needs_the_service_credential(served, ca, tmp_path):
    port, _, _ = served
    client = Identity(tmp_path / "client").write(ca, "uploadgw")
    async with open_channel(f"127.0.0.1:{port}", KEY, tls=client.tls("UPLOADGW")) as channel:
        assert await echo(channel) == b"ping"
    # TLS is the first check, the credential in the metadata still the second.
    wrong = await refused(open_channel(f"127.0.0.1:{port}", "not-the-key", tls=client.tls("UPLOADGW")))
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("client_cert", ["none", "other CA"])
async def test_mutual_tls_refuses_a_client_without_a_certificate_the_ca_signed(served, ca, tmp_path, client_cert):
    port, _, server_files = served
    if client_cert == "none":  # trusts the server, presents nothing
        tls = TlsSettings(prefix="UPLOADGW", ca_file=str(server_files.dir / "ca.crt"))
    else:  # a certificate from another CA, trusting the right one for the server
        other = Identity(tmp_path / "other").write(trustme.CA(), "uploadgw")
        ca.cert_pem.write_to_path(str(other.dir / "ca.crt"))
        tls = other.tls("UPLOADGW")
    error = await refused(open_channel(f"127.0.0.1:{port}", KEY, tls=tls))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_tls_server_refuses_a_plaintext_client(served):
    port, _, _ = served
    error = await refused(open_channel(f"127.0.0.1:{port}", KEY))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_refuses_a_server_whose_certificate_another_ca_signed(served, tmp_path):
    port, _, _ = served
    stranger = Identity(tmp_path / "stranger").write(trustme.CA(), "uploadgw")
    error = await refused(open_channel(f"127.0.0.1:{port}", KEY, tls=stranger.tls("UPLOADGW")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_without_mutual_tls_a_client_needs_only_the_ca(ca, tmp_path):
    files = Identity(tmp_path / "server").write(ca, "127.0.0.1")
    server, port, _ = await start_server(
        listen="127.0.0.1:0", register=lambda server: [], credentials=Credentials({KEY: CallerRole.SERVICE}),
        server_credentials=server_credentials(files.tls("AUTHSVC")))
    try:
        tls = TlsSettings(prefix="UPLOADGW", ca_file=str(files.dir / "ca.crt"))
        async with open_channel(f"127.0.0.1:{port}", KEY, tls=tls) as channel:
            assert await echo(channel) == b"ping"
    finally:
        await server.stop(0)


async def test_a_rotated_certificate_is_picked_up_live_by_the_server(served, ca, tmp_path):
    """New files from a new CA on both sides (the hardest rotation: nothing old is trusted any
    more): the running server presents the new certificate and accepts only new clients at the next
    handshake, the open channel moves to a new connection, and a call in flight on the connection
    made before goes on."""
    port, health, server_files = served
    client = Identity(tmp_path / "client").write(ca, "uploadgw")
    channel = open_channel(f"127.0.0.1:{port}", KEY, tls=client.tls("UPLOADGW", check_seconds=0.0))
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service="rotation"))
    await health.set("rotation", health_pb2.HealthCheckResponse.SERVING)
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING

    new_ca = trustme.CA()
    server_files.write(new_ca, "127.0.0.1", "localhost")
    client.write(new_ca, "uploadgw")
    assert await echo(channel, b"after") == b"after"

    stale = Identity(tmp_path / "stale").write(ca, "uploadgw")
    error = await refused(open_channel(f"127.0.0.1:{port}", KEY, tls=stale.tls("UPLOADGW")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    fresh = Identity(tmp_path / "fresh").write(new_ca, "uploadgw")
    async with open_channel(f"127.0.0.1:{port}", KEY, tls=fresh.tls("UPLOADGW")) as other:
        assert await echo(other) == b"ping"

    await health.set("rotation", health_pb2.HealthCheckResponse.NOT_SERVING)  # the call in flight goes on
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()
    await channel.close()


async def test_a_rotated_certificate_is_picked_up_live_by_the_client(ca, tmp_path):
    """New client files from a new CA, and the server restarted on them: the open channel's next
    connection presents the new certificate and trusts the new CA, so its calls go on."""
    server_files = Identity(tmp_path / "server").write(ca, "127.0.0.1")

    async def serve(port: int = 0) -> tuple[grpc.aio.Server, int]:
        server, port, _ = await start_server(
            listen=f"127.0.0.1:{port}", register=lambda server: [], credentials=Credentials({KEY: CallerRole.SERVICE}),
            server_credentials=server_credentials(server_files.tls("AUTHSVC", client_auth=True)))
        return server, port

    server, port = await serve()
    client = Identity(tmp_path / "client").write(ca, "uploadgw")
    channel = open_channel(f"127.0.0.1:{port}", KEY, tls=client.tls("UPLOADGW", check_seconds=0.0))
    kept = open_channel(f"127.0.0.1:{port}", KEY, tls=Identity(tmp_path / "kept").write(ca, "x").tls("UPLOADGW"))
    try:
        assert await echo(channel) == b"ping" and await echo(kept) == b"ping"
        await server.stop(0)
        new_ca = trustme.CA()
        server_files.write(new_ca, "127.0.0.1")
        client.write(new_ca, "uploadgw")
        server, _ = await serve(port)
        assert await echo(channel, b"after") == b"after"
        error = await refused(kept)  # the files of this one did not change: refused both ways
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close()
        await server.stop(0)


async def test_files_that_do_not_load_leave_the_previous_certificate_in_use(served, ca, tmp_path, caplog):
    """A renewal caught half-written (a new key next to the old certificate): the server and the
    channel keep what they had, say so once, and take the files once they match."""
    port, _, server_files = served
    client = Identity(tmp_path / "client").write(ca, "uploadgw")
    channel = open_channel(f"127.0.0.1:{port}", KEY, tls=client.tls("UPLOADGW", check_seconds=0.0))
    new_ca = trustme.CA()
    half = new_ca.issue_cert("127.0.0.1")
    half.private_key_pem.write_to_path(str(server_files.dir / "tls.key"))
    client_half = new_ca.issue_cert("uploadgw")
    client_half.private_key_pem.write_to_path(str(client.dir / "tls.key"))
    with caplog.at_level(logging.WARNING, logger="gatehouse.infra.tls"):
        assert await echo(channel) == b"ping"
        async with open_channel(f"127.0.0.1:{port}", KEY, tls=Identity(tmp_path / "c2").write(ca, "x").tls(
                "UPLOADGW")) as second:
            assert await echo(second) == b"ping"   # a new handshake still gets the old certificate
    assert any("do not load" in r.message for r in caplog.records if "calling" in r.message)
    assert any("do not load" in r.message for r in caplog.records if "serving" in r.message)

    half.cert_chain_pems[0].write_to_path(str(server_files.dir / "tls.crt"))
    new_ca.cert_pem.write_to_path(str(server_files.dir / "ca.crt"))
    client_half.cert_chain_pems[0].write_to_path(str(client.dir / "tls.crt"))
    new_ca.cert_pem.write_to_path(str(client.dir / "ca.crt"))
    assert await echo(channel, b"whole") == b"whole"
    await channel.close()


def test_a_server_with_missing_or_mismatched_files_does_not_start(ca, tmp_path):
    files = Identity(tmp_path / "server").write(ca, "127.0.0.1")
    with pytest.raises(TlsError, match="AUTHSVC_TLS_CERT: cannot read"):
        server_credentials(dataclasses.replace(files.tls("AUTHSVC"), cert_file=str(tmp_path / "missing.crt")))
    ca.issue_cert("another").private_key_pem.write_to_path(str(files.dir / "tls.key"))
    with pytest.raises(TlsError, match="AUTHSVC_TLS_KEY: .* is not the key of the certificate"):
        server_credentials(files.tls("AUTHSVC"))
    with pytest.raises(TlsError, match="AUTHSVC_TLS_CERT and AUTHSVC_TLS_KEY are required"):
        server_credentials(TlsSettings(prefix="AUTHSVC", ca_file=str(files.dir / "ca.crt")))
    with pytest.raises(TlsError, match="UPLOADGW_TLS_CA is required"):
        open_channel("127.0.0.1:1", KEY, tls=TlsSettings(prefix="UPLOADGW", cert_file=str(files.dir / "tls.crt"),
                                                         key_file=str(files.dir / "tls.key")))


@pytest.mark.parametrize(("environ", "message"), [
    ({"X_TLS_CERT": "/c"}, "X_TLS_CERT and X_TLS_KEY go together"),
    ({"X_TLS_CERT": "/c", "X_TLS_KEY": "/k", "X_TLS_CLIENT_AUTH": "true"}, "X_TLS_CLIENT_AUTH needs X_TLS_CA"),
    ({"X_TLS_CLIENT_AUTH": "true"}, "need X_TLS_CERT"),
])
def test_tls_settings_name_the_variable_at_fault(environ, message):
    with pytest.raises(SettingsError, match=message):
        TlsSettings.from_env(Env(environ), "X")


def test_no_tls_variable_means_plaintext_and_the_files_are_paths():
    assert TlsSettings.from_env(Env({}), "X") is None
    tls = TlsSettings.from_env(Env({"X_TLS_CA": "/ca", "X_TLS_SERVER_NAME": "authsvc"}), "X")
    assert tls == TlsSettings(prefix="X", ca_file="/ca", server_name="authsvc")  # no file is read yet
