"""The whole system behind the account pages, for browser journeys: real authsvc, auditsvc (with its
stream consumer), the gateway, relays for both producers' outboxes, a real Redis, a real SMTP
listener, and helpers to read mail and the audit logs."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import re
import secrets

import aiohttp
import grpc
import pyotp

from gatehouse.audit.v1 import audit_pb2, audit_pb2_grpc
from gatehouse.auth.v1 import admin_pb2, admin_pb2_grpc, common_pb2
from gatehouse.infra.relay import OutboxRelay
from tests.system_parts import PASSWORD, Person, ShiftedClock

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
LINK = re.compile(r"(https?://\S+\?token=\S+)")


@dataclasses.dataclass
class System:
    url: str
    clock: ShiftedClock
    mailbox: object
    auth_running: object
    audit_running: object
    gateway: object
    operator: grpc.aio.Channel
    audit_gateway: grpc.aio.Channel
    relays: list[OutboxRelay]
    auth_settings: object
    gateway_settings: object

    @property
    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self.operator)

    @property
    def audit(self) -> audit_pb2_grpc.AuditServiceStub:
        return audit_pb2_grpc.AuditServiceStub(self.audit_gateway)

    # -- people and projects (through the real operator API) -----------------------------------------
    async def person(self, prefix: str = "u", *, verified: bool = True, password: str = PASSWORD) -> Person:
        username = f"{prefix}{secrets.token_hex(3)}"
        email = f"{username}@example.org"
        reply = await self.admin.CreateUser(admin_pb2.AdminCreateUserRequest(
            username=username, email=email, password=password, email_verified=verified))
        return Person(username=username, user_id=reply.user.id, email=email, password=password)

    async def project(self, owner: Person, name: str | None = None, *, maintainers=()) -> str:
        name = name or f"proj-{secrets.token_hex(3)}"
        await self.admin.AddRole(admin_pb2.AdminAddRoleRequest(
            project_name=name, username=owner.username, role=common_pb2.ROLE_OWNER, create_project=True))
        for person in maintainers:
            await self.admin.AddRole(admin_pb2.AdminAddRoleRequest(
                project_name=name, username=person.username, role=common_pb2.ROLE_MAINTAINER))
        return name

    async def mint(self, person: Person, projects=()) -> str:
        reply = await self.admin.MintToken(admin_pb2.AdminMintTokenRequest(
            username=person.username, description=f"minted-{secrets.token_hex(3)}",
            scope=common_pb2.TokenScope(all_projects=not projects, project_names=list(projects))))
        return reply.token

    # -- mail ------------------------------------------------------------------------------------------
    async def link_in_mail(self, address: str, subject_word: str, timeout: float = 10.0) -> str:
        """The token link of the newest message to `address` whose subject contains `subject_word`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for message in reversed(self.mailbox.to(address)):
                if subject_word.lower() in message["Subject"].lower():
                    found = LINK.search(message.get_content())
                    if found:
                        return found.group(1)
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no '{subject_word}' mail to {address}")
            await asyncio.sleep(0.05)

    # -- the audit log (through auditsvc, as the pages read it) ------------------------------------------
    async def user_tags(self, user_id: str) -> list[str]:
        reply = await self.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id=user_id, page_size=500))
        return [e.tag for e in reply.events]

    async def wait_for_user_tags(self, user_id: str, *tags: str, timeout: float = 15.0) -> list[str]:
        """Wait until every tag is in the user's log (relays and consumer run in the background)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for relay in self.relays:
                relay.notify()
            found = await self.user_tags(user_id)
            if all(tag in found for tag in tags):
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"missing {set(tags) - set(found)} in the log of {user_id}: {found}")
            await asyncio.sleep(0.1)


def totp_code(secret: str, clock: ShiftedClock) -> str:
    return pyotp.TOTP(secret.replace(" ", "")).at(clock.now())


def screenshot_path(name: str) -> pathlib.Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


async def upload(system: System, path: pathlib.Path, token: str) -> tuple[int, str]:
    """Upload one file as twine would (its exact fields), over plain HTTP: (status, reason)."""
    import aiohttp

    from tests.uploadgw.http_support import basic, encode, twine_fields

    ctype, body, tail = encode(twine_fields(path), path.name, path.read_bytes())
    async with aiohttp.ClientSession() as http:
        async with http.post(system.url.replace("localhost", "127.0.0.1") + "/legacy/", data=body + tail,
                             headers={"Content-Type": ctype, "Authorization": basic(token)}) as reply:
            return reply.status, reply.reason


TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Client:
    """A cookie-keeping HTTP client for the gateway (what a browser without JavaScript does)."""

    def __init__(self, system):
        self.base = system.url.replace("localhost", "127.0.0.1")
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self):
        await self.http.close()

    async def get(self, path: str, **kwargs):
        async with self.http.get(self.base + path, allow_redirects=False, **kwargs) as reply:
            return reply, await reply.text()

    async def post(self, path: str, data=None, **kwargs):
        async with self.http.post(self.base + path, data=data, allow_redirects=False, **kwargs) as reply:
            return reply, await reply.text()

    async def token(self, path: str) -> str:
        _, body = await self.get(path)
        return TOKEN.search(body).group(1)

    def cookie(self, name: str) -> str | None:
        for cookie in self.http.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None

    async def log_in(self, username: str, password: str = PASSWORD):
        reply, body = await self.get("/account/login")
        if reply.status == 303:  # already logged in: the login page sends us on; log in again anyway
            _, body = await self.get("/account/")
        token = TOKEN.search(body).group(1)
        return await self.post("/account/login", {"csrf_token": token, "username": username, "password": password})
