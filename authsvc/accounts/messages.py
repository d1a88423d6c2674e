"""The text of the account emails. Links point at the gateway's account pages (settings.public_url)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from authsvc.mail import Message


def _link(public_url: str, path: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{path}?token={quote(token, safe='')}"


def _hours(lifetime: dt.timedelta) -> str:
    minutes = int(lifetime.total_seconds() // 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minutes"


def verification(*, public_url: str, to: str, username: str, token: str, lifetime: dt.timedelta) -> Message:
    link = _link(public_url, "/account/verify-email", token)
    return Message(
        to=to,
        subject="Verify your email address",
        body=(
            f"Hello {username},\n\n"
            f"Someone, probably you, added {to} to the account {username!r}.\n"
            f"To verify this address, open this link within {_hours(lifetime)}:\n\n"
            f"    {link}\n\n"
            "If it was not you, ignore this message: the address stays unverified.\n"
        ),
    )


def password_reset(*, public_url: str, to: str, username: str, token: str, lifetime: dt.timedelta) -> Message:
    link = _link(public_url, "/account/reset-password", token)
    return Message(
        to=to,
        subject="Reset your password",
        body=(
            f"Hello {username},\n\n"
            f"Someone, probably you, asked to reset the password of the account {username!r}.\n"
            f"To choose a new password, open this link within {_hours(lifetime)}:\n\n"
            f"    {link}\n\n"
            "The link works once. If you did not ask for it, ignore this message: your password "
            "stays as it is.\n"
        ),
    )


def login_confirmation(*, public_url: str, to: str, username: str, token: str, lifetime: dt.timedelta,
                       ip_address: str, user_agent: str) -> Message:
    link = _link(public_url, "/account/login/confirm", token)
    return Message(
        to=to,
        subject="Confirm your login from a new device",
        body=(
            f"Hello {username},\n\n"
            f"Someone logged in to the account {username!r} with its password\n"
            f"from a browser and network not seen before (address {ip_address or 'unknown'},\n"
            f"browser {user_agent[:120] or 'unknown'}).\n\n"
            f"If it was you, open this link within {_hours(lifetime)}, in the browser where you logged in:\n\n"
            f"    {link}\n\n"
            "The link works once. If it was not you, do not open it: the login stays held, and you\n"
            "should change your password and check your second factors at once.\n"
        ),
    )
