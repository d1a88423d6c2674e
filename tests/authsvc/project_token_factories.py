"""Test data for the projects, tokens and admin tests, made through the real gRPC APIs."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from sqlalchemy import select

from authsvc.db import outbox
from gatehouse.auth.v1 import accounts_pb2, admin_pb2, common_pb2, projects_pb2, tokens_pb2
from gatehouse.events.v1 import event_pb2

from tests import eventkeys

PASSWORD = "correct horse battery staple"
OWNER = common_pb2.ROLE_OWNER
MAINTAINER = common_pb2.ROLE_MAINTAINER


async def make_user(auth, username: str, *, verified: bool = True) -> tuple[common_pb2.User, str]:
    """A user created by the operator, logged in: (user, session token)."""
    reply = await auth.admin.CreateUser(admin_pb2.AdminCreateUserRequest(
        username=username, email=f"{username}@example.org", password=PASSWORD, email_verified=verified))
    return reply.user, await login(auth, username)


async def login(auth, username: str) -> str:
    reply = await auth.accounts.Login(accounts_pb2.LoginRequest(username=username, password=PASSWORD))
    assert reply.session_token
    return reply.session_token


async def make_project(auth, name: str, owner: str) -> common_pb2.Project:
    reply = await auth.admin.AddRole(admin_pb2.AdminAddRoleRequest(
        project_name=name, username=owner, role=OWNER, create_project=True))
    return reply.project


async def add_role(auth, session: str, project: str, username: str, role=MAINTAINER):
    return await auth.projects.AddRole(projects_pb2.AddRoleRequest(
        session_token=session, project_name=project, username=username, role=role))


async def create_token(auth, session: str, description: str = "ci", *, projects=(),
                       expires_at: dt.datetime | None = None) -> tokens_pb2.CreateTokenResponse:
    request = tokens_pb2.CreateTokenRequest(
        session_token=session, description=description,
        scope=common_pb2.TokenScope(all_projects=not projects, project_names=list(projects)),
        client=common_pb2.ClientInfo(ip_address="192.0.2.7", user_agent="pytest"))
    if expires_at is not None:
        request.expires_at.FromDatetime(expires_at.astimezone(dt.timezone.utc).replace(tzinfo=None))
    return await auth.tokens.CreateToken(request)


async def verify(auth, token: str, project: str) -> tokens_pb2.VerifyUploadTokenResponse:
    return await auth.tokens.VerifyUploadToken(tokens_pb2.VerifyUploadTokenRequest(
        token=token, project_name=project, client=common_pb2.ClientInfo(ip_address="192.0.2.8")))


async def list_tokens(auth, session: str):
    return list((await auth.tokens.ListTokens(tokens_pb2.ListTokensRequest(session_token=session))).tokens)


async def refused(call, code: grpc.StatusCode, *fragments: str) -> str:
    """Await `call`, expect a gRPC error with `code` whose message contains every fragment."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, (err.value.code(), err.value.details())
    for fragment in fragments:
        assert fragment in err.value.details(), (fragment, err.value.details())
    return err.value.details()


async def events(auth, *tags: str) -> list[event_pb2.Event]:
    """The events the service wrote to its outbox (optionally only these tags), oldest first."""
    async with auth.running.app.engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.tag, outbox.c.payload).order_by(outbox.c.id))).all()
    out = []
    for tag, payload in rows:
        if not tags or tag in tags:
            out.append(event_pb2.Event.FromString(eventkeys.VERIFIER.open(payload).event))
    return out


async def outbox_bytes(auth) -> bytes:
    async with auth.running.app.engine.connect() as conn:
        return b"".join(r[0] for r in (await conn.execute(select(outbox.c.payload))).all())
