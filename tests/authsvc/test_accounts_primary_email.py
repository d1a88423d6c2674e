"""AccountService.SetPrimaryEmail over real gRPC and SMTP, as PyPI: only another verified address of
the same account becomes primary, after a recent password entry; the change and its event
`account:email:primary:change` commit together, and the OLD primary address is told (the new one,
the owner's own verified choice, is not mailed). Each refusal changes nothing. Last, the account
page's "Make primary" button over plain HTTP (a form, no JavaScript) against the whole system."""

from __future__ import annotations

import asyncio
import types

import grpc
import pytest

from gatehouse.auth.v1 import accounts_pb2
from tests.authsvc.accounts_support import PASSWORD, client, events, link_token, rpc_error, wait_for_mail
from tests.authsvc.project_token_factories import make_user
from tests.authsvc.publishing_support import reason_of
from tests.authsvc.test_notices import notice
from tests.pages.support import Client
from tests.system import system  # noqa: F401  (the module-scoped whole system, for the page test)

WINDOW = 600  # AUTHSVC_REAUTH_SECONDS in this module


@pytest.fixture
def auth_overrides(smtp_server):
    return {"smtp_url": smtp_server[0], "reauth_seconds": WINDOW}


@pytest.fixture
def mailbox(smtp_server):
    return smtp_server[1]


async def add_email(auth, session: str, address: str, *, verify: bool, mailbox) -> None:
    await auth.accounts.AddEmail(accounts_pb2.AddEmailRequest(session_token=session, email=address, client=client()))
    if verify:
        [message] = await wait_for_mail(mailbox, address)
        await auth.accounts.VerifyEmail(accounts_pb2.VerifyEmailRequest(
            token=link_token(message, "/account/verify-email"), client=client()))


def set_primary(auth, session: str, address: str):
    return auth.accounts.SetPrimaryEmail(accounts_pb2.SetPrimaryEmailRequest(
        session_token=session, email=address, client=client("198.51.100.4")))


async def primary_of(auth, session: str) -> str:
    reply = await auth.accounts.GetAccount(accounts_pb2.GetAccountRequest(session_token=session))
    [primary] = [e.address for e in reply.emails if e.primary]
    assert reply.user.primary_email == primary
    return primary


async def test_a_verified_address_becomes_primary_and_the_old_one_is_told(auth, mailbox):
    user, alice = await make_user(auth, "alice")
    await add_email(auth, alice, "work@example.org", verify=True, mailbox=mailbox)

    reply = await set_primary(auth, alice, "Work@Example.org")

    assert [(e.address, e.primary, e.verified) for e in reply.emails] == [
        ("work@example.org", True, True), ("alice@example.org", False, True)]
    assert await primary_of(auth, alice) == "work@example.org"
    [event] = await events(auth, "account:email:primary:change")
    assert dict(event.details) == {"old_email": "alice@example.org", "new_email": "work@example.org"}
    assert event.subject_user_id == event.actor.user_id == user.id
    assert event.ip_address == "198.51.100.4"
    body = await notice(mailbox, "alice@example.org", "Your primary email address was changed", alice, PASSWORD)
    assert "'alice'" in body and "is now work@example.org" in body
    assert not [m for m in mailbox.to("work@example.org") if "primary" in m["Subject"]]

    # back again: the address that was primary is still verified, and the notice goes to work@
    await set_primary(auth, alice, "alice@example.org")
    assert await primary_of(auth, alice) == "alice@example.org"
    await notice(mailbox, "work@example.org", "Your primary email address was changed", alice)
    assert len(await events(auth, "account:email:primary:change")) == 2


@pytest.mark.parametrize(("address", "code", "reason"), [
    ("nobody@example.org", grpc.StatusCode.NOT_FOUND, "EMAIL_NOT_FOUND"),
    ("bob@example.org", grpc.StatusCode.NOT_FOUND, "EMAIL_NOT_FOUND"),  # another account's: not revealed
    ("pending@example.org", grpc.StatusCode.FAILED_PRECONDITION, "EMAIL_UNVERIFIED"),
    ("alice@example.org", grpc.StatusCode.FAILED_PRECONDITION, "EMAIL_ALREADY_PRIMARY"),
    ("not an address", grpc.StatusCode.INVALID_ARGUMENT, "EMAIL_INVALID"),
    ("", grpc.StatusCode.INVALID_ARGUMENT, "EMAIL_MISSING"),
])
async def test_refusals_change_nothing(auth, mailbox, address, code, reason):
    _, alice = await make_user(auth, "alice")
    await make_user(auth, "bob")
    await add_email(auth, alice, "pending@example.org", verify=False, mailbox=mailbox)

    err = await rpc_error(set_primary(auth, alice, address))

    assert (err.code(), reason_of(err)) == (code, reason), err.details()
    assert err.details()
    assert await primary_of(auth, alice) == "alice@example.org"
    assert await events(auth, "account:email:primary:change") == []
    await asyncio.sleep(0.2)  # a notice would have arrived by now
    assert not [m for m in mailbox.messages if "primary" in m["Subject"]]


