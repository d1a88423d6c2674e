"""Token policy: every token expires (site default and maximum), and the restrictions a holder may
choose: client IP networks and one release version, signed in by the server or appended offline."""

from __future__ import annotations

import datetime as dt
import json

import grpc
import pytest
from sqlalchemy import select

from authsvc.settings import Settings
from authsvc.tokens.models import ApiToken
from gatehouse.auth.v1 import admin_pb2, common_pb2, tokens_pb2
from gatehouse.infra.clock import as_utc
from gatehouse.infra.settings import SettingsError
from tests.authsvc.project_token_factories import (
    create_token,
    events,
    list_tokens,
    make_project,
    make_user,
    refused,
)
from tests.authsvc.test_token_properties import attenuate

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def restricted(auth, session: str, description: str, *, networks=(), version: str = "", projects=(),
                     expires_at: dt.datetime | None = None) -> tokens_pb2.CreateTokenResponse:
    request = tokens_pb2.CreateTokenRequest(
        session_token=session, description=description,
        scope=common_pb2.TokenScope(all_projects=not projects, project_names=list(projects),
                                    allowed_networks=list(networks), release_version=version))
    if expires_at is not None:
        request.expires_at.FromDatetime(expires_at.astimezone(dt.timezone.utc).replace(tzinfo=None))
    return await auth.tokens.CreateToken(request)


async def upload(auth, token: str, project: str = "proj", *, ip: str = "192.0.2.8", version: str = "1.0"):
    return await auth.tokens.VerifyUploadToken(tokens_pb2.VerifyUploadTokenRequest(
        token=token, project_name=project, version=version, client=common_pb2.ClientInfo(ip_address=ip)))


async def at_headers(auth, token: str, ip: str):
    return await auth.tokens.VerifyUploadToken(tokens_pb2.VerifyUploadTokenRequest(
        token=token, token_only=True, client=common_pb2.ClientInfo(ip_address=ip)))


async def read_index(auth, token: str, ip: str):
    return await auth.tokens.VerifyIndexToken(tokens_pb2.VerifyIndexTokenRequest(
        token=token, client=common_pb2.ClientInfo(ip_address=ip)))


# -- expiry ----------------------------------------------------------------------------------------

async def test_every_token_expires_by_default_and_never_past_the_maximum(auth):
    _, alice = await make_user(auth, "alice")
    now = auth.clock.now()
    default = await create_token(auth, alice, "default")
    assert default.info.expires_at.seconds == int(now.timestamp()) + 90 * 86400
    await refused(create_token(auth, alice, "too-far", expires_at=now + dt.timedelta(days=366)), INVALID,
                  "at most 365 days", f"before {(now + dt.timedelta(days=365)):%Y-%m-%d}")
    await refused(create_token(auth, alice, "past", expires_at=now - dt.timedelta(seconds=5)), INVALID,
                  "must be in the future")
    longest = await create_token(auth, alice, "longest", expires_at=now + dt.timedelta(days=365))
    assert longest.info.expires_at.seconds == int(now.timestamp()) + 365 * 86400
    # The operator's mint obeys the same policy, and says when the token ends.
    minted = await auth.admin.MintToken(admin_pb2.AdminMintTokenRequest(
        username="alice", description="minted", scope=common_pb2.TokenScope(all_projects=True)))
    assert minted.info.HasField("expires_at")
    request = admin_pb2.AdminMintTokenRequest(username="alice", description="minted-long",
                                              scope=common_pb2.TokenScope(all_projects=True))
    request.expires_at.FromDatetime((now + dt.timedelta(days=400)).replace(tzinfo=None))
    await refused(auth.admin.MintToken(request), INVALID, "at most 365 days")
    assert [t.description for t in await list_tokens(auth, alice)] == ["default", "longest", "minted"]


@pytest.mark.parametrize("auth_overrides", [{"token_default_days": 7, "token_max_days": 30}])
async def test_operators_choose_the_default_and_the_maximum(auth):
    _, alice = await make_user(auth, "alice")
    now = auth.clock.now()
    assert (await create_token(auth, alice, "ci")).info.expires_at.seconds == int(now.timestamp()) + 7 * 86400
    await refused(create_token(auth, alice, "long", expires_at=now + dt.timedelta(days=31)), INVALID,
                  "at most 30 days")


