"""Security notices: mails sent after a change committed, and their text (never a secret in them).

PyPI mails these; so does Gatehouse: password changed, email added (to the primary address, the
new one gets its verification link), email made primary (to the old primary address only), API
token created or about to expire, added to or removed from a project (to the collaborator, and to
the project's other Owners as PyPI does), project deleted (to its Owners). The change never waits
for the relay: `Notifier.send_later` hands the messages to a background task, and a delivery
failure is logged (cause, never the body).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Protocol

from authsvc.mail import Mailer, Message

log = logging.getLogger(__name__)
MAX_PENDING = 1000  # messages queued for delivery; past it new notices are dropped (and logged)


class _Address(Protocol):
    address: str
    primary: bool
    verified: bool


def notice_address(emails: Iterable[_Address]) -> str:
    """Where a user's notices go: the primary address once verified ("" otherwise: nobody is mailed
    at an address its owner never proved, as PyPI)."""
    return next((e.address for e in emails if e.primary and e.verified), "")


class Notifier:
    """Delivers notices in the background after the change that caused them committed."""

    def __init__(self, mailer: Mailer, *, public_url: str):
        self.mailer = mailer
        self.public_url = public_url.rstrip("/")
        self._tasks: set[asyncio.Task[bool]] = set()

    def send_later(self, messages: list[Message], *, purpose: str, user_id: str = "") -> None:
        messages = [m for m in messages if m.to]
        if not messages:
            return
        if len(self._tasks) >= MAX_PENDING:
            log.error("notice dropped: too many pending", extra={"purpose": purpose, "user_id": user_id})
            return
        task = asyncio.get_running_loop().create_task(self.deliver(messages, purpose=purpose, user_id=user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(self, messages: list[Message], *, purpose: str, user_id: str = "") -> bool:
        """Send now; True when every message was accepted (a failure is logged, never raised)."""
        delivered = True
        for message in messages:
            try:
                await self.mailer.send(message)
            except Exception as exc:  # noqa: BLE001 - the committed change stands; the cause is logged
                delivered = False
                log.error("notice not delivered", extra={"purpose": purpose, "user_id": user_id,
                                                         "subject": message.subject, "error": str(exc)[:200]})
        return delivered

    async def close(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    # -- the texts ---------------------------------------------------------------------------------

    def _footer(self, what: str) -> str:
        return (f"\nIf this was not you, change your password now at {self.public_url}/account/ and review "
                f"{what}.\n")

    def password_changed(self, *, to: str, username: str) -> Message:
        return Message(to=to, subject="Your password was changed", body=(
            f"Hello {username},\n\nThe password of the account {username!r} was changed. Every other "
            "session of the account was logged out.\n" + self._footer("your account's security history")))

    def email_added(self, *, to: str, username: str, added: str) -> Message:
        return Message(to=to, subject="An email address was added to your account", body=(
            f"Hello {username},\n\nThe address {added} was added to the account {username!r}. It stays "
            "unverified until someone opens the link mailed to it.\n"
            + self._footer("your account's email addresses")))

    def primary_email_changed(self, *, to: str, username: str, new: str) -> Message:
        """To the address that WAS primary: from now on notices and password resets go to `new`."""
        return Message(to=to, subject="Your primary email address was changed", body=(
            f"Hello {username},\n\nThe primary email address of the account {username!r} is now {new}. "
            "Security notices and password reset links go there from now on; this address stays on the "
            "account.\n" + self._footer("your account's email addresses")))

    def token_created(self, *, to: str, username: str, description: str, scope: str,
                      expires_at: dt.datetime) -> Message:
        return Message(to=to, subject="An API token was created for your account", body=(
            f"Hello {username},\n\nThe API token {description!r} ({scope}) was created for the account "
            f"{username!r}. It can upload until {_when(expires_at)}.\n"
            + self._footer(f"your API tokens at {self.public_url}/account/tokens")))

    def token_expiring(self, *, to: str, username: str, description: str, expires_at: dt.datetime) -> Message:
        return Message(to=to, subject=f"Your API token {description!r} expires soon", body=(
            f"Hello {username},\n\nThe API token {description!r} of the account {username!r} expires at "
            f"{_when(expires_at)}; after that, uploads with it are refused. If you still need it, create a "
            f"new token at {self.public_url}/account/tokens and put it where the old one is used.\n"))

    def token_revoked(self, *, to: str, username: str, description: str, project: str, by: str) -> Message:
        """An Owner of `project` revoked a token of `username` that could reach it."""
        return Message(to=to, subject=f"Your API token {description!r} was revoked", body=(
            f"Hello {username},\n\nThe API token {description!r} of the account {username!r} was revoked by {by}, "
            f"an Owner of the project {project!r}, which it could upload to; it no longer works for any project. "
            f"If you still need one, create a new token at {self.public_url}/account/tokens (or publish "
            f"{project!r} with its trusted publisher).\n"))

    def role_changed(self, *, to: str, recipient: str, username: str, project: str, role: str, by: str,
                     added: bool) -> Message:
        """To the collaborator (`recipient == username`) or to one of the project's other Owners."""
        verb, prep = ("added", "to") if added else ("removed", "from")
        if recipient == username:
            subject = f"You were {verb} {prep} the project {project!r}"
            text = f"You were {verb} {prep} the project {project!r}" + (f" as {role}" if added else "")
        else:
            subject = f"A collaborator was {verb} {prep} the project {project!r}"
            text = (f"{username!r} was {verb} {prep} the project {project!r}" + (f" as {role}" if added else "")
                    + ". You are receiving this because you are an Owner of this project")
        return Message(to=to, subject=subject, body=(
            f"Hello {recipient},\n\n{text}, by {by}.\n" + self._footer(f"the project at {self.public_url}"
                                                                     f"/account/projects/{project}")))

    def project_deleted(self, *, to: str, recipient: str, project: str, by: str) -> Message:
        return Message(to=to, subject=f"The project {project!r} was deleted", body=(
            f"Hello {recipient},\n\nThe project {project!r}, of which you were an Owner, was deleted by {by}, "
            "with its releases and files, and the API tokens scoped only to it.\n"
            + self._footer("your projects")))


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
