"""The client IP a caller passes in ClientInfo, over real gRPC: every RPC that takes ClientInfo
refuses anything but an IPv4 or IPv6 address (INVALID_ARGUMENT, before doing anything), nothing of
a refused call is stored, and accepted addresses are recorded normalised."""

from __future__ import annotations

import grpc
from google.protobuf import message_factory
from sqlalchemy import select

from authsvc.models import Base
from gatehouse.auth.v1 import accounts_pb2, common_pb2, projects_pb2, tokens_pb2, twofactor_pb2
from gatehouse.infra.grpcserver import call_metadata
from tests.authsvc.twofactor_support import PASSWORD, client, events, make_user, rpc_error

BAD_IPS = ["not-an-ip", "1.2.3.4; DROP", "1" * 300, "::1%eth0", "fe80::1%1", " 203.0.113.5", "203.0.113.5\n",
           "01.2.3.4", "203.0.113.5, 198.51.100.1", "1.2.3.256"]
CLIENT_INFO = common_pb2.ClientInfo.DESCRIPTOR.full_name
STUBS = {"AccountService": "accounts", "TwoFactorService": "twofactor", "TokenService": "tokens",
         "ProjectService": "projects"}


def rpcs_taking_client_info() -> list[tuple[str, object, str]]:
    """(stub attribute, method descriptor, ClientInfo field) for every unary RPC with a ClientInfo."""
    found = []
    for module in (accounts_pb2, twofactor_pb2, tokens_pb2, projects_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                fields = [f.name for f in method.input_type.fields
                          if f.message_type is not None and f.message_type.full_name == CLIENT_INFO]
                if fields and not method.client_streaming and not method.server_streaming:
                    found.append((STUBS[service.name], method, fields[0]))
    return found


def is_ip_refusal(err: grpc.aio.AioRpcError) -> bool:
    return err.code() == grpc.StatusCode.INVALID_ARGUMENT and "ClientInfo.ip_address" in err.details()


async def test_every_rpc_taking_client_info_refuses_what_is_not_an_ip_address(auth):
    rpcs = rpcs_taking_client_info()
    names = {m.name for _, m, _ in rpcs}
    assert {"Register", "Login", "CompleteLogin", "CreateToken", "VerifyUploadToken", "VerifyIndexToken",
            "AddRole", "DeleteProject", "CompleteWebAuthnRegistration"} <= names and len(rpcs) >= 30
    session = await make_user(auth, "alice")
    accepted = []
    for stub, method, field in rpcs:
        request_type = message_factory.GetMessageClass(method.input_type)
        for bad in BAD_IPS:
            request = request_type(**{field: client(bad)})
            if "session_token" in method.input_type.fields_by_name:
                request.session_token = session  # a valid session: the IP alone is what is wrong
            try:
                await getattr(getattr(auth, stub), method.name)(request)
            except grpc.aio.AioRpcError as err:
                if not is_ip_refusal(err):
                    accepted.append((method.name, bad[:20], err.code().name, err.details()))
            else:
                accepted.append((method.name, bad[:20], "OK", ""))
    assert accepted == []


async def test_the_upload_stream_refuses_a_call_whose_client_ip_is_not_an_address(auth):
    calls = [tokens_pb2.VerifyUploadTokenCall(id=i, request=tokens_pb2.VerifyUploadTokenRequest(
        token="pypi-nope", project_name="p", client=client(bad))) for i, bad in enumerate(BAD_IPS)]
    stream = auth.tokens.VerifyUploadTokens(metadata=call_metadata(auth.settings.gateway_key))
    for call in calls:
        await stream.write(call)
    results = [await stream.read() for _ in calls]
    await stream.done_writing()
    assert sorted(r.id for r in results) == list(range(len(BAD_IPS)))
    for r in results:
        assert r.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], (BAD_IPS[r.id], r.status)
        assert "ClientInfo.ip_address" in r.status.message


async def test_nothing_of_a_refused_call_is_stored(auth):
    await make_user(auth, "bob")
    for bad in BAD_IPS:
        # A right password, a wrong one (which would count against the IP), a new account.
        for password in (PASSWORD, "wrong password"):
            err = await rpc_error(auth.accounts.Login(accounts_pb2.LoginRequest(
                username="bob", password=password, client=client(bad))))
            assert is_ip_refusal(err), err.details()
        err = await rpc_error(auth.accounts.Register(accounts_pb2.RegisterRequest(
            username="carol", email="carol@example.org", password=PASSWORD, client=client(bad))))
        assert is_ip_refusal(err), err.details()
    # No trace in any table: sessions, events (the outbox's payloads), rate-limit keys, users.
    needles = [bad.strip() for bad in BAD_IPS]
    stored = []
    async with auth.running.app.db() as s:
        for table in Base.metadata.sorted_tables:
            for row in (await s.execute(select(table))).all():
                for value in row:
                    text = value.decode("latin-1") if isinstance(value, bytes) else value
                    if isinstance(text, str):
                        stored += [(table.name, n) for n in needles if n in text]
    assert stored == []
    assert [e.ip_address for e in await events(auth, username="bob", prefix="account:login")] == ["192.0.2.10"]


async def test_addresses_are_recorded_normalised_and_an_unknown_one_stays_empty(auth):
    await make_user(auth, "dave")
    # "" or no ClientInfo at all: not known (a gateway on a Unix socket, a caller that does not say);
    # kept as today, recorded empty (per-IP limits then share the one "unknown" key).
    for given, recorded in (("2001:DB8:0::0:1", "2001:db8::1"), ("::ffff:192.0.2.7", "192.0.2.7"),
                            ("198.51.100.20", "198.51.100.20"), ("", ""), (None, "")):
        login = await auth.accounts.Login(accounts_pb2.LoginRequest(
            username="dave", password=PASSWORD, client=client(given) if given is not None else None))
        sessions = await auth.accounts.ListSessions(accounts_pb2.ListSessionsRequest(
            session_token=login.session_token))
        assert [s.ip_address for s in sessions.sessions if s.current] == [recorded], given
        assert (await events(auth, username="dave", prefix="account:login:success"))[-1].ip_address == recorded
