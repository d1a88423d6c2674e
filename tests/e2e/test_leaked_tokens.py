"""Leaked-token reports (`POST /_/secrets/disclose-token`) through the whole system: a real key
server on loopback publishes a scanner's P-256 keys (made per test), reports are signed over their
raw body and posted to the real gateway; authsvc revokes, mails over the real SMTP listener and
records the events that the audit service serves."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets

import aiohttp
import grpc
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.tokens.scannerkeys import TrustedScanner
from gatehouse.auth.v1 import tokens_pb2
from tests.e2e.journeys import assert_not_in_user_log, mentions
from tests.keyserver import KeyServer, new_key, sign
from tests.system import Person, System, client, start_system

pytestmark = pytest.mark.asyncio(loop_scope="module")
SCANNER = "Example Enterprise secret scanning"
LEAKED_AT = "https://git.example.org/acme/app/blob/main/.pypirc"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def leaks(redis_server, tmp_path_factory):
    """(the system trusting one scanner whose keys the key server publishes, the key server)."""
    with KeyServer().running() as keys:
        # Keys are not cached (0 s) so that each test's new keys count at once.
        options = {"auth_options": {"leak_scanners": (TrustedScanner(SCANNER, keys.url),),
                                    "leak_keys_cache_seconds": 0}}
        async with start_system(tmp_path_factory.mktemp("leaks"), redis_server.url, **options) as running:
            yield running, keys


def report(*tokens: str, url: str = LEAKED_AT) -> bytes:
    return json.dumps([{"token": t, "type": "gatehouse_api_token", "url": url, "source": "commit"}
                       for t in tokens]).encode()


async def post(system: System, body: bytes, key_id: str | None, signature: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if key_id is not None:
        headers["GITHUB-PUBLIC-KEY-IDENTIFIER"] = key_id
    if signature is not None:
        headers["GITHUB-PUBLIC-KEY-SIGNATURE"] = signature
    async with aiohttp.ClientSession() as http:
        async with http.post(system.gateway_url + "/_/secrets/disclose-token", data=body, headers=headers) as reply:
            return reply.status, await reply.text()


async def is_live(system: System, token: str, project: str) -> bool:
    try:
        await system.tokens.VerifyUploadToken(tokens_pb2.VerifyUploadTokenRequest(
            token=token, project_name=project, client=client()))
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
        return False
    return True


async def leak_mails(system: System, person: Person, count: int, *, timeout: float = 10.0) -> list:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [m for m in system.mailbox.to(person.email) if "found in public" in m["Subject"]]
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


def forged_token(system: System, token_id: str) -> str:
    """A token for the live token `token_id`, in our exact format (prefix, location, key version),
    but signed under a secret this index does not have: only its HMAC chain tells it apart."""
    from authsvc.tokens.caveats import UserBound
    from authsvc.tokens.codec import TokenCodec

    other = TokenCodec(prefix=system.auth_settings.token_prefix, location=system.auth_settings.token_location,
                       secrets_by_version=[(1, secrets.token_bytes(32))])
    return other.mint(token_id, [UserBound("someone")])


async def test_a_report_revokes_the_live_token_only_mails_its_owner_and_logs_it(leaks):
    system, keys = leaks
    owner, bystander = await system.person("leak"), await system.person("by")
    project, project_id = await system.project(owner)
    session = await system.session(owner)
    leaked = await system.create_token(session, "ci", projects=[project])
    revoked = await system.create_token(session, "old", projects=[project])
    await system.tokens.DeleteToken(tokens_pb2.DeleteTokenRequest(session_token=session,
                                                                  token_id=revoked.info.id, client=client()))
    kept = await system.create_token(session, "kept", projects=[project])
    unknown = forged_token(system, kept.info.id)
    key_id, private = new_key(keys)

    body = report(leaked.token, unknown, revoked.token, "pypi-not-a-token")
    assert await post(system, body, key_id, sign(private, body)) == (204, "")

    assert not await is_live(system, leaked.token, project)
    assert await is_live(system, kept.token, project)
    account = await system.wait_for_user_event(owner.user_id, "account:api_token:removed_leak")
    per_project = await system.wait_for_project_event(project_id, "project:api_token:removed_leak")
    await system.settle()
    assert len(await system.wait_for_user_event(owner.user_id, "account:api_token:removed_leak")) == 1
    assert [e.details["token_id"] for e in account] == [leaked.info.id]
    assert [e.details["token_id"] for e in per_project] == [leaked.info.id]
    for event in account + per_project:
        assert event.details["reporter"] == SCANNER and event.details["url"] == LEAKED_AT
        assert not mentions(event, leaked.token, leaked.token[-40:])
    await assert_not_in_user_log(system, bystander.user_id, account)

    mails = await leak_mails(system, owner, 1)
    await asyncio.sleep(0.3)  # a second mail would be here by now
    assert len(await leak_mails(system, owner, 2, timeout=0)) == 1
    text = mails[0].get_content()
    assert LEAKED_AT in text and SCANNER in text and "'ci'" in text
    assert leaked.token not in text and leaked.token[-40:] not in text

    # Reports that name nothing live get the very same answer and change nothing.
    again = report(leaked.token, unknown, revoked.token)
    assert await post(system, again, key_id, sign(private, again)) == (204, "")
    assert await is_live(system, kept.token, project)


async def test_an_account_wide_token_is_logged_in_every_project_it_could_reach(leaks):
    system, keys = leaks
    owner = await system.person("wide")
    (first, first_id), (second, second_id) = await system.project(owner), await system.project(owner)
    token = await system.create_token(await system.session(owner), "everything")
    key_id, private = new_key(keys)
    body = report(token.token, url=LEAKED_AT + "\r\nBcc: x")  # control characters never reach logs or mails
    assert (await post(system, body, key_id, sign(private, body)))[0] == 204
    assert not await is_live(system, token.token, first)
    for project_id, name in ((first_id, first), (second_id, second)):
        [event] = await system.wait_for_project_event(project_id, "project:api_token:removed_leak")
        assert event.project_name == name and event.details["username"] == owner.username
        assert event.details["url"] == LEAKED_AT + "??Bcc: x"
    [mail] = await leak_mails(system, owner, 1)
    assert LEAKED_AT + "??Bcc: x" in mail.get_content() and not mail["Bcc"]


async def test_unsigned_forged_or_wrongly_keyed_reports_are_refused_and_change_nothing(leaks):
    system, keys = leaks
    owner = await system.person("forge")
    project, _ = await system.project(owner)
    token = await system.create_token(await system.session(owner), "target", projects=[project])
    body = report(token.token)
    key_id, private = new_key(keys)
    stranger = ec.generate_private_key(ec.SECP256R1())
    cases = {
        "no headers": (body, None, None, "not signed"),
        "forged signature": (body, key_id, base64.b64encode(secrets.token_bytes(70)).decode(), "does not match"),
        "signature not base64": (body, key_id, "%%%", "not base64"),
        "signed by another key under a published id": (body, key_id, sign(stranger, body), "does not match"),
        "unknown key id": (body, "no-such-key", sign(private, body), "No trusted secret scanner"),
        "body altered after signing": (report(token.token, url=LEAKED_AT + "x"), key_id, sign(private, body),
                                       "does not match"),
        "key id not ASCII": (body, "clé", sign(private, body), "must be ASCII"),
    }
    for name, (sent, sent_key, signature, message) in cases.items():
        status, text = await post(system, sent, sent_key, signature)
        assert (status, message in text) == (400, True), (name, status, text)

    huge = report(token.token, url="x" * 600_000)
    status, text = await post(system, huge, key_id, sign(private, huge))
    assert status == 413 and "too large" in text, text

    old_id, old = new_key(keys, current=False)
    status, text = await post(system, body, old_id, sign(old, body))
    assert status == 400 and "no longer current" in text, text

    key_id, private = new_key(keys)
    for sent, message in ((b'[{"token": ', "not valid JSON"), (b'{"token": "x"}', "JSON list of findings"),
                          (b'[{"token": "x", "url": 1}]', "Finding 1")):
        status, text = await post(system, sent, key_id, sign(private, sent))
        assert status == 400 and message in text, (sent, text)

    keys.status = 500
    try:
        status, text = await post(system, body, key_id, sign(private, body))
    finally:
        keys.status = 200
    assert status == 503 and SCANNER in text, text

    assert await is_live(system, token.token, project)
    await system.settle()
    assert not [e for e in await system.user_events(owner.user_id) if e.tag == "account:api_token:removed_leak"]
    assert not await leak_mails(system, owner, 1, timeout=0)


async def test_a_hundred_identical_reports_at_once_revoke_mail_and_log_once(leaks):
    system, keys = leaks
    owner = await system.person("flood")
    project, project_id = await system.project(owner)
    token = await system.create_token(await system.session(owner), "flooded", projects=[project])
    key_id, private = new_key(keys)
    body = report(token.token)
    signature = sign(private, body)

    answers = await asyncio.gather(*(post(system, body, key_id, signature) for _ in range(100)))
    assert {status for status, _ in answers} == {204}
    assert not await is_live(system, token.token, project)
    await system.wait_for_user_event(owner.user_id, "account:api_token:removed_leak")
    await system.settle()
    assert [e.tag for e in await system.user_events(owner.user_id)].count("account:api_token:removed_leak") == 1
    assert [e.tag for e in await system.project_events(project_id)].count("project:api_token:removed_leak") == 1
    await leak_mails(system, owner, 1)
    await asyncio.sleep(0.3)
    assert len(await leak_mails(system, owner, 2, timeout=0)) == 1


async def test_the_documented_scanner_pattern_matches_our_tokens_only(leaks, repo_root):
    system, _ = leaks
    owner = await system.person("pat")
    token = (await system.create_token(await system.session(owner), "pattern")).token
    readme = (repo_root / "README.md").read_text()
    pattern = re.search(r"scanner pattern: `([^`]+)`", readme).group(1)
    assert re.fullmatch(pattern, token)
    pypi_like = "pypi-AgEIcHlwaS5vcmc" + token[len("pypi-AgEJZ2F0ZWhvdXNl"):]
    assert not re.search(pattern, pypi_like)

