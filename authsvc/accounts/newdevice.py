"""New-device confirmation: a login from a browser and a network never seen for the account is
held until the user follows a link mailed to them, in the browser that started the login.

A browser is known by the device id of its signed device token (devices.py); a network is an IPv4
/24 or an IPv6 /64. Each completed login makes its browser and network known. A login whose second
factor was WebAuthn (security key or passkey) is phishing-resistant already and never held. An
account's first login (no known place yet, e.g. just registered) is trusted on first use.
Operators may switch the hold off (AUTHSVC_NEW_DEVICE_CONFIRMATION=false); places are still learnt.

The held login gives the gateway a browser token (kept in a cookie) and mails a link token; both
are stored as their SHA-256 only. Following the link needs both, within the lifetime, once: the
link is used up by a conditional UPDATE in the transaction that starts the session, so parallel
follows confirm exactly once. A link followed in another browser is refused and stays usable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import ipaddress
import logging

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session as OrmSession, selectinload

from authsvc.accounts.core import as_actor, sorted_emails, who
from authsvc.accounts.messages import login_confirmation
from authsvc.accounts.models import HeldLogin, KnownPlace, User
from authsvc.accounts.validation import new_secret, token_digest
from authsvc.errors import AccountDisabled, InvalidArgument
from authsvc.mail import Message
from gatehouse.infra.clock import Clock, as_utc
from gatehouse.infra.outbox import EventEmitter, Origin

log = logging.getLogger("authsvc.accounts")
# The second factors that need no confirmation: phishing-resistant ones (security keys, passkeys).
EXEMPT_METHODS = frozenset({"webauthn", "passkey"})
MAX_TOKEN = 200
DEVICE, NETWORK = "device", "network"


def network_of(ip: str) -> str:
    """The network an address belongs to for this check ("" when there is no valid address)."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _already_used() -> InvalidArgument:
    return InvalidArgument("This login confirmation link was already used.", reason="token_used")


@dataclasses.dataclass(frozen=True)
class Held:
    """A held login: the browser token for the gateway's cookie, and the mail to send after commit."""

    browser_token: str
    mail: Message


class NewDeviceCheck:
    def __init__(self, *, clock: Clock, events: EventEmitter, public_url: str, lifetime: dt.timedelta,
                 enabled: bool = True):
        self.enabled = enabled
        self.clock = clock
        self.events = events
        self.public_url = public_url
        self.lifetime = lifetime

    def check_sync(self, s: OrmSession, user: User, origin: Origin, *, method: str, device: str | None) -> Held | None:
        """Hold the login (a Held) or let it through (None, its browser and network now known)."""
        network = network_of(origin.ip_address)
        places = {(DEVICE, device or ""), (NETWORK, network)} - {(DEVICE, ""), (NETWORK, "")}
        rows = s.execute(select(KnownPlace.kind, KnownPlace.value).where(KnownPlace.user_id == user.id))
        known = {(kind, value) for kind, value in rows}
        if not self.enabled or method in EXEMPT_METHODS or not known or places & known:
            self.remember_sync(s, user.id, places - known)
            return None
        return self._hold_sync(s, user, origin, method=method, device=device or "", network=network)

    def remember_sync(self, s: OrmSession, user_id: str, places: set[tuple[str, str]]) -> None:
        if not places:
            return
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        rows = [{"user_id": user_id, "kind": kind, "value": value, "first_seen_at": self.clock.now()}
                for kind, value in sorted(places)]
        s.execute(insert(KnownPlace).values(rows).on_conflict_do_nothing())

    def _hold_sync(self, s: OrmSession, user: User, origin: Origin, *, method: str, device: str,
                   network: str) -> Held:
        link, browser = new_secret(), new_secret()
        now = self.clock.now()
        s.execute(delete(HeldLogin).where(HeldLogin.user_id == user.id, HeldLogin.expires_at <= now))  # tidy up
        s.add(HeldLogin(link_hash=token_digest(link), browser_hash=token_digest(browser), user_id=user.id,
                        method=method, device_id=device, network=network, created_at=now,
                        expires_at=now + self.lifetime))
        s.flush()
        self.events.emit_sync(s, "account:login:held", actor=as_actor(user), user=who(user), origin=origin,
                              details={"method": method, "reason": "new_device"})
        log.info("login held for confirmation", extra={"user_id": user.id, "method": method})
        to = next((e.address for e in sorted_emails(user) if e.primary), "")
        mail = login_confirmation(public_url=self.public_url, to=to, username=user.username, token=link,
                                  lifetime=self.lifetime, ip_address=origin.ip_address, user_agent=origin.user_agent)
        return Held(browser_token=browser, mail=mail)

    def confirm_sync(self, s: OrmSession, link: str, browser: str, origin: Origin) -> tuple[HeldLogin, User]:
        """Use up the held login the link names (in the caller's transaction): it and its user, or
        InvalidArgument saying why not. Its browser and network become known."""
        if not link or len(link) > MAX_TOKEN:
            raise InvalidArgument("The login confirmation link is not valid.", reason="token_invalid")
        row = s.scalar(select(HeldLogin).where(HeldLogin.link_hash == token_digest(link)))
        if row is None:
            raise InvalidArgument("The login confirmation link is not valid. Log in again.", reason="token_invalid")
        if row.used_at is not None:
            raise _already_used()
        if as_utc(row.expires_at) <= self.clock.now():
            raise InvalidArgument("The login confirmation link has expired. Log in again.", reason="token_expired")
        if not hmac.compare_digest(token_digest(browser[:MAX_TOKEN]), row.browser_hash):
            raise InvalidArgument("Open the link in the browser where you logged in: this browser did not "
                                  "start this login.", reason="other_browser")
        used = s.connection().execute(update(HeldLogin).where(HeldLogin.id == row.id, HeldLogin.used_at.is_(None))
                         .values(used_at=self.clock.now()))
        if used.rowcount != 1:
            raise _already_used()
        user = s.scalar(select(User).where(User.id == row.user_id).options(selectinload(User.emails)))
        if user is None or not user.is_active:
            raise AccountDisabled()
        self.remember_sync(s, row.user_id, {(kind, value) for kind, value in
                                            ((DEVICE, row.device_id), (NETWORK, row.network)) if value})
        self.events.emit_sync(s, "account:login:confirmed", actor=as_actor(user), user=who(user), origin=origin,
                              details={"method": row.method})
        return row, user
