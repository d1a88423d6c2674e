"""Probe endpoints, and where the client address comes from (X-Forwarded-For only when trusted)."""

from __future__ import annotations

import pytest

from tests.uploadgw.conftest import make_uploader
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import post_upload
from uploadgw.app import METRICS


async def test_live_and_ready_answer_without_credentials(gw):
    for path, body in (("/_health/live", "ok"), ("/_health/ready", "ready")):
        async with gw.http.get(gw.url + path) as resp:
            assert resp.status == 200 and (await resp.text()).strip() == body
            assert resp.headers["Cache-Control"] == "no-store"


async def test_forwarded_for_is_ignored_by_default(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "direct-pkg", "1.0")
    status, _, _ = await post_upload(gw, wheel, up.token, headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 200
    [event] = await gw.events("file:add")
    assert event.ip_address == "127.0.0.1", "a client must not choose the address recorded for it"


class TestBehindOneProxy:
    @pytest.fixture
    def gw_overrides(self):
        return {"trusted_proxy_hops": 1}

    async def test_the_address_the_proxy_appended_is_the_client(self, gw, tmp_path):
        up = await make_uploader(gw.auth)
        wheel = make_wheel(tmp_path, "proxied-pkg", "1.0")
        # The client forged the first entry; the trusted proxy appended the real one last.
        status, _, _ = await post_upload(gw, wheel, up.token,
                                         headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.7"})
        assert status == 200
        [event] = await gw.events("file:add")
        assert event.ip_address == "198.51.100.7"

    async def test_an_entry_that_is_not_an_address_leaves_the_proxys_and_a_zone_id_is_dropped(self, gw, tmp_path):
        """authsvc refuses a ClientInfo IP that is not an address (or has a zone id): the gateway
        never passes one, and the upload goes through."""
        up = await make_uploader(gw.auth)
        for name, forwarded in (("garbled-pkg", "10.9.9.9, not-an-ip; DROP"), ("zoned-pkg", "fe80::1%eth0"),
                                ("mapped-pkg", "::FFFF:198.51.100.8")):
            status, _, _ = await post_upload(gw, make_wheel(tmp_path, name, "1.0"), up.token,
                                             headers={"X-Forwarded-For": forwarded})
            assert status == 200, name
        events = await gw.events("file:add")
        assert [e.ip_address for e in events] == ["127.0.0.1", "fe80::1", "198.51.100.8"]


class TestAccessLog:
    @pytest.fixture
    def gw_overrides(self):
        return {"access_log": True}

    async def test_access_log_never_records_query_strings(self, gw):
        await _access_log_never_records_query_strings(gw)

    async def test_an_accepted_upload_is_one_line_naming_it_but_never_the_token(self, gw, tmp_path):
        up = await make_uploader(gw.auth)
        wheel = make_wheel(tmp_path, "logged-pkg", "1.0")
        for _ in range(2):  # stored, then the identical file again (nothing new stored)
            status, _, _ = await post_upload(gw, wheel, up.token)
            assert status == 200
        lines = [line for line in gw.access_lines() if line["path"] == "/legacy/"]
        [event] = await gw.events("file:add")
        assert [(line["project"], line["upload_filename"], line["size"], line["token_id"], line["stored"])
                for line in lines] == [("logged-pkg", wheel.name, wheel.stat().st_size, event.details["token_id"],
                                        stored) for stored in (True, False)]
        assert up.token not in gw.access_text()


async def _access_log_never_records_query_strings(gw):
    secret = "reset-token-that-must-not-be-logged"
    async with gw.http.get(gw.url + f"/_health/live?token={secret}") as resp:
        assert resp.status == 200
    lines = gw.access_lines()
    assert lines, "the request was not logged at all"
    assert secret not in gw.access_text()
    assert any(line["path"] == "/_health/live" and line["query_keys"] == "token" for line in lines)


async def test_every_request_is_counted_and_an_unknown_method_is_counted_as_other(gw):
    """The metrics count each request under its route, method and status; a method the gateway
    serves nowhere is "other" (a client cannot add series to the metrics at will)."""
    for _ in range(3):
        async with gw.http.get(gw.url + "/_health/live") as resp:
            assert resp.status == 200
    for method in ("PROPFIND", "MKCOL"):  # WebDAV methods aiohttp parses (it refuses unknown ones itself)
        async with gw.http.request(method, gw.url + "/_health/live") as resp:
            assert resp.status == 405
    samples = [(sample.labels["route"], sample.labels["method"], sample.labels["status"], sample.value)
               for metric in gw.running.app[METRICS].registry.collect() for sample in metric.samples
               if sample.name == "uploadgw_http_requests_total"]
    assert ("health_live", "GET", "200", 3.0) in samples
    assert [(method, status, value) for route, method, status, value in samples if status == "405"] == [
        ("other", "405", 2.0)]