def test_expiry_settings_from_the_environment():
    env = {"AUTHSVC_DATABASE_URL": "sqlite:///x", "AUTHSVC_GATEWAY_KEY": "g", "AUTHSVC_OPERATOR_KEY": "o",
           "AUTHSVC_TOKEN_SECRETS": "1:" + "a" * 64, "AUTHSVC_TOTP_KEYS": "1:" + "b" * 64,
           "AUTHSVC_EVENT_KEYS": "1:" + "c" * 64}
    settings = Settings.from_env(env)
    assert (settings.token_default_days, settings.token_max_days, settings.token_expiry_notice_days) == (90, 365, 7)
    settings = Settings.from_env({**env, "AUTHSVC_TOKEN_DEFAULT_DAYS": "30", "AUTHSVC_TOKEN_MAX_DAYS": "60"})
    assert (settings.token_default_days, settings.token_max_days) == (30, 60)
    with pytest.raises(SettingsError, match="AUTHSVC_TOKEN_DEFAULT_DAYS must not be more"):
        Settings.from_env({**env, "AUTHSVC_TOKEN_DEFAULT_DAYS": "400"})


async def test_an_expired_token_is_refused_at_the_headers_and_after_the_fields(auth):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    token = (await create_token(auth, alice, "short", expires_at=auth.clock.now() + dt.timedelta(days=1))).token
    assert (await upload(auth, token)).project_name == "proj"
    auth.clock.advance(86400)
    await refused(at_headers(auth, token, "192.0.2.8"), DENIED, "This token expired at")
    await refused(upload(auth, token), DENIED, "This token expired at")


async def test_a_row_without_an_expiry_fails_closed(auth):
    """Defence in depth: the column is NOT NULL, but a row read without one is refused, not let through."""
    from authsvc.tokens.lookup import TokenRow
    from authsvc.tokens.verification import TokenVerifier
    from authsvc.errors import TokenDenied
    from authsvc.tokens.caveats import Context, Purpose

    row = TokenRow("u", 1, True, None, None, "alice", True, True, False, None, None, False, None, False, False)
    verifier: TokenVerifier = auth.running.app.verifier
    now = auth.clock.now()
    with pytest.raises(TokenDenied):
        verifier._check((), row, now, Context(now=now, user_id="u", purpose=Purpose.INDEX))


async def test_migration_gives_tokens_without_expiry_the_default_from_the_upgrade(make_database_url):
    from sqlalchemy import text

    from authsvc.server import MIGRATIONS
    from gatehouse.infra.db import make_engine, upgrade_async

    url = make_database_url("expiry-migration")
    await upgrade_async(url, MIGRATIONS, "0002")
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO users (id, username, username_canonical, name, is_active, disabled_reason, is_admin, "
                "created_at) VALUES ('u1', 'alice', 'alice', '', true, '', false, :t)"),
                {"t": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)})
            await conn.execute(text(
                "INSERT INTO api_tokens (id, user_id, description, key_version, scope_all_projects, created_at, "
                "expires_at) VALUES ('t1', 'u1', 'old', 1, true, :t, NULL), ('t2', 'u1', 'dated', 1, true, :t, :e)"),
                {"t": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                 "e": dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)})
        before = dt.datetime.now(dt.timezone.utc)
        await upgrade_async(url, MIGRATIONS)
        async with engine.connect() as conn:
            rows = {i: as_utc(e) for i, e in (await conn.execute(select(ApiToken.id, ApiToken.expires_at))).all()}
    finally:
        await engine.dispose()
    assert dt.timedelta(days=90) - dt.timedelta(seconds=5) <= rows["t1"] - before <= dt.timedelta(days=90, seconds=60)
    assert rows["t2"] == dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)  # a token that had an expiry keeps it


# -- IP networks -----------------------------------------------------------------------------------

async def test_a_token_restricted_to_networks_works_only_from_them(auth):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    created = await restricted(auth, alice, "ci", networks=["192.0.2.0/24", " 2001:db8::/32 ", "198.51.100.7"])
    assert list(created.info.scope.allowed_networks) == ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32"]
    token = created.token
    assert (await upload(auth, token, ip="192.0.2.200")).project_name == "proj"
    assert (await upload(auth, token, ip="2001:db8:1::5")).project_name == "proj"
    assert (await upload(auth, token, ip="::ffff:198.51.100.7")).project_name == "proj"  # IPv4-mapped
    message = await refused(upload(auth, token, ip="203.0.113.9"), DENIED,
                            "restricted to IP addresses 192.0.2.0/24, 2001:db8::/32, 198.51.100.7/32",
                            "came from 203.0.113.9")
    assert "\n" not in message  # one line, as twine prints it
    await refused(upload(auth, token, ip=""), DENIED, "address is not known")  # fail closed
    await refused(at_headers(auth, token, "2001:db9::1"), DENIED, "restricted to IP addresses")
    assert (await at_headers(auth, token, "192.0.2.1")).token_id == created.info.id
    await refused(read_index(auth, token, "203.0.113.9"), DENIED, "restricted to IP addresses")
    assert (await read_index(auth, token, "192.0.2.1")).username == "alice"
    assert list((await list_tokens(auth, alice))[0].scope.allowed_networks) == [
        "192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32"]


