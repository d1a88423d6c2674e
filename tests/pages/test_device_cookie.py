"""The device cookie through the gateway's pages ("auth service under attack", item 4): a browser
that has logged in before keeps logging in while someone else's guessing has used up the
account's failed-login budget; a browser without it waits like the attacker."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc
from gatehouse.infra.grpcserver import open_channel
from tests.authsvc.accounts_support import client as client_info
from tests.pages.support import Client

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def guess(accounts, username: str, ip: str) -> grpc.StatusCode:
    try:
        await accounts.Login(accounts_pb2.LoginRequest(username=username, password="a wrong guess",
                                                              client=client_info(ip)))
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_the_owners_browser_logs_in_while_the_account_is_under_attack(system):
    person = await system.person("device")
    owner, stranger = Client(system), Client(system)
    try:
        reply, _ = await owner.log_in(person.username)
        assert reply.status == 303 and reply.headers["Location"] == "/account/"
        device = reply.cookies["gh_device"]
        assert device.value and device["httponly"] and device["samesite"] == "Lax" and int(device["max-age"]) > 86400
        reply, _ = await owner.post("/account/logout", {"csrf_token": await owner.token("/account/")})
        assert reply.status == 303 and owner.cookie("gh_device") == device.value  # it outlives the session

        # The guesses from 150 addresses, as the gateway passes them on (its credential, the client's IP).
        async with open_channel(f"127.0.0.1:{system.auth_running.port}", system.auth_settings.gateway_key) as channel:
            accounts = accounts_pb2_grpc.AccountServiceStub(channel)
            answers = await asyncio.gather(*[guess(accounts, person.username, f"198.51.{i // 250}.{i % 250 + 1}")
                                             for i in range(150)])
        assert answers.count(grpc.StatusCode.UNAUTHENTICATED) == system.auth_settings.login_failures_per_user

        reply, body = await stranger.log_in(person.username)  # the right password, from a new browser
        assert reply.status == 429 and "Too many failed login attempts" in body
        reply, _ = await owner.log_in(person.username)
        assert reply.status == 303 and reply.headers["Location"] == "/account/"
        reply, body = await owner.get("/account/")
        assert reply.status == 200 and person.username in body
    finally:
        await owner.close()
        await stranger.close()
