"""Parts of the whole-system harnesses (tests/system.py, tests/pages): a clock that tests move
forward, the people they create, databases that live as long as the system, and a real SMTP
listener with a mailbox."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt

from tests.conftest import Databases  # noqa: F401  (re-exported for the harnesses)
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


def start_smtp(stack: contextlib.AsyncExitStack, mailbox: Mailbox) -> str:
    """Start a real SMTP listener delivering to `mailbox`, stopped when `stack` closes; its URL."""
    url, _ = stack.enter_context(smtp_listener(mailbox))
    return url
