"""Outgoing mail: SMTP in production, a file mailbox (one .eml per message) on the embedded default.

Callers build a `Message` and `await mailer.send(message)`. Senders raise `MailError` on failure
with a message that names the cause but never the body (bodies carry single-use tokens).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.message
import email.utils
import logging
import os
import pathlib
import smtplib
import ssl
import time
import uuid
from typing import Protocol
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Message:
    to: str
    subject: str
    body: str


class MailError(Exception):
    """Delivery failed. The text names the cause, never the message body."""


class Mailer(Protocol):
    async def send(self, message: Message) -> None: ...


def build_email(message: Message, sender: str) -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = message.to
    msg["Subject"] = message.subject
    msg["Date"] = email.utils.formatdate(usegmt=True)
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    msg["Message-ID"] = email.utils.make_msgid(domain=domain)
    msg.set_content(message.body)
    return msg


@dataclasses.dataclass(frozen=True)
class SmtpConfig:
    """Parsed from a URL: smtp://host:port (plain), smtp+starttls://… or smtps://… (implicit TLS);
    optional user:password@ before the host."""

    host: str
    port: int
    security: str  # "plain" | "starttls" | "tls"
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)

    @classmethod
    def from_url(cls, url: str) -> "SmtpConfig":
        parts = urlsplit(url)
        schemes = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError("the SMTP URL must look like smtp://host:port, smtp+starttls://host:port "
                             "or smtps://host:port")
        security, default_port = schemes[parts.scheme]
        return cls(host=parts.hostname, port=parts.port or default_port, security=security,
                   username=unquote(parts.username or ""), password=unquote(parts.password or ""))


class SmtpMailer:
    """Sends through an SMTP relay with the standard library, in a worker thread."""

    def __init__(self, url: str, *, sender: str, timeout: float = 10.0):
        self.config = SmtpConfig.from_url(url)
        self.sender = sender
        self.timeout = timeout

    async def send(self, message: Message) -> None:
        msg = build_email(message, self.sender)
        await asyncio.to_thread(self._send, msg)

    def _send(self, msg: email.message.EmailMessage) -> None:
        cfg = self.config
        client: smtplib.SMTP
        try:
            if cfg.security == "tls":
                client = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=self.timeout,
                                          context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout)
            with client:
                if cfg.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if cfg.username:
                    client.login(cfg.username, cfg.password)
                refused = client.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            raise MailError(f"SMTP server {cfg.host}:{cfg.port} refused the message "
                            f"(code {exc.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(f"could not deliver through SMTP server {cfg.host}:{cfg.port} "
                            f"({type(exc).__name__})") from None
        if refused:
            raise MailError(f"SMTP server {cfg.host}:{cfg.port} refused {len(refused)} recipient(s)")


class FileMailer:
    """Writes each message as `<time>-<id>.eml` into a directory (the embedded default's mailbox)."""

    def __init__(self, directory: str | os.PathLike, *, sender: str):
        self.directory = pathlib.Path(directory)
        self.sender = sender

    async def send(self, message: Message) -> None:
        msg = build_email(message, self.sender)
        await asyncio.to_thread(self._write, msg.as_bytes())

    def _write(self, data: bytes) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}.eml"
            tmp = self.directory / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self.directory / name)  # readers never see half a message
        except OSError as exc:
            raise MailError(f"could not write to the mailbox {self.directory} ({type(exc).__name__})") from None


class DroppingMailer:
    """Used when no mail transport is configured: logs that a message was dropped (not its body)."""

    async def send(self, message: Message) -> None:
        log.warning("no mail transport configured; message dropped", extra={"subject": message.subject})


def build_mailer(*, smtp_url: str, mailbox_dir: str, sender: str) -> Mailer:
    """SMTP when `smtp_url` is set, else the file mailbox when `mailbox_dir` is set, else dropping."""
    if smtp_url:
        return SmtpMailer(smtp_url, sender=sender)
    if mailbox_dir:
        return FileMailer(mailbox_dir, sender=sender)
    return DroppingMailer()
