"""Leaked-token reports: a trusted secret scanner found tokens in public; revoke them at once.

PyPI's format (Warehouse's `/_/secrets/disclose-token`): the body is a JSON list of findings
`{"token", "type", "url", "source"}`, signed as `scannerkeys` checks. Each finding whose token is a
live token of this index (its HMAC chain checks out under our secrets, and its row still exists
with that key version) is revoked in one transaction with its events: `account:api_token:removed_leak`
in the owner's log and `project:api_token:removed_leak` in the log of each project the token could
reach (its scope, or every project of the owner for an account-wide token), naming the scanner
and the URL. The owner is mailed after the commit. Unknown, forged, malformed and already revoked
tokens change nothing, and the answer is the same for all. The revocation is one conditional
delete: of many identical reports at once exactly one deletes the row, and only that one records
and mails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Coroutine
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from authsvc.accounts.models import Email, User
from authsvc.errors import InvalidArgument
from authsvc.mail import Mailer, Message
from authsvc.projects.models import Project, Role
from authsvc.tokens.caveats import Failure
from authsvc.tokens.codec import AuthenticToken, TokenCodec
from authsvc.tokens.models import ApiToken, ApiTokenProject
from authsvc.tokens.revocation import scope_text
from authsvc.tokens.scannerkeys import ReportVerifier, TrustedScanner
from gatehouse.infra.outbox import ANONYMOUS, EventEmitter, Origin
from gatehouse.infra.transactions import Transactions

log = logging.getLogger(__name__)
MAX_REPORT_BYTES = 512 * 1024
MAX_FINDINGS = 1000
MAX_URL_CHARS = 1000


@dataclasses.dataclass(frozen=True)
class Finding:
    token: str
    url: str
    source: str


def parse_report(body: bytes) -> list[Finding]:
    """The findings of a report's body, or InvalidArgument saying what is wrong with it."""
    if len(body) > MAX_REPORT_BYTES:
        raise InvalidArgument(f"The report is too large: at most {MAX_REPORT_BYTES} bytes.", reason="report_too_large")
    try:
        records = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"The report is not valid JSON: {exc}.", reason="report_malformed") from None
    if not isinstance(records, list):
        raise InvalidArgument("The report must be a JSON list of findings.", reason="report_malformed")
    if len(records) > MAX_FINDINGS:
        raise InvalidArgument(f"The report has too many findings: at most {MAX_FINDINGS}.", reason="report_too_large")
    findings = []
    for number, record in enumerate(records, 1):
        record = record if isinstance(record, dict) else {}
        token, kind, url, source = (record.get(name) for name in ("token", "type", "url", "source"))
        if not (isinstance(token, str) and isinstance(kind, str) and isinstance(url, str)):
            raise InvalidArgument(f"Finding {number} must be an object with the string fields token, type and url.",
                                  reason="report_malformed")
        findings.append(Finding(token=token, url=_printable(url[:MAX_URL_CHARS]),
                                source=_printable(source[:100]) if isinstance(source, str) else ""))
    return findings


def _printable(text: str) -> str:
    """The text for a log line and a mail: no control characters (a URL on one line)."""
    return "".join(c if c.isprintable() else "?" for c in text)


@dataclasses.dataclass(frozen=True)
class _Revoked:
    """What the owner's mail says about a revoked token (never the token)."""

    token_id: str
    description: str
    username: str
    address: str


class DisclosureService:
    def __init__(self, *, tx: Transactions, codec: TokenCodec, events: EventEmitter, mailer: Mailer,
                 verifier: ReportVerifier, public_url: str) -> None:
        self.tx = tx
        self.codec = codec
        self.events = events
        self.mailer = mailer
        self.verifier = verifier
        self.public_url = public_url.rstrip("/")
        self._tasks: set[asyncio.Task[None]] = set()  # reports being carried out, mails

    async def disclose(self, body: bytes, key_id: str, signature: str, origin: Origin | None) -> None:
        """Check the report's signature, then revoke each live token it names (see the module)."""
        scanner = await self.verifier.signer(body, key_id, signature)
        findings = parse_report(body)
        # A believed report is carried out even if its caller gives up waiting (a deadline): each
        # revocation is mailed once it has committed.
        await asyncio.shield(self._in_background(self._revoke_all(findings, scanner, origin)))

    async def _revoke_all(self, findings: list[Finding], scanner: TrustedScanner, origin: Origin | None) -> None:
        revoked = 0
        for finding in findings:
            authentic = self.codec.authenticate(finding.token)
            if isinstance(authentic, Failure):
                continue
            result = await self.tx.run(lambda s: self._revoke(s, authentic, finding, scanner, origin))
            if result is not None:
                revoked += 1
                if result.address:
                    self._in_background(self._deliver(_leak_notice(result, finding, scanner, self.public_url),
                                                      result.token_id))
        log.info("leaked-token report", extra={"scanner": scanner.name, "findings": len(findings),
                                               "revoked": revoked})

    def _revoke(self, s: Session, authentic: AuthenticToken, finding: Finding, scanner: TrustedScanner,
                origin: Origin | None) -> _Revoked | None:
        token = s.scalar(select(ApiToken).where(ApiToken.id == authentic.token_id))
        if token is None or token.key_version != authentic.key_version:
            return None
        scoped = [(p.project_id, p.project_name) for p in token.projects]
        # The one step that decides: of concurrent reports of this token, one deletes the row.
        if s.connection().execute(delete(ApiToken).where(ApiToken.id == token.id)).rowcount != 1:
            return None
        s.execute(delete(ApiTokenProject).where(ApiTokenProject.token_id == token.id))
        owner = s.execute(select(User.id, User.username).where(User.id == token.user_id)).one()
        address = s.scalar(select(Email.address).where(Email.user_id == owner.id, Email.primary.is_(True))) or ""
        if token.scope_all_projects:
            scoped = [(r.id, r.name) for r in s.execute(
                select(Project.id, Project.name).join(Role, Role.project_id == Project.id)
                .where(Role.user_id == owner.id).order_by(Project.name))]
        found = {"token_id": token.id, "description": token.description, "reporter": scanner.name,
                 "url": finding.url, "source": finding.source}
        self.events.emit_sync(s, "account:api_token:removed_leak", actor=ANONYMOUS, user=(owner.id, owner.username),
                              origin=origin, details={**found, "scope": scope_text(token)})
        for project in scoped:
            self.events.emit_sync(s, "project:api_token:removed_leak", actor=ANONYMOUS, project=project,
                                  origin=origin, details={**found, "username": owner.username})
        return _Revoked(token.id, token.description, owner.username, address)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(self, message: Message, token_id: str) -> None:
        try:
            await self.mailer.send(message)
        except Exception as exc:  # the revocation stands; the event is the record
            log.error("leaked-token notice not delivered", extra={"token_id": token_id, "error": str(exc)[:200]})

    async def close(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


def _leak_notice(revoked: _Revoked, finding: Finding, scanner: TrustedScanner, public_url: str) -> Message:
    return Message(to=revoked.address, subject="Your API token was found in public and has been revoked", body=(
        f"Hello {revoked.username},\n\n"
        f"The secret scanner {scanner.name!r} reported that your API token {revoked.description!r} "
        f"(id {revoked.token_id}) was published at:\n\n    {finding.url}\n\n"
        "Anyone who saw it there could upload as you, so it has been revoked: it no longer works. "
        "Remove it from where it was published, check your projects' recent releases in their "
        f"security logs, and create a new token at {public_url}/account/tokens if you still need one.\n"))
