"""The real SMTP listener (aiosmtpd on loopback) the tests send mail to, and its mailbox."""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.parse
from collections.abc import Iterator

from gatehouse.infra.redis_embed import free_port

_LINK = re.compile(r"https?://\S+\?token=(\S+)")


class Mailbox:
    """Messages received by the test SMTP listener, as email.message.EmailMessage objects."""

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


@contextlib.contextmanager
def smtp_listener(mailbox: Mailbox | None = None) -> Iterator[tuple[str, Mailbox]]:
    """Run a real SMTP listener on a free loopback port while the block runs: (url, mailbox)."""
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    mailbox = Mailbox() if mailbox is None else mailbox

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            mailbox.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", mailbox
    finally:
        controller.stop()