@pytest.mark.parametrize("bad", ["192.0.2.1/24", "10.0.0.0/33", "example.org", "fe80::1%eth0", "1.2.3"])
async def test_a_network_that_is_not_one_is_refused_by_name(auth, bad):
    _, alice = await make_user(auth, "alice")
    await refused(restricted(auth, alice, "ci", networks=["192.0.2.0/24", bad]), INVALID,
                  f"'{bad}' is not an IP address or network")
    assert await list_tokens(auth, alice) == []


# -- release version -------------------------------------------------------------------------------

async def test_a_token_for_one_release_uploads_only_that_version(auth):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    created = await restricted(auth, alice, "release", version="v1.0")
    assert created.info.scope.release_version == "1.0"  # PEP 440 normal form
    token = created.token
    for same in ("1.0", "1.0.0", "1.0"):
        assert (await upload(auth, token, version=same)).project_name == "proj"
    await refused(upload(auth, token, version="1.0.1"), DENIED, "restricted to release version 1.0",
                  "this upload is version '1.0.1'")
    await refused(upload(auth, token, version=""), DENIED, "restricted to release version 1.0")
    # The headers alone do not know the version; the header check lets it on to the full check.
    assert (await at_headers(auth, token, "192.0.2.8")).token_id == created.info.id
    assert (await read_index(auth, token, "192.0.2.8")).username == "alice"  # reads are not uploads


@pytest.mark.parametrize("bad", ["1.0+local", "not a version", "1.0-"])
async def test_a_release_version_that_is_not_one_is_refused(auth, bad):
    _, alice = await make_user(auth, "alice")
    await refused(restricted(auth, alice, "release", version=bad), INVALID, "is not a release version")


# -- offline attenuation ---------------------------------------------------------------------------

def _caveat(body: dict) -> bytes:
    return json.dumps({"v": 1, **body}, separators=(",", ":")).encode()


async def test_a_holder_adds_both_restrictions_offline(auth):
    """Without the server: append the caveats to the macaroon (pymacaroons) and the index obeys them."""
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    token = (await create_token(auth, alice, "ci")).token
    narrowed = attenuate(attenuate(token, _caveat({"t": "ips", "nets": ["192.0.2.0/24"]})),
                         _caveat({"t": "version", "version": "2.1"}))
    assert (await upload(auth, narrowed, ip="192.0.2.3", version="2.1.0")).project_name == "proj"
    await refused(upload(auth, narrowed, ip="198.51.100.1", version="2.1"), DENIED, "restricted to IP addresses")
    await refused(upload(auth, narrowed, ip="192.0.2.3", version="2.2"), DENIED, "restricted to release version")
    # A second network list narrows to the intersection: both must hold.
    twice = attenuate(narrowed, _caveat({"t": "ips", "nets": ["192.0.2.128/25"]}))
    await refused(upload(auth, twice, ip="192.0.2.3", version="2.1"), DENIED, "192.0.2.128/25")
    assert (await upload(auth, twice, ip="192.0.2.200", version="2.1")).project_name == "proj"
    # The original token is untouched.
    assert (await upload(auth, token, ip="203.0.113.1", version="9")).project_name == "proj"


@pytest.mark.parametrize("body", [
    {"t": "ips", "nets": ["192.0.2.1/24"]},          # host bits set
    {"t": "ips", "nets": ["2001:0db8::/32"]},        # not the canonical spelling
    {"t": "ips", "nets": []},
    {"t": "ips", "nets": ["192.0.2.0/24"], "x": 1},
    {"t": "version", "version": "1.0.0-rc1"},        # not the normal form (1.0.0rc1)
    {"t": "version", "version": "1.0+local"},
])
async def test_a_malformed_appended_restriction_makes_the_token_invalid(auth, body):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    token = (await create_token(auth, alice, "ci")).token
    await refused(upload(auth, attenuate(token, _caveat(body))), UNAUTHENTICATED,
                  "restriction that this index does not understand")


async def test_restrictions_are_kept_on_the_row_for_listing(auth):
    _, alice = await make_user(auth, "alice")
    created = await restricted(auth, alice, "both", networks=["10.0.0.0/8"], version="3.0")
    async with auth.running.app.db() as s:
        row = await s.scalar(select(ApiToken).where(ApiToken.id == created.info.id))
    assert (row.allowed_networks, row.release_version) == ("10.0.0.0/8", "3.0")
    [added] = await events(auth, "account:api_token:added")  # the owner's log says what it was limited to
    assert (added.details["networks"], added.details["release_version"]) == ("10.0.0.0/8", "3.0")
