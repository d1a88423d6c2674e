"""The public edge under hostile clients: header, idle and rate timeouts, refusals from the declared
length (also to `Expect: 100-continue`) that close the connection, and caps on concurrent uploads.

Raw sockets play the slow and idle clients against a real gateway; the limits are small here so
that each cut happens within seconds."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.uploadgw.conftest import make_uploader, mint, twine
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import basic, encode, twine_fields

HEADER_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 3.0
IDLE_TIMEOUT = 1.5
MIN_RATE = 2000


LIMITS = {"header_timeout": HEADER_TIMEOUT, "keepalive_timeout": KEEPALIVE_TIMEOUT,
          "body_idle_timeout": IDLE_TIMEOUT, "body_min_rate": MIN_RATE, "body_rate_window": 1.0,
          "body_rate_grace": 1.0, "max_file_size": 300_000, "max_form_size": 64 * 1024}


@pytest.fixture
def gw_overrides():
    return LIMITS


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> tuple[bytes, float]:
    """Everything the server sent until it closed the connection, and when it closed."""
    started = time.monotonic()
    received = b""
    async with asyncio.timeout(seconds):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionError:
                break
            if not chunk:
                break
            received += chunk
    return received, time.monotonic() - started


async def trickled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pieces, within: float,
                   every: float = 0.2) -> tuple[bytes, float]:
    """Send `pieces` one every `every` seconds while waiting (up to `within`) for the server to
    close: what it sent, and when it closed."""

    async def trickle():
        try:
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(every)
        except ConnectionError:
            pass

    sending = asyncio.ensure_future(trickle())
    try:
        return await closed_within(reader, within)
    finally:
        sending.cancel()
        writer.close()


def upload_head(port_host: str, token: str, ctype: str, length: int, extra: str = "", *,
                bearer: bool = False) -> bytes:
    authorization = f"Bearer {token}" if bearer else basic(token)
    return (f"POST /legacy/ HTTP/1.1\r\nHost: {port_host}\r\nAuthorization: {authorization}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {length}\r\n{extra}\r\n").encode()


def wheel_body(tmp_path, name: str, version: str, payload: int = 1000) -> tuple[str, bytes]:
    folder = tmp_path / f"{name}-{version}"
    folder.mkdir()
    wheel = make_wheel(folder, name, version, payload=os.urandom(payload))
    ctype, head, tail = encode(twine_fields(wheel), wheel.name, wheel.read_bytes())
    return ctype, head + tail


async def test_a_connection_that_sends_nothing_is_closed(gw):
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    received, after = await closed_within(reader, HEADER_TIMEOUT + 3)
    writer.close()
    assert received == b"" and after < HEADER_TIMEOUT + 2


async def test_headers_that_trickle_in_are_cut(gw):
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    writer.write(b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n")
    received, after = await trickled(reader, writer, [bytes([b]) for b in b"X-Slow: " + b"a" * 100],
                                     HEADER_TIMEOUT + 3)
    assert after < HEADER_TIMEOUT + 2 and not received.startswith(b"HTTP/1.1 2")


async def get_health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await asyncio.wait_for(reader.readexactly(length), 5)
    return head


async def test_an_idle_connection_between_requests_stays_for_the_keepalive_timeout(gw):
    """Longer than the head timeout (a proxy reusing its idle upstream connection must not find it
    closed), but bounded."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    assert (await get_health(reader, writer)).startswith(b"HTTP/1.1 200 ")
    await asyncio.sleep(HEADER_TIMEOUT + 0.8)
    assert (await get_health(reader, writer)).startswith(b"HTTP/1.1 200 ")
    received, after = await closed_within(reader, KEEPALIVE_TIMEOUT + 3)
    writer.close()
    assert received == b"" and KEEPALIVE_TIMEOUT - 0.5 < after < KEEPALIVE_TIMEOUT + 2


async def test_a_slow_head_after_a_response_is_cut_from_its_first_byte(gw):
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    assert (await get_health(reader, writer)).startswith(b"HTTP/1.1 200 ")
    await asyncio.sleep(0.5)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    received, after = await trickled(reader, writer, [b"X-Slow: a\r\n"] * 50, KEEPALIVE_TIMEOUT + 3)
    assert received == b"" and after < HEADER_TIMEOUT + 1 < KEEPALIVE_TIMEOUT - 0.5


