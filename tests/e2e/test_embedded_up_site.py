"""`gatehouse up` names its site once, and everything that depends on it follows: the links in mails,
and the origin and RP id security keys are bound to. From the host and HTTP port (a loopback or
wildcard host as `localhost`), or from `--public-url` behind a proxy. Regression: on any port but
8000 the WebAuthn origin stayed http://localhost:8000, so no browser could add a security key.

Each test runs the real command (tests/e2e/embedded.py) and the operator CLI from another directory
(GATEHOUSE_DATA_DIR), then acts as a browser would (the account pages over HTTP, a software
security key) or as the gateway does (gRPC with the gateway's credential), and reads the mail the
system wrote into its mailbox directory.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import time
import types

import grpc

from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc, common_pb2, twofactor_pb2, twofactor_pb2_grpc
from gatehouse.cli.settings import read_env_file
from gatehouse.infra.grpcserver import open_channel
from tests.authsvc.softauthn import SoftAuthenticator
from tests.e2e.embedded import gatehouse, port_args, ports, running_up
from tests.pages.support import Client

PASSWORD = "a long enough password"
LINK = re.compile(r"https?://\S+")


def create_user(data, tmp_path, username: str) -> str:
    """`gatehouse admin user create` run from another directory, finding the system by GATEHOUSE_DATA_DIR."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    address = f"{username}@example.org"
    created = gatehouse("admin", "user", "create", username, "--email", address, "--verified", "--password-stdin",
                        stdin=PASSWORD + "\n", cwd=elsewhere, GATEHOUSE_DATA_DIR=str(data))
    assert created.returncode == 0, created.stderr
    return address


def links_in_mail(data, address: str, subject_word: str, timeout: float = 15.0) -> list[str]:
    """The links in the newest `.eml` the system wrote to `address` with `subject_word` in its subject."""
    deadline = time.monotonic() + timeout
    while True:
        for path in sorted((data / "mailbox").glob("*.eml"), reverse=True):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address in message["To"] and subject_word.lower() in message["Subject"].lower():
                return LINK.findall(message.get_body(("plain",)).get_content())
        assert time.monotonic() < deadline, f"no '{subject_word}' mail to {address}"
        time.sleep(0.1)


def assert_written(data, site: str, rp_id: str) -> None:
    written = read_env_file(data / "gatehouse.env")
    assert written["GATEHOUSE_PUBLIC_URL"] == site and written["AUTHSVC_WEBAUTHN_ORIGINS"] == site
    assert written["AUTHSVC_WEBAUTHN_RP_ID"] == rp_id


async def add_key_through_the_pages(site: str, username: str) -> None:
    """Log in and add a security key as a browser does (webauthn.js): options, the key, the form."""
    browser = Client(types.SimpleNamespace(url=site))
    try:
        reply, _ = await browser.log_in(username, PASSWORD)
        assert reply.status == 303
        csrf = await browser.token("/account/two-factor/security-keys")
        reply, options = await browser.post("/account/two-factor/security-keys/options",
                                            headers={"X-CSRF-Token": csrf, "Origin": site})
        assert reply.status == 200, options
        assert json.loads(options)["rp"]["id"] == "localhost"
        key = SoftAuthenticator(origin=site)
        reply, body = await browser.post("/account/two-factor/security-keys", {
            "csrf_token": csrf, "label": "blue key", "credential": key.create(options)}, headers={"Origin": site})
        assert reply.status in (200, 303), body  # the recovery codes page, or back to the settings
        reply, body = await browser.get("/account/two-factor")
        assert "blue key" in body
    finally:
        await browser.close()


async def forget_password_through_the_pages(site: str, address: str) -> None:
    browser = Client(types.SimpleNamespace(url=site))
    try:
        csrf = await browser.token("/account/forgot-password")
        reply, body = await browser.post("/account/forgot-password", {
            "csrf_token": csrf, "username_or_email": address}, headers={"Origin": site})
        assert reply.status == 200, body
    finally:
        await browser.close()


def test_on_another_port_security_keys_and_mail_links_follow_it(tmp_path):
    data, chosen = tmp_path / "var", ports()
    site = f"http://localhost:{chosen['--http-port']}"
    with running_up(data, "--host", "127.0.0.1", *port_args(chosen)):
        assert_written(data, site, "localhost")
        username = "keyholder"
        address = create_user(data, tmp_path, username)
        asyncio.run(add_key_through_the_pages(site, username))
        assert f"{site}/account/two-factor" in links_in_mail(data, address, "second factor was added")
        asyncio.run(forget_password_through_the_pages(site, address))
        [reset] = [link for link in links_in_mail(data, address, "reset") if "token=" in link]
        assert reset.startswith(f"{site}/account/reset-password?token=")


async def as_the_gateway(data, site: str, username: str, address: str) -> None:
    """What the gateway asks of authsvc for a page behind the proxy: a login, a security key, a reset."""
    written = read_env_file(data / "gatehouse.env")
    origin = common_pb2.ClientInfo(ip_address="192.0.2.1", user_agent="e2e")
    async with open_channel(written["GATEHOUSE_AUTHSVC_TARGET"], written["AUTHSVC_GATEWAY_KEY"]) as channel:
        accounts = accounts_pb2_grpc.AccountServiceStub(channel)
        twofactor = twofactor_pb2_grpc.TwoFactorServiceStub(channel)
        session = (await accounts.Login(accounts_pb2.LoginRequest(
            username=username, password=PASSWORD, client=origin))).session_token
        begin = await twofactor.BeginWebAuthnRegistration(twofactor_pb2.BeginWebAuthnRegistrationRequest(
            session_token=session, client=origin))
        assert json.loads(begin.options_json)["rp"]["id"] == "pypi.gatehouse.test"
        key = SoftAuthenticator(origin=site)
        try:
            await twofactor.CompleteWebAuthnRegistration(twofactor_pb2.CompleteWebAuthnRegistrationRequest(
                session_token=session, label="proxy key", credential_json=key.create(begin.options_json),
                client=origin))
        except grpc.aio.AioRpcError as exc:
            raise AssertionError(f"a key answering for {site} was refused: {exc.details()}") from None
        await accounts.RequestPasswordReset(accounts_pb2.RequestPasswordResetRequest(
            username_or_email=address, client=origin))


def test_behind_a_proxy_the_public_url_names_the_site(tmp_path):
    data, chosen = tmp_path / "var", ports()
    site = "https://pypi.gatehouse.test"
    with running_up(data, *port_args(chosen), "--public-url", "https://PyPI.gatehouse.test:443/") as up:
        assert_written(data, site, "pypi.gatehouse.test")
        username = "proxied"
        address = create_user(data, tmp_path, username)
        asyncio.run(as_the_gateway(data, site, username, address))
        [reset] = [link for link in links_in_mail(data, address, "reset") if "token=" in link]
        assert reset.startswith(f"{site}/account/reset-password?token=")
        assert f"{site}/account/two-factor" in links_in_mail(data, address, "second factor was added")
    assert f"account pages   {site}/" in up.stdout.read()
