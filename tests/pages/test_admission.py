"""A burst of logins on the account pages beyond what the auth service's hashing queue admits:
the overflow gets 429 with Retry-After and the login page saying to try again, at once."""

from __future__ import annotations

import asyncio
import re

import pytest
import pytest_asyncio

from tests.pages.support import PASSWORD, TOKEN, Client

pytestmark = pytest.mark.asyncio(loop_scope="session")

BURST = 30


@pytest.fixture(scope="module")
def system_auth_overrides():
    return {"hash_workers": 1, "hash_queue": 1, "argon2_time_cost": 6,
            "login_failures_per_ip": 1000, "login_failures_per_user": 1000}


@pytest_asyncio.fixture(loop_scope="session")
async def clients(system):
    made = [Client(system) for _ in range(BURST)]
    yield made
    for c in made:
        await c.close()


async def test_a_login_burst_gets_429_with_retry_after_and_a_readable_page(system, clients):
    person = await system.person("burst")
    tokens = [TOKEN.search((await c.get("/account/login"))[1]).group(1) for c in clients]

    replies = await asyncio.gather(*(
        c.post("/account/login", {"csrf_token": token, "username": person.username, "password": PASSWORD})
        for c, token in zip(clients, tokens)))

    statuses = [reply.status for reply, _ in replies]
    assert set(statuses) <= {303, 429}, statuses
    assert statuses.count(303) >= 2 and statuses.count(429) >= BURST // 2, statuses
    for reply, body in replies:
        if reply.status != 429:
            continue
        assert int(reply.headers["Retry-After"]) >= 1
        assert reply.headers["Content-Type"].startswith("text/html")
        assert "<h1>Log in</h1>" in body
        error = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))
        assert "The service is busy right now (too many logins at once). Try again in" in error
        assert f'value="{person.username}"' in body  # the form keeps what was typed (never the password)
    # Afterwards the same browsers log in.
    reply, _ = await clients[0].log_in(person.username)
    assert reply.status == 303
