"""Helpers for the accounts tests: one place to register, log in, read mail and read the outbox."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest
from sqlalchemy import select

from authsvc.db import outbox
from gatehouse.auth.v1 import accounts_pb2, common_pb2
from gatehouse.events.v1 import event_pb2

from tests import eventkeys

PASSWORD = "correct horse battery staple"
TOKEN_RE = re.compile(r"\?token=([A-Za-z0-9_%-]+)")


def client(ip: str = "192.0.2.1", ua: str = "pytest/1") -> common_pb2.ClientInfo:
    return common_pb2.ClientInfo(ip_address=ip, user_agent=ua)


async def register(auth, username: str = "alice", email: str | None = None, password: str = PASSWORD, **kw):
    reply = await auth.accounts.Register(accounts_pb2.RegisterRequest(
        username=username, email=email or f"{username}@example.org", password=password, **kw))
    return reply.user


async def login(auth, username: str = "alice", password: str = PASSWORD, ip: str = "192.0.2.1", ua: str = "pytest/1"):
    return await auth.accounts.Login(accounts_pb2.LoginRequest(
        username=username, password=password, client=client(ip, ua)))


async def rpc_error(awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await awaitable
    return err.value


async def events(auth, tag: str | None = None) -> list[event_pb2.Event]:
    """The events in the auth service's outbox, oldest first (optionally of one tag)."""
    async with auth.running.app.db() as s:
        rows = (await s.execute(select(outbox.c.tag, outbox.c.payload).order_by(outbox.c.id))).all()
    found = []
    for row_tag, payload in rows:
        event = event_pb2.Event.FromString(eventkeys.VERIFIER.open(payload).event)  # sealed by authsvc
        assert event.tag == row_tag
        if tag is None or event.tag == tag:
            found.append(event)
    return found


async def outbox_payloads(auth) -> list[bytes]:
    async with auth.running.app.db() as s:
        return [bytes(p) for p in (await s.scalars(select(outbox.c.payload)))]


async def wait_for_mail(mailbox, address: str, count: int = 1, timeout: float = 5.0):
    """The messages to `address` once there are at least `count` (reset mail is sent in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = mailbox.to(address)
        if len(found) >= count:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"expected {count} message(s) to {address}, got {len(found)}")
        await asyncio.sleep(0.02)


def link_token(message, path: str) -> str:
    body = message.get_content()
    assert path in body, body
    from urllib.parse import unquote

    return unquote(TOKEN_RE.search(body).group(1))