@pytest.mark.parametrize("gw_overrides", [{**LIMITS, "body_min_rate": 0}])
async def test_a_declared_body_that_never_comes_is_cut(gw, tmp_path):
    """(With a garbage token the answer is a 403 at once: test_edge_token.)"""
    token = (await make_uploader(gw.auth)).token
    ctype, body = wheel_body(tmp_path, "stall-pkg", "1.0")
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    writer.write(upload_head("x", token, ctype, len(body)) + body[:300])
    received, after = await closed_within(reader, IDLE_TIMEOUT + 4)
    writer.close()
    assert received.startswith(b"HTTP/1.1 408 The request body stalled: no data for 1.5 seconds."), received
    assert after < IDLE_TIMEOUT + 2.5


@pytest.mark.parametrize("gw_overrides", [{**LIMITS, "body_min_rate": 0, "max_file_size": 4 * 1024 * 1024}])
async def test_a_streamed_file_that_stops_is_cut(gw, tmp_path):
    """A large upload (streamed after authsvc said yes) whose file stops half way."""
    up = await make_uploader(gw.auth)
    ctype, body = wheel_body(tmp_path, "stall-pkg", "1.0", payload=1_500_000)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    writer.write(upload_head("x", up.token, ctype, len(body)) + body[:len(body) // 2])
    received, after = await closed_within(reader, IDLE_TIMEOUT + 4)
    writer.close()
    assert received.startswith(b"HTTP/1.1 408 The request body stalled: no data for 1.5 seconds."), received
    assert after < IDLE_TIMEOUT + 2.5
    assert await gw.temp_files() == []


async def test_a_body_sent_a_byte_at_a_time_is_cut(gw, tmp_path):
    """Each byte comes well within the idle timeout, but the rate stays under the floor."""
    up = await make_uploader(gw.auth)
    ctype, body = wheel_body(tmp_path, "trickle-pkg", "1.0")
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    writer.write(upload_head("x", up.token, ctype, len(body)))
    received, after = await trickled(reader, writer, [body[i:i + 1] for i in range(len(body))], 8)
    assert received.startswith(b"HTTP/1.1 408 The request body arrived slower than 2000 bytes per second"), received
    assert after < 4


@pytest.mark.parametrize(("gw_overrides", "payload", "chunk"), [
    (LIMITS, 48_000, 8192),                                              # read whole (small body)
    ({**LIMITS, "max_file_size": 4 * 1024 * 1024}, 1_500_000, 96 * 1024),  # streamed
], ids=["small", "streamed"])
async def test_a_slow_but_steady_upload_succeeds(gw, tmp_path, payload, chunk):
    """Guards against limits that would cut honest slow lines: a piece every half second, for longer
    than the idle timeout, the grace and the window together."""
    up = await make_uploader(gw.auth)
    ctype, body = wheel_body(tmp_path, "steady-pkg", "1.0", payload=payload)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    writer.write(upload_head("x", up.token, ctype, len(body)))
    started = time.monotonic()
    for offset in range(0, len(body), chunk):
        writer.write(body[offset:offset + chunk])
        await writer.drain()
        await asyncio.sleep(0.5)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    assert time.monotonic() - started > IDLE_TIMEOUT + 1.0
    assert answer.startswith(b"HTTP/1.1 200 "), answer


# -- the declared length ----------------------------------------------------------------------------
async def test_expect_100_continue_with_a_too_large_length_gets_413_without_continue(gw):
    up = await make_uploader(gw.auth)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    writer.write(upload_head("x", up.token, "multipart/form-data; boundary=b", 50_000_000,
                             extra="Expect: 100-continue\r\n"))
    received, after = await closed_within(reader, 5)
    writer.close()
    assert received.startswith(b"HTTP/1.1 413 File too large. The limit is 293 KiB per file.\r\n"), received
    assert b"100 Continue" not in received and b"Connection: close" in received
    assert after < 2


async def test_expect_100_continue_within_the_limit_continues(gw, tmp_path):
    up = await make_uploader(gw.auth)
    ctype, body = wheel_body(tmp_path, "expect-pkg", "1.0")
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    writer.write(upload_head("x", up.token, ctype, len(body), extra="Expect: 100-continue\r\n"))
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer


async def test_a_refused_body_is_not_drained(gw):
    """The client keeps sending a 50 MB body after the 413: the gateway closes instead of reading it."""
    up = await make_uploader(gw.auth)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    writer.write(upload_head("x", up.token, "multipart/form-data; boundary=b", 50_000_000))
    sent = 0

    async def flood():
        nonlocal sent
        chunk = b"x" * 65536
        try:
            while sent < 50_000_000:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                await asyncio.sleep(0.01)
        except ConnectionError:
            pass

    sending = asyncio.ensure_future(flood())
    try:
        received, after = await closed_within(reader, 10)
    finally:
        sending.cancel()
        writer.transport.abort()
    assert received.startswith(b"HTTP/1.1 413 File too large."), received
    assert after < 4 and sent < 10_000_000


async def test_twine_prints_the_refusal_of_a_too_large_upload(gw, tmp_path):
    """twine sends its whole body without waiting: the refusal from the declared length, sent while it
    is still sending 8 MB, is what it prints although the gateway reads at most 1 MiB before closing."""
    up = await make_uploader(gw.auth)
    folder = tmp_path / "huge"
    folder.mkdir()
    wheel = make_wheel(folder, "huge-pkg", "1.0", payload=os.urandom(8_000_000))
    result = await twine(gw.upload_url, wheel, password=up.token)
    assert result.rc != 0 and "413" in result.flat, result.output
    assert "File too large. The limit is 293 KiB per file." in result.flat, result.output


# -- concurrent uploads (slow bodies, so that the uploads overlap; no rate floor) ----------------------
UNHURRIED = {**LIMITS, "body_min_rate": 0}


async def slow_upload(port: int, token: str, ctype: str, body: bytes, *, bearer: bool = False) -> bytes:
    """Send the body in pieces over two seconds (so that uploads overlap); the status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upload_head("x", token, ctype, len(body), bearer=bearer))
    pieces = 8
    step = -(-len(body) // pieces)

    async def send():
        try:
            for offset in range(0, len(body), step):
                writer.write(body[offset:offset + step])
                await writer.drain()
                await asyncio.sleep(0.25)
        except ConnectionError:
            pass

    sending = asyncio.ensure_future(send())
    try:
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
    finally:
        sending.cancel()
        writer.transport.abort()
    return answer


@pytest.mark.parametrize("gw_overrides", [{**UNHURRIED, "max_uploads_per_token": 2, "max_uploads_per_ip": 100}])
async def test_concurrent_uploads_per_token_are_capped(gw, tmp_path):
    up = await make_uploader(gw.auth)
    bodies = [wheel_body(tmp_path, "cap-pkg", f"1.{i}") for i in range(6)]
    # The same token as Basic credentials and as a Bearer token: one key.
    answers = await asyncio.gather(*(slow_upload(gw.running.port, up.token, c, b, bearer=i % 2 == 1)
                                     for i, (c, b) in enumerate(bodies)))
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 429 ")]
    assert len(refused) == 4 and sum(a.startswith(b"HTTP/1.1 200 ") for a in answers) == 2, answers
    assert refused[0].startswith(b"HTTP/1.1 429 Too many uploads at once from this API token (at most 2)")
    assert b"Retry-After: 10\r\n" in refused[0]
    # The slots are given back: the next upload runs.
    content_type, body = wheel_body(tmp_path, "cap-pkg", "2.0")
    assert (await slow_upload(gw.running.port, up.token, content_type, body)).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("gw_overrides", [{**UNHURRIED, "max_uploads_per_token": 100, "max_uploads_per_ip": 2}])
async def test_concurrent_uploads_per_address_are_capped(gw, tmp_path):
    up = await make_uploader(gw.auth)
    tokens = [up.token] + [(await mint(gw.auth, up.username)).token for _ in range(4)]
    bodies = [wheel_body(tmp_path, "ipcap-pkg", f"1.{i}") for i in range(5)]
    answers = await asyncio.gather(*(slow_upload(gw.running.port, t, c, b) for t, (c, b) in zip(tokens, bodies)))
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 429 Too many uploads at once from this address")]
    assert len(refused) == 3 and sum(a.startswith(b"HTTP/1.1 200 ") for a in answers) == 2, answers



@pytest.mark.parametrize("gw_overrides", [{**UNHURRIED, "max_uploads_per_token": 1}])
async def test_expect_100_continue_with_a_full_cap_gets_429_without_continue(gw, tmp_path):
    up = await make_uploader(gw.auth)
    content_type, body = wheel_body(tmp_path, "busy-pkg", "1.0")
    running = asyncio.ensure_future(slow_upload(gw.running.port, up.token, content_type, body))
    await asyncio.sleep(0.5)  # the first upload holds the token's one slot
    content_type, body = wheel_body(tmp_path, "busy-pkg", "1.1")
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    writer.write(upload_head("x", up.token, content_type, len(body), extra="Expect: 100-continue\r\n"))
    received, _ = await closed_within(reader, 5)
    writer.close()
    assert received.startswith(b"HTTP/1.1 429 Too many uploads at once from this API token (at most 1)"), received
    assert b"100 Continue" not in received and b"Retry-After: 10\r\n" in received
    assert (await running).startswith(b"HTTP/1.1 200 ")
