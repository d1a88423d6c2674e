"""Fixtures for the account pages: one headless Chromium per session (Debian's, driven by
Playwright; never a downloaded browser) and one whole system per test module.

Every test in tests/pages runs on the session's event loop (`pytestmark` in each module), because
the browser and the module's servers live across tests.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import uuid

import pytest
import pytest_asyncio

import authsvc.db
import uploadgw.models
from auditsvc.server import create_server as create_audit
from authsvc.server import create_server as create_auth
from gatehouse.infra.db import make_engine, make_session_factory
from gatehouse.infra.grpcserver import open_channel
from gatehouse.infra.redis_embed import free_port
from tests import eventkeys
from gatehouse.infra.relay import OutboxRelay
from tests.auditsvc.conftest import audit_settings
from tests.authsvc.conftest import auth_settings
from tests.conftest import Databases
from tests.pages.support import ShiftedClock, System
from tests.smtp import smtp_listener
from uploadgw.server import start as start_gateway
from uploadgw.settings import Settings as GatewaySettings

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP localhost 127.0.0.1"]


def chromium_path() -> str:
    for candidate in (os.environ.get("GATEHOUSE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    pytest.fail("The account page tests need Chromium: install Debian's package (apt-get install chromium) or "
                "set GATEHOUSE_CHROMIUM to its executable.")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser():
    """One Chromium for the whole session; each test opens fresh contexts (own cookies and storage)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                                    args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture(scope="module")
def module_database_url(tmp_path_factory):
    """Like `make_database_url`, for databases that live as long as the module's system."""
    databases = Databases(tmp_path_factory.mktemp("pages-db"), prefix="gh_pages")
    yield databases.make
    databases.drop_all()


@pytest.fixture(scope="module")
def module_smtp():
    """A real SMTP listener (aiosmtpd) for the module: (url, mailbox)."""
    with smtp_listener() as (url, mailbox):
        yield url, mailbox


@pytest.fixture(scope="module")
def system_auth_overrides():
    """Override in a test module to change the auth service's settings for that module's system."""
    return {}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def system(module_database_url, module_smtp, redis_server, tmp_path_factory, system_auth_overrides):
    """authsvc + auditsvc (consuming the stream; asking authsvc about admin sessions) + the gateway +
    relays, browsed at http://localhost:PORT."""
    clock = ShiftedClock()
    port = free_port()
    url = f"http://localhost:{port}"
    stream = f"gatehouse:pages:{uuid.uuid4().hex[:8]}"
    smtp_url, mailbox = module_smtp
    async with contextlib.AsyncExitStack() as stack:
        a_settings = auth_settings(module_database_url("authsvc"), **{
            **dict(smtp_url=smtp_url, public_url=url, webauthn_rp_id="localhost", webauthn_origins=(url,),
                   relay_enabled=False),
            **system_auth_overrides})
        auth = await create_auth(a_settings, clock=clock, migrate_first=True)
        stack.push_async_callback(auth.stop, 0)
        d_settings = audit_settings(module_database_url("auditsvc"), consumer_enabled=True,
                                    redis_url=redis_server.url, event_stream=stream, block_ms=50,
                                    consumer_name=f"pages-{port}", authsvc_target=f"127.0.0.1:{auth.port}",
                                    authsvc_key=a_settings.audit_key, event_keys=eventkeys.ACCEPTED)
        audit = await create_audit(d_settings, clock=clock, migrate_first=True)
        stack.push_async_callback(audit.stop, 0)
        g_settings = GatewaySettings(
            database_url=module_database_url("uploadgw"), storage_dir=str(tmp_path_factory.mktemp("store")),
            authsvc_target=f"127.0.0.1:{auth.port}", authsvc_key=a_settings.gateway_key, listen_host="127.0.0.1",
            listen_port=port, auth_timeout=5.0, sweep_interval_seconds=0, access_log=False, fsync=False,
            public_url=url, session_key=secrets.token_urlsafe(32), auditsvc_target=f"127.0.0.1:{audit.port}",
            auditsvc_key=d_settings.gateway_key, event_keys=eventkeys.producer_keys("uploadgw"))
        gateway = await start_gateway(g_settings, clock=clock, migrate_first=True)
        stack.push_async_callback(gateway.stop)
        auth_engine = make_engine(a_settings.database_url)
        stack.push_async_callback(auth_engine.dispose)
        relays = [
            OutboxRelay(make_session_factory(auth_engine), authsvc.db.outbox, redis_server.url, stream,
                        poll_interval=0.05, clock=clock, name="pages-authsvc"),
            OutboxRelay(gateway.gateway.db, uploadgw.models.outbox, redis_server.url, stream, poll_interval=0.05,
                        clock=clock, name="pages-uploadgw"),
        ]
        for relay in relays:
            relay.start()
            stack.push_async_callback(relay.stop)
        operator = open_channel(f"127.0.0.1:{auth.port}", a_settings.operator_key)
        stack.push_async_callback(operator.close)
        audit_gateway = open_channel(f"127.0.0.1:{audit.port}", d_settings.gateway_key)
        stack.push_async_callback(audit_gateway.close)
        yield System(url=url, clock=clock, mailbox=mailbox, auth_running=auth, audit_running=audit,
                     gateway=gateway, operator=operator, audit_gateway=audit_gateway, relays=relays,
                     auth_settings=a_settings, gateway_settings=g_settings)


@pytest_asyncio.fixture(loop_scope="session")
async def new_context(browser, system):
    """`await new_context(phone=False, js=True)`: a fresh browser context on the system's URL."""
    made = []

    async def make(*, phone: bool = False, js: bool = True):
        options = dict(base_url=system.url, java_script_enabled=js, locale="en-GB", timezone_id="UTC")
        if phone:
            options.update(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                           has_touch=True)
        else:
            options.update(viewport={"width": 1280, "height": 900})
        context = await browser.new_context(**options)
        context.set_default_timeout(15_000)
        made.append(context)
        return context

    yield make
    for context in made:
        await context.close()
