"""The access log's lines: their fields, and when they are written (in batches, after a short delay,
and at a clean stop: none lost)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from tests.uploadgw.conftest import gateway_settings
from uploadgw.http.accesslog import ACCESS_LOG_EXTRA, LOGGER, AccessLog, access_logger
from uploadgw.server import start


@contextlib.asynccontextmanager
async def serving(lines: AccessLog) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """A real aiohttp server logging to `lines`, and a client for it: (client, base URL). /extra
    adds a handler's fields to its line."""

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def extra(request: web.Request) -> web.Response:
        request[ACCESS_LOG_EXTRA] = {"project": "p\u00e9", "token_id": "t-1", "api_token": "pypi-secret"}
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/plain", plain)
    app.router.add_get("/extra", extra)
    runner = web.AppRunner(app, access_log=logging.getLogger(LOGGER), access_log_class=access_logger(lines))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
    try:
        async with aiohttp.ClientSession() as http:
            yield http, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def get(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(url) as resp:
        assert resp.status == 200
        await resp.read()
    await asyncio.sleep(0.05)  # aiohttp logs the request once the answer is out


async def test_lines_are_written_a_full_batch_at_a_time_and_the_rest_at_close():
    stream = io.StringIO()
    lines = AccessLog(stream, batch=3, delay=3600)
    async with serving(lines) as (http, url):
        for _ in range(2):
            await get(http, url + "/plain?token=secret&b=1&a=2")
        assert stream.getvalue() == "", "lines are held until a batch is full"
        await get(http, url + "/extra")
        assert len(stream.getvalue().splitlines()) == 3
        await get(http, url + "/plain")
        assert len(stream.getvalue().splitlines()) == 3
    lines.close()
    text = stream.getvalue()
    written = [json.loads(line) for line in text.splitlines()]
    assert len(written) == 4
    assert "secret" not in text and text.isascii()
    first = written[0]
    assert {key: first[key] for key in ("level", "logger", "msg", "method", "path", "query_keys", "status",
                                        "remote")} == {
        "level": "info", "logger": "uploadgw.access", "msg": "request", "method": "GET", "path": "/plain",
        "query_keys": "a,b,token", "status": 200, "remote": "127.0.0.1"}
    assert first["bytes"] > len("ok") and first["ts"].endswith("Z") and isinstance(first["ms"], float)
    assert first["agent"].startswith("Python")
    # A handler's fields come last, redacted as in any log line.
    assert list(written[2])[-3:] == ["project", "token_id", "api_token"]
    assert (written[2]["project"], written[2]["token_id"], written[2]["api_token"]) == ("p\u00e9", "t-1", "[redacted]")


async def test_a_line_is_written_after_the_delay_without_a_full_batch():
    stream = io.StringIO()
    lines = AccessLog(stream, batch=1000, delay=0.2)
    try:
        async with serving(lines) as (http, url):
            await get(http, url + "/plain")
            for _ in range(100):
                if stream.getvalue():
                    break
                await asyncio.sleep(0.05)
            assert [json.loads(line)["path"] for line in stream.getvalue().splitlines()] == ["/plain"]
    finally:
        lines.close()


async def test_a_clean_stop_of_the_gateway_writes_every_line(auth, make_database_url, tmp_path):
    settings = gateway_settings(make_database_url("uploadgw"), str(tmp_path / "store"), auth, access_log=True)
    stream = io.StringIO()
    running = await start(settings, clock=auth.clock, migrate_first=True, access_stream=stream)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(20):
                async with http.get(running.url + "/simple/", headers={"Accept": "text/html"}) as resp:
                    assert resp.status == 200
    finally:
        await running.stop()
    assert [json.loads(line)["path"] for line in stream.getvalue().splitlines()] == ["/simple/"] * 20


async def test_a_log_level_above_info_turns_the_access_log_off(auth, make_database_url, tmp_path):
    settings = gateway_settings(make_database_url("uploadgw"), str(tmp_path / "store"), auth, access_log=True,
                                log_level="WARNING")
    stream = io.StringIO()
    running = await start(settings, clock=auth.clock, migrate_first=True, access_stream=stream)
    try:
        async with aiohttp.ClientSession() as http, http.get(running.url + "/simple/") as resp:
            assert resp.status == 200
    finally:
        await running.stop()
    assert running.access_log is None and stream.getvalue() == ""
