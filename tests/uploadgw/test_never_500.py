"""Hostile clients at the public edge: whatever bytes arrive, the answer is never a 500.

Each test sends crafted bytes over a raw socket to a real gateway with its real authsvc, and
names the 500 it guards against."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.uploadgw.conftest import PASSWORD, make_uploader
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import basic, encode, twine_fields


@pytest.fixture
def gw_overrides():
    return {"access_log": True}  # so that the access log's lines are checked too


@pytest.fixture(autouse=True)
async def every_request_logged_readably(gw):
    """After each test: every line of the access log is JSON naming a request, none of them a 500."""
    yield
    lines = gw.access_lines()
    assert all(line["msg"] == "request" and line["method"] and line["path"] for line in lines)
    assert not any(line["status"] == 500 for line in lines)


async def exchange(port: int, data: bytes) -> tuple[int, str, bytes]:
    """Send raw bytes, read the whole answer: (status, reason phrase, body)."""
    status, reason, _, body = await exchange_full(port, data)
    return status, reason, body


async def exchange_full(port: int, data: bytes) -> tuple[int, str, list[str], bytes]:
    """Send raw bytes, read the whole answer: (status, reason phrase, header lines, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        status_line, _, headers = head.decode("latin-1").partition("\r\n")
        _, status, reason = status_line.split(" ", 2)
        length = next((int(line.split(":", 1)[1]) for line in headers.split("\r\n")
                       if line.lower().startswith("content-length:")), None)
        if length is None and "transfer-encoding: chunked" in headers.lower():
            body = b""
            while size := int((await asyncio.wait_for(reader.readline(), 20)).split(b";")[0], 16):
                body += await reader.readexactly(size + 2)
                body = body[:-2]
        else:
            body = await asyncio.wait_for(reader.read() if length is None else reader.readexactly(length), 20)
        return int(status), reason, headers.split("\r\n"), body
    finally:
        writer.transport.abort()


def upload_request(token: str, ctype: str, body: bytes, *, agent: bytes = b"twine/7.0.0 tests") -> bytes:
    return (f"POST /legacy/ HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(token)}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n").encode() + b"User-Agent: " + agent + b"\r\n\r\n" + body


def with_part_headers(fields, wheel, extra: bytes, *, pad: int = 0, after: bool = False) -> tuple[str, bytes]:
    """A twine body whose first field (or a field after the file) carries `extra` part header
    lines, the file `pad` bytes longer."""
    ctype, head, tail = encode(fields, wheel.name, wheel.read_bytes() + b"\0" * pad)
    boundary = ctype.split("boundary=")[1].encode()
    first = b"--" + boundary + b"\r\n"
    assert head.startswith(first)
    if after:
        extra_part = first + extra + b'Content-Disposition: form-data; name="comment"\r\n\r\nx\r\n'
        return ctype, head + b"\r\n" + extra_part + tail[2:]
    return ctype, first + extra + head[len(first):] + tail


LONG_LINE = b"X-Pad: " + b"a" * 9000 + b"\r\n"
MANY_HEADERS = b"".join(b"X-Pad-%d: 1\r\n" % i for i in range(200))


@pytest.mark.parametrize("pad,after", [(0, False), (2 * 1024 * 1024, False), (2 * 1024 * 1024, True)],
                         ids=["read-whole", "streamed", "streamed-after-content"])
@pytest.mark.parametrize("extra,words", [(LONG_LINE, "longer than 8190 bytes"), (MANY_HEADERS, "more than 128 headers")],
                         ids=["long-line", "many-headers"])
async def test_long_or_many_part_headers_are_400_not_500(gw, tmp_path, pad, after, extra, words):
    """A part header line over 8,190 bytes or more than 128 part headers, before or after the file,
    in a body read whole or streamed: a 400 that says which (aiohttp's reader, used before, raised
    exceptions of its own for them, and they were a 500 on the streamed path)."""
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "hdr-pkg", "1.0")
    ctype, body = with_part_headers(twine_fields(wheel), wheel, extra, pad=pad, after=after)
    status, reason, text = await exchange(gw.running.port, upload_request(up.token, ctype, body))
    assert status == 400 and words in reason, (status, reason, text[:200])
    assert await gw.stored_blobs() == [] and await gw.temp_files() == []


