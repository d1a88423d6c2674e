"""The embedded Redis with a password: clients without it are refused, the URL carries it."""

from __future__ import annotations

import secrets
import stat

import pytest
import redis

from gatehouse.infra.redis_embed import EmbeddedRedis


def test_a_password_protected_redis_refuses_clients_without_it(tmp_path):
    password = secrets.token_urlsafe(32)
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False, password=password).start()
    try:
        with redis.Redis(server.host, server.port) as anonymous:
            with pytest.raises(redis.AuthenticationError):
                anonymous.xadd("gatehouse:events", {"event_id": "x", "tag": "account:login:success", "event": b"x"})
        with redis.Redis.from_url(server.url) as client:
            assert client.xadd("gatehouse:events", {"event": b"x"})
        assert f":{password}@" in server.url
        conf = tmp_path / "redis" / "redis-auth.conf"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600  # not on the command line, which `ps` shows
        assert password not in " ".join(server.process.args)
    finally:
        server.stop()