async def test_a_stale_session_must_confirm_the_password_first(auth, mailbox):
    _, alice = await make_user(auth, "alice")
    await add_email(auth, alice, "work@example.org", verify=True, mailbox=mailbox)
    auth.clock.advance(seconds=WINDOW)

    err = await rpc_error(set_primary(auth, alice, "work@example.org"))

    assert (err.code(), reason_of(err)) == (grpc.StatusCode.PERMISSION_DENIED, "REAUTH_REQUIRED")
    assert await primary_of(auth, alice) == "alice@example.org"
    assert await events(auth, "account:email:primary:change") == []
    await auth.accounts.Reauthenticate(accounts_pb2.ReauthenticateRequest(
        session_token=alice, password=PASSWORD, client=client()))
    await set_primary(auth, alice, "work@example.org")
    assert await primary_of(auth, alice) == "work@example.org"


async def test_a_session_that_ended_is_refused(auth):
    err = await rpc_error(set_primary(auth, "not-a-session", "alice@example.org"))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_100_parallel_changes_leave_one_primary_and_one_event_each(auth, mailbox):
    """Half ask for work@, half for home@, all at once: every answer is a success or 'already
    primary', the account ends with exactly one primary address, and each success has its event."""
    _, alice = await make_user(auth, "alice")
    for address in ("work@example.org", "home@example.org"):
        await add_email(auth, alice, address, verify=True, mailbox=mailbox)

    results = await asyncio.gather(*(set_primary(auth, alice, ("work@example.org", "home@example.org")[i % 2])
                                     for i in range(100)), return_exceptions=True)

    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, grpc.aio.AioRpcError) and reason_of(r) == "EMAIL_ALREADY_PRIMARY" for r in refused), \
        {repr(r)[:200] for r in refused}
    reply = await auth.accounts.GetAccount(accounts_pb2.GetAccountRequest(session_token=alice))
    assert len([e for e in reply.emails if e.primary]) == 1
    changes = await events(auth, "account:email:primary:change")
    assert len(changes) == 100 - len(refused) >= 1
    # the changes chain: each one's old address is the previous one's new address
    chain = [(dict(e.details)["old_email"], dict(e.details)["new_email"]) for e in changes]
    assert chain[0][0] == "alice@example.org"
    assert all(prev[1] == nxt[0] for prev, nxt in zip(chain, chain[1:]))
    assert chain[-1][1] == await primary_of(auth, alice)


def primary_button(address: str) -> str:
    return f'<input type="hidden" name="email" value="{address}">'


@pytest.mark.asyncio(loop_scope="module")
async def test_the_account_page_makes_a_verified_address_primary_without_javascript(system):  # noqa: F811
    person = await system.person("prim")
    work, pending = f"work-{person.username}@example.org", f"pending-{person.username}@example.org"
    browser = Client(types.SimpleNamespace(url=system.gateway_url))
    try:
        assert (await browser.log_in(person.username))[0].status == 303
        for address in (work, pending):
            reply, _ = await browser.post("/account/emails", {"csrf_token": await browser.token("/account/"),
                                                              "email": address})
            assert reply.status == 303
        await system.accounts.VerifyEmail(accounts_pb2.VerifyEmailRequest(
            token=await system.mailbox.token(work, "verify")))

        _, page = await browser.get("/account/")
        forms = page.split('action="/account/emails/primary"')[1:]
        assert len(forms) == 1 and primary_button(work) in forms[0]  # not the primary, not the unverified one
        reply, _ = await browser.post("/account/emails/primary", {"email": work})  # no CSRF token
        assert reply.status == 403

        system.clock.advance(minutes=31)  # past the re-authentication window: the password first
        reply, _ = await browser.post("/account/emails/primary", {"csrf_token": await browser.token("/account/"),
                                                                  "email": work})
        assert reply.status == 303 and reply.headers["Location"].startswith("/account/reauth?next=")
        assert (await system.accounts.GetAccount(accounts_pb2.GetAccountRequest(
            session_token=browser.cookie("gh_session")))).user.primary_email == person.email
        reply, _ = await browser.post("/account/reauth", {"csrf_token": await browser.token("/account/reauth"),
                                                          "password": person.password, "next": "/account/"})
        assert reply.status == 303

        token = await browser.token("/account/")
        reply, page = await browser.post("/account/emails/primary", {"csrf_token": token, "email": pending})
        assert reply.status == 409 and f"Verify {pending} before making it your primary address." in page
        assert 'class="error-summary"' in page

        reply, _ = await browser.post("/account/emails/primary", {"csrf_token": token, "email": work})
        assert reply.status == 303 and reply.headers["Location"].startswith("/account/")
        _, page = await browser.get(reply.headers["Location"])
        assert f"{work} is now your primary email address." in page
        assert f'{work} <span class="badge">Primary</span>' in page and primary_button(person.email) in page

        await system.wait_for_user_event(person.user_id, "account:email:primary:change")
        _, history = await browser.get("/account/history")
        assert "Primary email address changed" in history
    finally:
        await browser.close()