async def test_non_utf8_user_agent_is_served(gw, tmp_path):
    """Raw 0xff bytes in User-Agent reached the protobuf ClientInfo as lone surrogates: a
    UnicodeEncodeError, so a 500 on the upload and on the login page. They become U+FFFD, in the
    audit event and in the access log (whose JSON lines could not be written before) too."""
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "ua-pkg", "1.0")
    ctype, head, tail = encode(twine_fields(wheel), wheel.name, wheel.read_bytes())
    agent = b"twine/7.0.0 \xff\xfe\xc3("
    status, reason, _ = await exchange(gw.running.port, upload_request(up.token, ctype, head + tail, agent=agent))
    assert status == 200, reason
    uploaded = await gw.events("file:add")
    assert uploaded and uploaded[-1].user_agent == "twine/7.0.0 \ufffd\ufffd\ufffd("
    status, _, headers, page = await exchange_full(gw.running.port, b"GET /account/login HTTP/1.1\r\nHost: x\r\n"
                                                   b"Connection: close\r\nUser-Agent: " + agent + b"\r\n\r\n")
    assert status == 200
    cookie = next(line.split(":", 1)[1].split(";")[0].strip() for line in headers
                  if line.lower().startswith("set-cookie:") and "gh_csrf=" in line)
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1)
    form = b"csrf_token=" + csrf + b"&username=" + up.username.encode() + b"&password=" + PASSWORD.replace(" ", "+").encode()
    status, reason, headers, _ = await exchange_full(gw.running.port, (
        b"POST /account/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: " + cookie.encode() +
        b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nUser-Agent: " % len(form)
        + agent + b"\r\n\r\n" + form))
    assert status == 303 and any("gh_session=" in line for line in headers), (status, reason)
    agents = [line["agent"] for line in gw.access_lines()]
    assert agents and all(agent == "twine/7.0.0 \ufffd\ufffd\ufffd(" for agent in agents)


async def test_non_utf8_credentials_are_refused_not_500(gw, tmp_path):
    """An API token or a session cookie with bytes that are not UTF-8 went to authsvc in a protobuf
    string (UnicodeEncodeError: a 500); now it is a token or session authsvc does not know."""
    wheel = make_wheel(tmp_path, "cred-pkg", "1.0")
    ctype, head, tail = encode(twine_fields(wheel), wheel.name, wheel.read_bytes())
    request = upload_request("x", ctype, head + tail).replace(b"Basic X190b2tlbl9fOng=", b"token pypi-\xff\xfe")
    status, reason, _ = await exchange(gw.running.port, request)
    assert status == 403, reason
    status, _, headers, _ = await exchange_full(gw.running.port, b"GET /account/ HTTP/1.1\r\nHost: x\r\n"
                                                b"Cookie: gh_session=ab\xff\xfe\r\nConnection: close\r\n\r\n")
    assert status == 303 and "Location: /account/login?next=/account/" in headers


