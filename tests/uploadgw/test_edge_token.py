"""An upload's token is checked from its headers (issue 19): a token that is not one of authsvc's
(garbage, forged) gets its 403 before the gateway waits for any of the body, and the connection is
closed; so does an expired or revoked token, its 403 naming the reason (its refusal event goes to
the logs of the projects it is scoped to). Raw sockets against a real gateway and authsvc."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from gatehouse.auth.v1 import admin_pb2
from tests.authsvc.project_token_factories import events
from tests.uploadgw.conftest import make_uploader, mint
from tests.uploadgw.test_edge import IDLE_TIMEOUT, LIMITS, closed_within, upload_head
from uploadgw.http.edge import REFUSAL_DRAIN_SECONDS

DECLARED = 2_000_000  # under the file limit (4 MB here), over the small-body path's 1 MiB


@pytest.fixture
def gw_overrides():
    return {**LIMITS, "body_min_rate": 0, "max_file_size": 4_000_000}


async def refused_at(gw, token: str, prefix: bytes, ctype: str = "multipart/form-data; boundary=b"
                     ) -> tuple[bytes, float, float]:
    """Send an upload's head declaring DECLARED bytes and only `prefix` of its body; then wait:
    what the gateway answered, when its answer came and when it closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.running.port)
    try:
        writer.write(upload_head("x", token, ctype, DECLARED) + prefix)
        await writer.drain()
        started = time.monotonic()
        first = await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT + 4)
        answered = time.monotonic() - started
        rest, closed = await closed_within(reader, REFUSAL_DRAIN_SECONDS + 3)
        return first + rest, answered, answered + closed
    finally:
        writer.transport.abort()


@pytest.mark.parametrize("kind", ["garbage", "forged", "foreign format"])
async def test_a_token_that_is_not_ours_is_refused_before_the_body(gw, kind):
    good = (await make_uploader(gw.auth)).token
    token = {"garbage": "pypi-not-a-token-at-all",
             "forged": good[:-2] + ("AA" if good[-2:] != "AA" else "BB"),
             "foreign format": "pypi-" + "A" * 200}[kind]
    received, answered, closed = await refused_at(gw, token, b"")  # not one byte of the body
    assert received.startswith(b"HTTP/1.1 403 "), received
    assert b"Connection: close" in received.split(b"\r\n\r\n", 1)[0], received
    # Long before the body's idle timeout (which is what answered before: a 408 after 1.5 s); the
    # connection is closed once the short refusal drain is over, not at the body's end.
    assert answered < IDLE_TIMEOUT - 0.5, answered
    assert closed < REFUSAL_DRAIN_SECONDS + 1, closed


async def test_expired_and_revoked_tokens_are_refused_before_the_body(gw):
    owner = await make_uploader(gw.auth, own=["edge-tok"])
    expiring = await mint(gw.auth, owner.username, projects=["edge-tok"],
                          expires_at=gw.clock.now() + dt.timedelta(minutes=5))
    revoked = await mint(gw.auth, owner.username, projects=["edge-tok"])
    await gw.auth.admin.RevokeToken(admin_pb2.AdminRevokeTokenRequest(token_id=revoked.token_id))
    gw.clock.advance(minutes=10)
    for token, reason in ((expiring.token, b"expired"), (revoked.token, b"deleted")):
        received, answered, closed = await refused_at(gw, token, b"")  # not one byte of the body
        head = received.split(b"\r\n\r\n", 1)[0]
        assert head.startswith(b"HTTP/1.1 403 ") and reason in head.split(b"\r\n", 1)[0].lower(), received
        assert b"Connection: close" in head, received
        assert answered < IDLE_TIMEOUT - 0.5 and closed < REFUSAL_DRAIN_SECONDS + 1, (answered, closed)
    # Their refusals are in the log of the project the tokens are scoped to, recorded at the headers
    # (the fields never came), once each.
    refusals = await events(gw.auth, "project:upload:refused")
    assert [(e.project_name, e.details["reason"], e.details["step"]) for e in refusals] == [
        ("edge-tok", "expired", "headers"), ("edge-tok", "token_deleted", "headers")]
