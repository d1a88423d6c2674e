"""Over plain HTTP, on a system whose authsvc uses a 5-minute re-authentication window (not PyPI's 30):
the full log for admins only (auditsvc asks authsvc about the session), and confirming the password
on the current session, following authsvc's window."""

from __future__ import annotations

import asyncio
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
import pytest_asyncio

from gatehouse.audit.v1 import audit_pb2
from gatehouse.auth.v1 import admin_pb2, common_pb2
from tests.pages.support import Client

pytestmark = pytest.mark.asyncio(loop_scope="session")

WINDOW = 300
ROW = re.compile(r'<tr data-tag="([^"]+)">(.*?)</tr>', re.S)
ACCOUNT_CELL = re.compile(r'<td data-label="Account">([^<]*)</td>')


@pytest.fixture(scope="module")
def system_auth_overrides():
    return {"reauth_seconds": WINDOW, "login_failures_per_user": 3}


@pytest_asyncio.fixture(loop_scope="session")
async def clients(system):
    made = []

    def make() -> Client:
        made.append(Client(system))
        return made[-1]

    yield make
    for c in made:
        await c.close()


def rows(body: str) -> list[tuple[str, str]]:
    """(tag, account) of each row of the log table."""
    found = []
    for tag, cells in ROW.findall(body):
        account = ACCOUNT_CELL.search(cells)
        found.append((tag, account.group(1).strip() if account else ""))
    return found


async def logged_in(system, clients, person) -> Client:
    client = clients()
    reply, _ = await client.log_in(person.username)
    assert reply.status == 303 and client.cookie("gh_session")
    return client


async def make_admin(system, person, on: bool = True) -> None:
    await system.admin.SetAdmin(admin_pb2.AdminSetAdminRequest(username=person.username, is_admin=on))


async def test_an_admin_reads_other_users_events_in_the_full_log_with_filters(system, clients):
    alice, root = await system.person("alice"), await system.person("root")
    await logged_in(system, clients, alice)
    await system.wait_for_user_tags(alice.user_id, "account:login:success")
    await make_admin(system, root)
    browser = await logged_in(system, clients, root)

    reply, body = await browser.get("/account/")
    assert reply.status == 200 and 'href="/account/admin/log"' in body
    reply, body = await browser.get("/account/admin/log")
    assert reply.status == 200 and 'aria-current="page">Full log' in body
    assert ("account:login:success", alice.username) in rows(body)

    reply, body = await browser.get(f"/account/admin/log?user={alice.username.upper()}&tag=account:login:")
    assert reply.status == 200
    found = rows(body)
    assert found and all(account == alice.username for _, account in found)
    assert all(tag.startswith("account:login:") for tag, _ in found)
    assert f'value="{alice.username.upper()}"' in body  # the filters stay in the form
    reply, body = await browser.get(f"/account/admin/log?actor=nobody-{secrets.token_hex(3)}")
    assert reply.status == 200 and not rows(body) and "No events match these filters" in body
    reply, body = await browser.get("/account/admin/log?since=2001-01-01&until=2001-01-02")
    assert reply.status == 200 and not rows(body)


async def test_the_filters_are_checked_and_tied_to_their_fields(system, clients):
    root = await system.person("root")
    await make_admin(system, root)
    browser = await logged_in(system, clients, root)
    for query, field, words in [
        ("ip=not-an-ip", "ip", "IP address such as"),
        ("since=31/12/2025", "since", "YYYY-MM-DD"),
        ("until=9999-12-31", "until", "between the years"),
        ("since=2026-05-02&until=2026-05-01", "until", "cannot be before"),
        ("tag=" + "x" * 300, "tag", "at most 200"),
        ("page=garbage", "", "page token"),
    ]:
        reply, body = await browser.get(f"/account/admin/log?{query}")
        assert reply.status == 400, query
        assert words in body and not rows(body), query
        if field:
            assert f'id="f-{field}-error"' in body and f'aria-describedby="f-{field}' in body, query
    for query in ("tag=%00", "since=%ff%fe", "user=" + "%E2%98%83" * 300, "ip=1.2.3.4%0a", "page=%00" * 600,
                  "until=9999-12-31", "since=0001-01-01"):
        reply, body = await browser.get(f"/account/admin/log?{query}")
        assert reply.status in (200, 400), (query, reply.status, body[:300])


