"""twine (a real subprocess) with tokens restricted to networks or to one release version: the
refusal names the restriction that failed, in the line twine prints."""

from __future__ import annotations

import secrets

from gatehouse.auth.v1 import admin_pb2, common_pb2
from tests.uploadgw.conftest import make_uploader, twine
from tests.uploadgw.dists import make_wheel


async def restricted_token(gw, username: str, *, networks=(), version: str = "") -> str:
    reply = await gw.auth.admin.MintToken(admin_pb2.AdminMintTokenRequest(
        username=username, description="r-" + secrets.token_hex(3),
        scope=common_pb2.TokenScope(all_projects=True, allowed_networks=list(networks), release_version=version)))
    return reply.token


async def test_a_network_restriction_names_the_networks_and_the_address(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "net-pkg", "1.0")
    elsewhere = await restricted_token(gw, up.username, networks=["192.0.2.0/24", "2001:db8::/32"])
    result = await twine(gw.upload_url, wheel, password=elsewhere)
    assert result.rc != 0 and "403" in result.flat, result.output
    assert "restricted to IP addresses 192.0.2.0/24, 2001:db8::/32; this request came from 127.0.0.1" in result.flat
    here = await restricted_token(gw, up.username, networks=["127.0.0.0/8", "::1/128"])
    result = await twine(gw.upload_url, wheel, password=here)
    assert result.rc == 0, result.output


async def test_a_release_version_restriction_names_the_version(gw, tmp_path):
    up = await make_uploader(gw.auth)
    token = await restricted_token(gw, up.username, version="2.0")
    result = await twine(gw.upload_url, make_wheel(tmp_path, "ver-pkg", "1.0"), password=token)
    assert result.rc != 0 and "403" in result.flat, result.output
    assert "restricted to release version 2.0; this upload is version '1.0'" in result.flat
    result = await twine(gw.upload_url, make_wheel(tmp_path, "ver-pkg", "2.0.0"), password=token)
    assert result.rc == 0, result.output  # 2.0.0 is release 2.0 under PEP 440
