"""One rule for a part's Content-Disposition, whichever way the body is read (whole when small,
streamed when large): `form-data` with plain `name=`/`filename=` parameters. The RFC 5987 `name*=`
and `filename*=` forms, which RFC 7578 (4.2) forbids and twine never sends, get a 400 that says what
to use instead (the streamed path used to accept them, the small one refused them)."""

from __future__ import annotations

import os

import pytest

from tests.uploadgw.conftest import make_uploader
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import basic, encode, twine_fields

PLAIN_ONLY = "Use plain name= and filename= parameters in the multipart body."


@pytest.fixture
def gw_overrides():
    return {"max_file_size": 4 * 1024 * 1024}


@pytest.mark.parametrize("payload", [1000, 1_500_000], ids=["small", "streamed"])
@pytest.mark.parametrize(("plain", "other", "expected"), [
    (b'filename="', b"filename*=UTF-8''", PLAIN_ONLY),
    (b'name="content"; filename="', b"name*=UTF-8''content; filename=\"", PLAIN_ONLY),
    (b"form-data; name=\"content\"", b"attachment; name=\"content\"", "a part is not form-data"),
])
async def test_a_part_disposition_is_read_by_one_rule(gw, tmp_path, payload, plain, other, expected):
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "disp-pkg", "1.0", payload=os.urandom(payload))
    ctype, head, tail = encode(twine_fields(wheel), wheel.name, wheel.read_bytes())
    start = head.rindex(b"Content-Disposition: form-data; name=\"content\"")
    head = head[:start] + head[start:].replace(plain, other, 1)
    if b"filename*=UTF-8''" in head:  # the value of an extended parameter is not quoted
        head = head.replace(wheel.name.encode() + b'"', wheel.name.encode(), 1)
    headers = {"Content-Type": ctype, "Authorization": basic(up.token)}
    async with gw.http.post(gw.upload_url, data=head + tail, headers=headers) as resp:
        status, text = resp.status, await resp.text()
    assert status == 400 and expected in text, (status, text)
    assert await gw.stored_blobs() == []


async def test_plain_parameters_are_accepted_in_both_ways(gw, tmp_path):
    up = await make_uploader(gw.auth)
    for i, payload in enumerate((1000, 1_500_000)):
        wheel = make_wheel(tmp_path, "plain-pkg", f"1.{i}", payload=os.urandom(payload))
        ctype, head, tail = encode(twine_fields(wheel), wheel.name, wheel.read_bytes())
        headers = {"Content-Type": ctype, "Authorization": basic(up.token)}
        async with gw.http.post(gw.upload_url, data=head + tail, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
