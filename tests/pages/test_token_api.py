"""Creating API tokens from tooling (`POST /api/tokens`, JSON) and from the token page, with the
expiry policy and the IP-network and release-version restrictions, over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets

import pytest
import pytest_asyncio

from tests.pages.support import PASSWORD, Client

pytestmark = pytest.mark.asyncio(loop_scope="session")
WINDOW = 300


@pytest.fixture(scope="module")
def system_auth_overrides():
    return {"reauth_seconds": WINDOW, "token_expiry_sweep_seconds": 0}


@pytest_asyncio.fixture(loop_scope="session")
async def client(system):
    c = Client(system)
    yield c
    await c.close()


async def api(client: Client, body, *, headers=None):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    reply, text = await client.post("/api/tokens", raw, headers={"Content-Type": "application/json",
                                                                 **(headers or {})})
    assert reply.headers["Content-Type"].startswith("application/json"), text[:200]
    assert reply.headers["Cache-Control"] == "no-store"
    return reply.status, json.loads(text)


async def test_tooling_creates_a_project_scoped_token(system, client):
    person = await system.person("api")
    project = await system.project(person)
    status, body = await api(client, {"description": "ci", "projects": [project]})
    assert (status, body["error"]) == (401, "session_required")  # no session cookie: nothing made
    await client.log_in(person.username)
    status, body = await api(client, {"description": "ci", "projects": [project], "networks": ["192.0.2.0/24"],
                                      "release_version": "1.0.0"})
    assert status == 201, body
    assert body["token"].startswith("pypi-") and body["projects"] == [project] and not body["all_projects"]
    assert body["networks"] == ["192.0.2.0/24"] and body["release_version"] == "1.0.0"
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert dt.timedelta(days=89) < expires - system.clock.now() <= dt.timedelta(days=90)
    _, page = await client.get("/account/tokens")
    assert "ci" in page and "from 192.0.2.0/24" in page and "release 1.0.0 only" in page
    assert body["token"] not in page

    status, body = await api(client, {"description": "ci", "projects": [project]})
    assert (status, body["error"], body["field"]) == (409, "description_taken", "description")
    far = (system.clock.now() + dt.timedelta(days=400)).date().isoformat()
    status, body = await api(client, {"description": "far", "expires": far})
    assert (status, body["error"], body["field"]) == (400, "expiry_too_far", "expires")
    assert "at most 365 days" in body["message"]
    status, body = await api(client, {"description": "net", "networks": ["10.0.0.1/8"]})
    assert (status, body["error"], body["field"]) == (400, "network_invalid", "networks")


async def test_the_api_sits_behind_re_authentication(system, client):
    person = await system.person("reauth")
    await client.log_in(person.username)
    system.clock.advance(seconds=WINDOW + 1)
    status, body = await api(client, {"description": "late"})
    assert (status, body["error"]) == (403, "reauth_required") and '"password"' in body["message"]
    status, body = await api(client, {"description": "late", "password": "not the password"})
    assert 400 <= status < 500 and body.get("field") == "password", body
    status, body = await api(client, {"description": "late", "password": PASSWORD})
    assert status == 201 and body["all_projects"]
    status, body = await api(client, {"description": "again"})  # the password was just confirmed
    assert status == 201


async def test_cross_site_and_malformed_requests_are_refused(system, client):
    person = await system.person("csrf")
    await client.log_in(person.username)
    reply, text = await client.post("/api/tokens", {"description": "form"})  # an HTML form's encoding
    assert reply.status == 415 and json.loads(text)["message"].startswith("Send the request body as JSON")
    status, body = await api(client, {"description": "evil"}, headers={"Origin": "https://evil.example"})
    assert (status, body["error"]) == (403, "cross_origin")
    for raw, message in [(b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"),
                         (json.dumps({"description": 5}), "'description' must be a string"),
                         (json.dumps({"description": "x", "projects": "p"}), "'projects' must be a list"),
                         (b"{\"description\": \"" + b"x" * 20000 + b"\"}", "too large")]:
        status, body = await api(client, raw)
        assert 400 <= status < 500 and message in body["message"], (raw[:40], body)
    _, page = await client.get("/account/tokens")
    assert "evil" not in page and "form" not in page.split("<h1>", 1)[1].split("</table>", 1)[0]


async def test_the_token_page_offers_networks_and_a_release_version(system, client):
    person = await system.person("page")
    await client.log_in(person.username)
    new = await client.token("/account/tokens/new")
    _, form = await client.get("/account/tokens/new")
    assert 'name="networks"' in form and 'name="release_version"' in form
    reply, body = await client.post("/account/tokens/new", {
        "csrf_token": new, "description": "bad", "scope": "all", "networks": "192.0.2.0/24, 2001:db8::1/32"})
    assert reply.status == 400 and 'id="f-networks-error"' in body and "2001:db8::1/32" in body
    reply, body = await client.post("/account/tokens/new", {
        "csrf_token": new, "description": "bad", "scope": "all", "release_version": "1.0+local"})
    assert reply.status == 400 and 'id="f-release_version-error"' in body
    name = f"restricted-{secrets.token_hex(2)}"
    reply, body = await client.post("/account/tokens/new", {
        "csrf_token": new, "description": name, "scope": "all", "networks": "192.0.2.0/24 2001:db8::/32",
        "release_version": "2.0"})
    assert reply.status == 200, body[:500]
    assert "from 192.0.2.0/24, 2001:db8::/32 only" in body and "release 2.0 only" in body and ", until " in body


async def test_a_token_ending_is_in_its_owners_log_and_its_projects_log(system):
    """Last in the module: it moves the system's clock past the tokens' lifetime."""
    from gatehouse.audit.v1 import audit_pb2

    person = await system.person("ends")
    project = await system.project(person)
    await system.mint(person, projects=[project])
    system.clock.advance(days=91)
    assert (await system.auth_running.app.expiry.run_once()).expired >= 1
    await system.wait_for_user_tags(person.user_id, "account:api_token:expired")
    project_id = (await system.auth_running.app.projects.get_project(project)).id
    for _ in range(100):
        reply = await system.audit.ListProjectEvents(audit_pb2.ListProjectEventsRequest(project_id=project_id,
                                                                                        page_size=100))
        if "project:api_token:expired" in [e.tag for e in reply.events]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("no project:api_token:expired in the project's log")