async def test_non_utf8_expect_header_is_417_not_500(gw):
    """aiohttp's own Expect handler, which runs before any middleware, put a non-UTF-8 value into
    its 417 body: a UnicodeEncodeError, so a 500, on every path, routed or not."""
    for path in (b"/simple/", b"/no-such-page", b"/legacy/"):
        status, reason, _ = await exchange(gw.running.port, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n"
                                           b"Expect: \xff\xfe\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        assert status == 417, (path, status, reason)


@pytest.mark.parametrize("ctype,body", [
    (b"application/x-www-form-urlencoded; charset=no-such-charset", b"username=x"),
    (b"multipart/form-data; boundary=zz",
     b'--zz\r\nContent-Disposition: form-data; name="username"\r\nContent-Transfer-Encoding: bogus\r\n\r\nx\r\n--zz--\r\n'),
    (b"multipart/form-data; boundary=zz", b'--zz\r\nNo colon\r\n\r\nx\r\n--zz--\r\n'),
    (b"multipart/form-data; boundary=zz", b"--zz\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\nx\r\n--zz--\r\n"),
    (b"multipart/form-data; boundary=zz",
     b'--zz\r\nContent-Disposition: form-data; name="_charset_"\r\n\r\n' + b"x" * 40 + b"\r\n--zz--\r\n"),
], ids=["unknown-charset", "unknown-transfer-encoding", "header-without-colon", "long-part-header", "long-charset"])
async def test_unreadable_page_forms_are_400_not_500(gw, ctype, body):
    """aiohttp's form parser refuses these with LookupError, RuntimeError and BadHttpMessage,
    which the pages took for bugs (500); found by test_edge_fuzz."""
    status, _, page = await exchange(gw.running.port, b"POST /account/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                     b"Content-Type: " + ctype + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert status == 400 and b"The form could not be read" in page, (status, page[:300])


async def test_an_origin_that_is_not_a_url_is_refused_not_500(gw):
    """`Origin: http://[` made urlsplit raise ValueError in the pages' same-origin check: a 500 on
    every POST to a page. It is another site's origin now. Found by test_edge_fuzz."""
    status, _, page = await exchange(gw.running.port, b"POST /account/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                     b"Origin: http://[\r\nContent-Length: 0\r\n\r\n")
    assert status == 403 and b"sent from another site" in page, (status, page[:300])


async def test_a_non_ascii_boundary_is_400_not_500(gw, tmp_path):
    """A boundary with bytes over 0x7f failed `encode("latin-1")` on the read-whole path: a 500.
    RFC 2046 boundaries are ASCII. Found by test_edge_fuzz."""
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "bnd-pkg", "1.0")
    _, head, tail = encode(twine_fields(wheel), wheel.name, wheel.read_bytes(), boundary="b")
    body = (head + tail).replace(b"--b", b"--\x80\xe9")
    status, reason, _ = await exchange(gw.running.port, upload_request(up.token, "x", body).replace(
        b"Content-Type: x", b"Content-Type: multipart/form-data; boundary=\x80\xe9"))
    assert status == 400 and "no usable boundary" in reason, (status, reason)


async def test_a_page_form_cut_short_is_400_not_500(gw):
    """A form body that ends (the client half-closes) before its Content-Length: request.post()
    raised ConnectionResetError, which the pages took for a bug (a 500, logged with its traceback).
    aiohttp has closed the connection by then, so the gateway's own count tells. Found by test_edge_fuzz."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    try:
        writer.write(b"POST /account/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 100\r\nConnection: close\r\n\r\nusername=x")
        await writer.drain()
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
    for _ in range(100):
        if gw.requests_to("unmatched"):
            break
        await asyncio.sleep(0.05)
    assert gw.requests_to("unmatched", 400) == 1 and gw.requests_to("unmatched", 500) == 0


async def test_non_utf8_part_headers_read_the_same_on_both_paths(gw, tmp_path):
    """aiohttp's streamed reader kept non-UTF-8 bytes of a part's filename as lone surrogates (which
    no protobuf string takes), the read-whole path as U+FFFD: both paths now give the same answer."""
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "pr-pkg", "1.0")
    ctype, head, tail = encode(twine_fields(wheel), wheel.name, wheel.read_bytes())
    body = (head + tail).replace(b'filename="', b'filename="\xff\xfe')
    whole = await exchange(gw.running.port, upload_request(up.token, ctype, body))
    chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    streamed = await exchange(gw.running.port, upload_request(up.token, ctype, chunks).replace(
        b"Content-Length: %d" % len(chunks), b"Transfer-Encoding: chunked"))  # no length: streamed
    assert whole[:2] == streamed[:2] == (400, "Invalid wheel filename: Invalid project name: '??pr_pkg-1.0-py3-none-any'")


async def test_a_static_file_name_too_long_for_the_file_system_is_404_not_500(gw):
    """aiohttp's static handler let OSError(ENAMETOOLONG) through for a 300-byte name: a 500.
    Found by test_edge_fuzz."""
    for name in (b"x" * 300, b"a/" + b"x" * 300):
        status, _, page = await exchange(gw.running.port, b"GET /static/" + name + b" HTTP/1.1\r\nHost: x\r\n"
                                         b"Connection: close\r\n\r\n")
        assert status == 404, (status, page[:300])  # as for any file that is not there
    status, _, _ = await exchange(gw.running.port, b"GET /static/site.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200


async def test_a_charset_part_is_a_field_like_any_other(gw, tmp_path):
    """A first `_charset_` part (RFC 7578 §4.6) made aiohttp's form-data reader raise RuntimeError
    when longer than 31 bytes (a 500 before it was caught). The gateway reads every field as
    UTF-8: `_charset_`, long or short, is an unknown field, ignored, and the upload is stored."""
    up = await make_uploader(gw.auth)
    for version, value in (("1.0", b"x" * 40), ("1.1", b"iso-8859-1")):
        wheel = make_wheel(tmp_path, "charset-pkg", version)
        ctype, head, tail = encode(twine_fields(wheel), wheel.name, wheel.read_bytes())
        boundary = ctype.split("boundary=")[1].encode()
        body = (head + tail).replace(boundary, b"b0")
        charset = b'--b0\r\nContent-Disposition: form-data; name="_charset_"\r\n\r\n' + value + b"\r\n"
        status, reason, text = await exchange(gw.running.port, upload_request(
            up.token, "multipart/form-data; boundary=b0", charset + body))
        assert status == 200, (version, status, reason, text[:200])
    assert len(await gw.stored_blobs()) == 2 and await gw.temp_files() == []
