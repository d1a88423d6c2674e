"""Parts of the whole-system harnesses (tests/system.py, tests/pages): a clock that tests move
forward, the people they create, databases that live as long as the system, and a real SMTP
listener with a mailbox."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid

from tests.conftest import TEST_DB, _pg_admin_url, _pg_exec, _run_sync
from tests.smtp import Mailbox, smtp_listener

PASSWORD = "correct horse battery staple"


class ShiftedClock:
    """The real time plus an offset that only moves forward (TOTP steps, expiry and
    re-authentication windows)."""

    def __init__(self):
        self.offset = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset

    def advance(self, seconds: float = 0, **kwargs) -> dt.datetime:
        self.offset += dt.timedelta(seconds=seconds, **kwargs)
        return self.now()


@dataclasses.dataclass
class Person:
    username: str
    user_id: str
    email: str
    password: str = PASSWORD


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


def start_smtp(stack: contextlib.AsyncExitStack, mailbox: Mailbox) -> str:
    """Start a real SMTP listener delivering to `mailbox`, stopped when `stack` closes; its URL."""
    url, _ = stack.enter_context(smtp_listener(mailbox))
    return url
