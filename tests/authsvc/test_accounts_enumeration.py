"""Unknown names cost what accounts cost, also after the argon2 parameters are raised: a stored
hash made with the older, cheaper parameters is verified in the time a current one takes."""

from __future__ import annotations

import statistics
import time

import argon2
import grpc
from sqlalchemy import select

from authsvc.accounts.models import User
from authsvc.server import create_server
from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc
from gatehouse.infra.grpcserver import open_channel
from tests.authsvc.accounts_support import PASSWORD, client
from tests.authsvc.conftest import auth_settings

LIMITS = {"login_failures_per_ip": 1000, "login_failures_per_user": 1000}


async def test_unknown_names_answer_as_slowly_as_accounts_with_older_hashes(make_database_url):
    url = make_database_url("authsvc")
    old = auth_settings(url, argon2_time_cost=2, **LIMITS)
    running = await create_server(old, migrate_first=True)
    try:
        async with open_channel(f"127.0.0.1:{running.port}", old.gateway_key) as channel:
            await accounts_pb2_grpc.AccountServiceStub(channel).Register(accounts_pb2.RegisterRequest(
                username="alice", email="alice@example.org", password=PASSWORD))
    finally:
        await running.stop(grace=0)

    # The operators raise the cost: alice's hash is not upgraded until she logs in.
    raised = auth_settings(url, argon2_time_cost=12, **LIMITS)
    running = await create_server(raised)
    try:
        async with running.app.db() as s:
            stored = await s.scalar(select(User.password_hash).where(User.username == "alice"))
        assert argon2.extract_parameters(stored).time_cost == 2
        async with open_channel(f"127.0.0.1:{running.port}", raised.gateway_key) as channel:
            stub = accounts_pb2_grpc.AccountServiceStub(channel)

            async def failed_login(name: str, i: int) -> float:
                started = time.perf_counter()
                try:
                    await stub.Login(accounts_pb2.LoginRequest(
                        username=name, password="not the password", client=client(f"198.51.100.{i}")))
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
                return time.perf_counter() - started

            await failed_login("warm-up", 0)
            existing, unknown = [], []
            for i in range(13):  # interleaved, so that any drift in the machine's speed weighs on both
                existing.append(await failed_login("alice", 2 * i + 1))
                unknown.append(await failed_login(f"nobody{i}", 2 * i + 2))
        ratio = statistics.median(existing) / statistics.median(unknown)
        # Unpadded, the older hash answered in about a fifth of the time (time cost 2, now 12).
        # Generous bounds: the machine's load may change between samples.
        assert 0.5 < ratio < 2.0, (ratio, existing, unknown)
        assert running.app.hasher.padded_seconds > 0
        # Her stored hash is still the old one (only a successful login upgrades it).
        async with running.app.db() as s:
            assert await s.scalar(select(User.password_hash).where(User.username == "alice")) == stored
    finally:
        await running.stop(grace=0)
