"""`gatehouse audit …` as a real subprocess against the whole system (authsvc -> relay -> Redis ->
auditsvc): the user, project and full logs, filters, `--json`, `--follow`, and the exit codes."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
import signal
import uuid

import pytest
import pytest_asyncio

from gatehouse.auth.v1 import accounts_pb2, common_pb2, projects_pb2
from gatehouse.infra.redis_embed import free_port
from tests.cli.support import run_cli, start_cli
from tests.system import Person, client

pytestmark = pytest.mark.asyncio(loop_scope="module")
SYSTEM_OPTIONS = {"with_gateway": False}
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ  [a-z_:]+  by=\S+")
# A user agent that tries to forge a second log line (CR/LF, a Unicode line separator, a bidi override).
FORGING_UA = "evil/1\r\n2020-01-01 00:00:00Z  account:login:success  by=root\u2028x\u202eyz"


@dataclasses.dataclass
class Scene:
    alice: Person
    bob: Person
    project: str
    project_id: str
    other_project: str
    alice_session: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(system) -> Scene:
    """Alice and Bob, a project each, a login with a forging user agent, a failed login, a token."""
    alice, bob = await system.person("alice"), await system.person("bob")
    project, project_id = await system.project(alice)
    other_project, _ = await system.project(bob)
    reply = await system.accounts.Login(accounts_pb2.LoginRequest(
        username=alice.username, password=alice.password, client=client("198.51.100.7", FORGING_UA)))
    await system.failed_login(alice, ip="198.51.100.8")
    await system.session(bob, ip="203.0.113.9")
    await system.create_token(reply.session_token, "alice ci", projects=[project], ip="198.51.100.7")
    await system.settle()
    return Scene(alice, bob, project, project_id, other_project, reply.session_token)


async def audit(system, *args: str, **env: str):
    return await run_cli(system.cli_env(**env), "audit", *args)


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


async def test_user_log_human_lines(system, scene):
    rc, out, err = await audit(system, "user", scene.alice.username)
    assert rc == 0, err
    expected = await system.user_events(scene.alice.user_id)
    lines = out.splitlines()
    assert len(lines) == len(expected) and all(LINE.match(line) for line in lines), out
    assert "\r" not in out and "\u2028" not in out and "\u202e" not in out
    login = next(line for line in lines if "account:login:success" in line and "198.51.100.7" in line)
    assert f"by={scene.alice.username}" in login and f"user={scene.alice.username}" in login
    assert "method=password" in login and "2020-01-01 00:00:00Z" in login  # the forgery stays inside its line
    failure = next(line for line in lines if "account:login:failure" in line)
    assert "by=anonymous" in failure and "ip=198.51.100.8" in failure
    token = next(line for line in lines if "account:api_token:added" in line)
    assert f'scope="projects: {scene.project}"' in token  # the user's own log shows the scope
    assert scene.bob.username not in out and scene.other_project not in out


async def test_user_log_json_by_id_matches_the_service(system, scene):
    rc, out, _ = await audit(system, "user", scene.alice.user_id, "--json", "--limit", "0")
    assert rc == 0
    events = json_lines(out)
    expected = await system.user_events(scene.alice.user_id)
    assert [e["event_id"] for e in events] == [e.event_id for e in expected]
    for event in events:
        assert scene.alice.user_id in (event["subject_user_id"], event["actor"]["user_id"])
        assert event["occurred_at"].endswith("Z")
    forged = next(e for e in events if e["ip_address"] == "198.51.100.7" and e["tag"] == "account:login:success")
    assert "\n" not in forged["user_agent"] and "2020-01-01" in forged["user_agent"]
    rc, out, _ = await audit(system, "user", scene.alice.username, "--json", "--limit", "2")
    assert rc == 0 and [e["event_id"] for e in json_lines(out)] == [e.event_id for e in expected[:2]]


async def test_user_not_found_and_unknown_id(system, scene):
    (rc_name, _, err_name), (rc_id, out_id, err_id) = await asyncio.gather(
        audit(system, "user", "nobody-" + uuid.uuid4().hex[:6]),
        audit(system, "user", str(uuid.uuid4())))
    assert rc_name == 3 and "no user named" in err_name
    assert rc_id == 0 and out_id == "" and "no events" in err_id


async def test_project_log_by_name_and_id(system, scene):
    (rc, out, err), (rc_id, out_id, _) = await asyncio.gather(
        audit(system, "project", scene.project, "--json"), audit(system, "project", scene.project_id, "--json"))
    assert rc == 0 and rc_id == 0, err
    events = json_lines(out)
    assert events == json_lines(out_id)
    assert {"project:create", "project:role:add", "project:api_token:added"} <= {e["tag"] for e in events}
    assert all(e["project_id"] == scene.project_id for e in events)
    assert scene.other_project not in out and scene.bob.username not in out
    token = next(e for e in events if e["tag"] == "project:api_token:added")
    assert not any("scope" in key for key in token["details"]) and token["details"]["username"] == scene.alice.username


async def test_project_errors(system, scene):
    (rc_gone, _, err_gone), (rc_bad, _, err_bad) = await asyncio.gather(
        audit(system, "project", "no-such-project-" + uuid.uuid4().hex[:6]),
        audit(system, "project", "not a name!"))
    assert rc_gone == 3 and "audit all --project" in err_gone
    assert rc_bad == 2 and err_bad.startswith("gatehouse: error:")


async def test_full_log_filters(system, scene):
    failures, logins, bob_only, limited, nothing, by_project = await asyncio.gather(
        audit(system, "all", "--tag", "account:login:failure", "--ip", "198.51.100.8", "--json"),
        audit(system, "all", "--tag-prefix", "account:login:", "--actor", scene.alice.username, "--json"),
        audit(system, "all", "--user", scene.bob.user_id, "--json"),
        audit(system, "all", "--limit", "1"),
        audit(system, "all", "--until", "1h"),
        audit(system, "all", "--project", scene.project.upper(), "--tag", "project:api_token:added", "--json"))
    events = json_lines(failures[1])
    assert [(e["tag"], e["subject_user_id"], e["actor"]["kind"]) for e in events] == [
        ("account:login:failure", scene.alice.user_id, "ANONYMOUS")]
    events = json_lines(logins[1])
    assert events and {e["tag"] for e in events} == {"account:login:success"}
    assert all(e["actor"]["username"] == scene.alice.username for e in events)
    events = json_lines(bob_only[1])
    assert events and all(e["subject_user_id"] == scene.bob.user_id for e in events)
    assert {"account:create", "account:login:success", "project:create"} <= {e["tag"] for e in events}
    assert limited[0] == 0 and len(limited[1].splitlines()) == 1 and LINE.match(limited[1])
    assert nothing[0] == 0 and nothing[1] == "" and "no events" in nothing[2]
    events = json_lines(by_project[1])
    assert [e["project_id"] for e in events] == [scene.project_id]


async def test_time_window(system, scene):
    now = system.clock.now()
    recent, future, bad, follow_until = await asyncio.gather(
        audit(system, "user", scene.alice.username, "--since", "1h", "--until",
              (now + dt.timedelta(minutes=5)).isoformat(), "--json"),
        audit(system, "user", scene.alice.username, "--since", (now + dt.timedelta(days=1)).strftime("%Y-%m-%d")),
        audit(system, "all", "--since", "yesterday"),
        audit(system, "all", "--follow", "--until", "1h"))
    assert len(json_lines(recent[1])) == len(await system.user_events(scene.alice.user_id))
    assert future[0] == 0 and future[1] == ""
    assert bad[0] == 2 and "not a time" in bad[2]
    assert follow_until[0] == 2 and "--follow" in follow_until[2]


async def test_credentials_and_reachability(system, scene):
    no_key, gateway_key, unreachable, no_auth_key, by_id_without_auth, by_id_auth_down = await asyncio.gather(
        audit(system, "all", AUDITSVC_OPERATOR_KEY=""),
        # The gateway's credential may read user logs but not the full log.
        audit(system, "all", "--json", AUDITSVC_OPERATOR_KEY=system.audit_settings.gateway_key),
        audit(system, "all", GATEHOUSE_AUDITSVC_TARGET=f"127.0.0.1:{free_port()}", GATEHOUSE_CLI_TIMEOUT="2"),
        audit(system, "user", scene.alice.username, AUTHSVC_OPERATOR_KEY=""),
        audit(system, "user", scene.alice.user_id, "--limit", "1", AUTHSVC_OPERATOR_KEY=""),
        audit(system, "user", scene.alice.user_id, "--limit", "1", GATEHOUSE_CLI_TIMEOUT="2",
              GATEHOUSE_AUTHSVC_TARGET=f"127.0.0.1:{free_port()}"))
    assert no_key[0] == 2 and "AUDITSVC_OPERATOR_KEY" in no_key[2]
    assert gateway_key[0] == 5 and json.loads(gateway_key[1])["status"] == "PERMISSION_DENIED"
    assert unreachable[0] == 7
    assert no_auth_key[0] == 2 and "AUTHSVC_OPERATOR_KEY" in no_auth_key[2]
    assert by_id_without_auth[0] == 0 and len(by_id_without_auth[1].splitlines()) == 1
    assert by_id_auth_down[1] == by_id_without_auth[1]  # an id needs no lookup, even with authsvc down


async def read_json_line(proc, timeout: float = 15.0) -> dict:
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    assert line, (await proc.stderr.read()).decode()
    return json.loads(line)


async def test_follow_user_log_until_interrupted(system, scene):
    """`--follow` prints the backlog, then new events of the user (as subject or as actor, once
    each, nobody else's), and ends cleanly on Ctrl-C."""
    await system.settle()
    backlog = await system.user_events(scene.alice.user_id)
    proc = await start_cli(system.cli_env(), "audit", "user", scene.alice.username, "--follow", "--json",
                           "--since", "1h")
    try:
        seen = [await read_json_line(proc) for _ in backlog]
        assert sorted(e["event_id"] for e in seen) == sorted(e.event_id for e in backlog)
        await system.session(scene.bob, ip="203.0.113.10")  # not Alice's: must not show
        await system.projects.AddRole(projects_pb2.AddRoleRequest(  # Alice acts on Bob: actor only
            session_token=scene.alice_session, project_name=scene.project, username=scene.bob.username,
            role=common_pb2.ROLE_MAINTAINER, client=client("198.51.100.7")))
        await system.session(scene.alice, ip="198.51.100.20")
        new = [await read_json_line(proc) for _ in range(2)]
        assert sorted(e["tag"] for e in new) == ["account:login:success", "project:role:add"]
        role = next(e for e in new if e["tag"] == "project:role:add")
        assert role["actor"]["user_id"] == scene.alice.user_id and role["subject_user_id"] == scene.bob.user_id
        await system.failed_login(scene.alice, ip="198.51.100.21")
        assert (await read_json_line(proc))["tag"] == "account:login:failure"  # nothing of Bob's came before it
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        rc = await asyncio.wait_for(proc.wait(), 15)
    err = (await proc.stderr.read()).decode()
    assert rc == 0 and "Traceback" not in err, err


async def test_follow_full_log_with_filter_and_limit(system, scene):
    carol = await system.person("carol")
    proc = await start_cli(system.cli_env(), "audit", "all", "--follow", "--tag", "account:login:success",
                           "--user", carol.username, "--limit", "2", "--since", "10m")
    for ip in ("192.0.2.50", "192.0.2.51", "192.0.2.52"):
        await system.session(carol, ip=ip)
    await system.session(scene.bob)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    lines = out.decode().splitlines()
    assert proc.returncode == 0, err
    assert len(lines) == 2 and all(LINE.match(line) and f"user={carol.username}" in line for line in lines)
