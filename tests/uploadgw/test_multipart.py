"""The one multipart loop (`multipart.read_upload`), on a real aiohttp server on a real port:
the fields come back as sent and the file as a stream whatever its size, and a body it cannot
read is refused (400; 413 for too much metadata) with a reason that says why. The whole gateway's
answers are tested in test_upload_http, test_never_500 and test_edge_fuzz."""

from __future__ import annotations

import hashlib
import os

import aiohttp
import pytest
from aiohttp import web

from tests.uploadgw.http_support import encode
from uploadgw.errors import InvalidUpload, TooLarge
from uploadgw.http import multipart

MAX_FORM = 64 * 1024


async def _read(request: web.Request) -> web.Response:
    try:
        body = await multipart.read_upload(request, max_form_size=MAX_FORM)
        digest, size, chunks = hashlib.sha256(), 0, 0
        async for chunk in body.content:
            digest.update(chunk)
            size, chunks = size + len(chunk), chunks + 1
    except (InvalidUpload, TooLarge) as exc:
        return web.json_response({"error": str(exc), "reason": exc.reason}, status=exc.http_status)
    return web.json_response({"fields": body.fields, "filename": body.filename, "form_bytes": body.form_bytes,
                              "sha256": digest.hexdigest(), "size": size, "chunks": chunks})


@pytest.fixture
async def post():
    app = web.Application()
    app.router.add_post("/", _read)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        async def send(ctype: str, body: bytes) -> tuple[int, dict]:
            async with http.post(f"http://127.0.0.1:{port}/", data=body, headers={"Content-Type": ctype}) as resp:
                return resp.status, await resp.json()
        yield send
    await runner.cleanup()


@pytest.mark.parametrize("size", [0, 1000, multipart.READ_CHUNK * 3 + 17], ids=["empty", "small", "large"])
async def test_fields_come_back_as_sent_and_the_file_as_a_stream(post, size):
    fields = [("name", "x"), ("summary", 'quote " and \\ slash'), ("classifiers", "a"), ("classifiers", "b")]
    content = os.urandom(size) + b"\r\n--data"  # a delimiter-like tail is the file's, not the framing's
    ctype, head, tail = encode(fields, "ok.whl", content)
    status, answer = await post(ctype, head + tail)
    assert status == 200, answer
    assert [tuple(f) for f in answer["fields"]] == fields and answer["filename"] == "ok.whl"
    assert answer["sha256"] == hashlib.sha256(content).hexdigest() and answer["size"] == len(content)
    if size > multipart.READ_CHUNK:  # streamed in pieces, not read whole
        assert answer["chunks"] > 1


def test_disposition_params_unescape_quoted_values():
    assert multipart.disposition_params('form-data; name="a\\"b"; filename=x.whl') == {"name": 'a"b',
                                                                                      "filename": "x.whl"}


def _fields_then(boundary: str, rest: bytes) -> bytes:
    return f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n'.encode() + rest


@pytest.mark.parametrize(("body", "status", "reason", "words"), [
    (b"no delimiter at all", 400, "bad_multipart", "Malformed multipart body"),
    (_fields_then("zz", b"--zz--\r\n"), 400, "no_file", "does not have a file"),
    (_fields_then("zz", b'--zz\r\nContent-Disposition: form-data; name="content"\r\n\r\nx\r\n--zz--\r\n'),
     400, "bad_multipart", "'content' field must be a file"),
    (_fields_then("zz", b'--zz\r\nContent-Disposition: form-data; name="comment"; filename="c.txt"\r\n\r\nx\r\n'
                  b"--zz--\r\n"), 400, "bad_multipart", "comment: Should not be a file"),
    (b'--zz\r\nContent-Disposition: form-data; name="summary"\r\n\r\n' + b"s" * (MAX_FORM + 1) + b"\r\n--zz--\r\n",
     413, "form_too_large", "metadata fields are larger than 64 KiB"),
    (b'--zz\r\nContent-Disposition: form-data; name="summary"\r\n\r\n\xff\xfe\r\n--zz--\r\n',
     400, "bad_encoding", "not valid UTF-8"),
    (_fields_then("zz", b'--zz\r\nContent-Disposition: form-data; name="content"; filename="a.whl"\r\n\r\nabc'),
     400, "interrupted", "interrupted or its multipart body is malformed"),
    (_fields_then("zz", b"--zz\r\nNo colon here\r\n\r\nx\r\n--zz--\r\n"),
     400, "bad_multipart", "Malformed multipart body (Malformed segment header)"),
    (_fields_then("zz", b'--zz\r\nContent-Disposition: form-data; name="summary"\r\n'
                  b"Content-Type: multipart/mixed; boundary=yy\r\n\r\n--yy--\r\n--zz--\r\n"),
     400, "bad_multipart", "Nested multipart bodies are not accepted"),
    (_fields_then("zz", b'--zz\r\nContent-Disposition: attachment; name="content"; filename="a.whl"\r\n\r\n'
                  b"x\r\n--zz--\r\n"), 400, "bad_multipart", "a part is not form-data"),
], ids=["no-delimiter", "no-file", "content-not-a-file", "other-file-field", "form-too-large", "not-utf8",
        "unterminated-file", "part-header-without-colon", "nested-multipart", "not-form-data"])
async def test_a_body_it_cannot_read_is_refused_with_why(post, body, status, reason, words):
    answered, answer = await post("multipart/form-data; boundary=zz", body)
    assert answered == status and answer["reason"] == reason and words in answer["error"], answer


async def test_an_unusable_boundary_is_refused_before_reading(post):
    ctype, head, tail = encode([("name", "x")], "ok.whl", b"data", boundary="b" * 201)
    status, answer = await post(ctype, head + tail)
    assert status == 400 and "no usable boundary" in answer["error"], answer
