"""Parts of the whole-system harness (tests/system.py): a clock that tests move forward, databases
that live as long as the system, and a real SMTP listener with a mailbox."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import urllib.parse
import uuid

from gatehouse.infra.redis_embed import free_port
from tests.conftest import TEST_DB, _pg_admin_url, _pg_exec, _run_sync

_LINK = re.compile(r"https?://\S+\?token=(\S+)")


class ShiftedClock:
    """The real time plus an offset that only moves forward (TOTP steps, expiry windows)."""

    def __init__(self):
        self.offset = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset

    def advance(self, seconds: float = 0, **kwargs) -> dt.datetime:
        self.offset += dt.timedelta(seconds=seconds, **kwargs)
        return self.now()


class Databases:
    """Fresh databases that live as long as the system (SQLite files, or PostgreSQL databases
    on the GATEHOUSE_TEST_DB server, dropped at `drop_all`)."""

    def __init__(self, directory):
        self.directory = directory
        self.created: list[str] = []

    def make(self, label: str) -> str:
        if TEST_DB == "sqlite":
            return f"sqlite:///{self.directory / label}-{uuid.uuid4().hex[:8]}.sqlite3"
        name = f"gh_sys_{label}_{uuid.uuid4().hex[:10]}"
        _run_sync(_pg_exec(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return f"{_pg_admin_url().rsplit('/', 1)[0]}/{name}"

    def drop_all(self) -> None:
        for name in self.created:
            with contextlib.suppress(Exception):
                _run_sync(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Mailbox:
    """Messages received by the system's SMTP listener."""

    def __init__(self):
        self.messages = []

    def to(self, address: str) -> list:
        return [m for m in self.messages if address.lower() in m["To"].lower()]

    async def token(self, address: str, subject_word: str, *, after: int = 0, timeout: float = 10.0) -> str:
        """The token in the link of the first message to `address` (from index `after`) whose
        subject contains `subject_word`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for message in self.to(address)[after:]:
                if subject_word.lower() in message["Subject"].lower():
                    found = _LINK.search(message.get_content())
                    if found:
                        return urllib.parse.unquote(found.group(1))
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {subject_word!r} mail to {address}")
            await asyncio.sleep(0.02)


def start_smtp(stack: contextlib.AsyncExitStack, mailbox: Mailbox) -> str:
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            mailbox.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    stack.callback(controller.stop)
    return f"smtp://127.0.0.1:{port}"