async def test_the_older_events_link_keeps_the_filters(system, clients):
    owner, root = await system.person("owner"), await system.person("root")
    project = await system.project(owner)
    extra = []
    for i in range(52):
        user = await system.admin.CreateUser(admin_pb2.AdminCreateUserRequest(
            username=f"m{i}-{secrets.token_hex(3)}", email=f"m{i}-{secrets.token_hex(3)}@example.org"))
        extra.append(user.user.username)
        await system.admin.AddRole(admin_pb2.AdminAddRoleRequest(
            project_name=project, username=user.user.username, role=common_pb2.ROLE_MAINTAINER))
    await make_admin(system, root)
    browser = await logged_in(system, clients, root)
    wanted = f"/account/admin/log?project={project}&tag=project:role:add"
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        for relay in system.relays:
            relay.notify()
        reply, first = await browser.get(wanted)
        older = re.search(r'<a href="([^"]+)">Older events</a>', first)
        if older or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert older, "no second page"
    link = older.group(1).replace("&amp;", "&")
    params = parse_qs(urlsplit(link).query)
    assert params["project"] == [project] and params["tag"] == ["project:role:add"] and params["page"]
    _, second = await browser.get(link)
    seen = [account for _, account in rows(first) + rows(second)]
    assert len(rows(first)) == 50 and sorted(seen) == sorted(extra + [owner.username])
    assert {tag for tag, _ in rows(first) + rows(second)} == {"project:role:add"}


async def test_the_full_log_is_for_admins_only(system, clients):
    mallory = await system.person("mallory")
    browser = await logged_in(system, clients, mallory)
    reply, body = await browser.get("/account/")
    assert reply.status == 200 and "/account/admin/log" not in body
    reply, body = await browser.get("/account/admin/log")
    assert reply.status == 403 and "Only administrators" in body and not rows(body)
    # The gateway's own credential with a non-admin's session: auditsvc (asking authsvc) refuses too.
    session = browser.cookie("gh_session")
    for token, code in ((session, grpc.StatusCode.PERMISSION_DENIED), ("", grpc.StatusCode.UNAUTHENTICATED)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await system.audit.ListAllEvents(audit_pb2.ListAllEventsRequest(session_token=token))
        assert err.value.code() == code
    # An admin whose flag is taken away loses the page on the next request.
    former = await system.person("former")
    await make_admin(system, former)
    browser = await logged_in(system, clients, former)
    assert (await browser.get("/account/admin/log"))[0].status == 200
    await make_admin(system, former, on=False)
    reply, body = await browser.get("/account/admin/log")
    assert reply.status == 403 and 'href="/account/admin/log"' not in body
    reply, _ = await clients().get("/account/admin/log")  # not logged in: to the login page
    assert reply.status == 303 and reply.headers["Location"].startswith("/account/login?next=")


async def test_confirming_the_password_keeps_the_session_and_follows_authsvcs_window(system, clients):
    person = await system.person("confirm")
    browser = await logged_in(system, clients, person)
    session = browser.cookie("gh_session")
    reply, _ = await browser.get("/account/tokens/new")
    assert reply.status == 200
    system.clock.advance(seconds=WINDOW + 1)  # authsvc's window here is 5 minutes, not 30
    reply, _ = await browser.get("/account/tokens/new")
    assert reply.status == 303 and reply.headers["Location"] == "/account/reauth?next=/account/tokens/new"
    token = await browser.token("/account/reauth?next=/account/tokens/new")
    reply, body = await browser.post("/account/reauth", {"csrf_token": token, "next": "/account/tokens/new",
                                                         "password": "not the password"})
    assert reply.status == 400 and 'id="f-password-error"' in body and "incorrect" in body
    assert "not the password" not in body
    reply, _ = await browser.post("/account/reauth", {"csrf_token": token, "next": "/account/tokens/new",
                                                      "password": person.password})
    assert reply.status == 303 and reply.headers["Location"] == "/account/tokens/new"
    assert "gh_session" not in reply.cookies and browser.cookie("gh_session") == session
    reply, _ = await browser.get("/account/tokens/new")
    assert reply.status == 200
    await system.wait_for_user_tags(person.user_id, "account:reauthenticate:failure")
    tags = await system.user_tags(person.user_id)
    assert tags.count("account:login:success") == 1  # no second login happened


async def test_wrong_passwords_at_the_confirmation_count_like_failed_logins(system, clients):
    person = await system.person("limited")
    browser = await logged_in(system, clients, person)
    system.clock.advance(seconds=WINDOW)
    token = await browser.token("/account/reauth?next=/account/tokens/new")
    for _ in range(system.auth_settings.login_failures_per_user):
        reply, _ = await browser.post("/account/reauth", {"csrf_token": token, "password": "wrong guess"})
        assert reply.status == 400
    reply, body = await browser.post("/account/reauth", {"csrf_token": token, "password": person.password})
    assert reply.status == 429 and int(reply.headers["Retry-After"]) > 0 and 'id="f-password-error"' in body
    reply, _ = await browser.get("/account/tokens/new")
    assert reply.status == 303 and "/account/reauth" in reply.headers["Location"]
