"""The text of the security notices mailed for every two-factor change (never a secret in them)."""

from __future__ import annotations

from authsvc.mail import Message

_NAMES = {"totp": "an authenticator app", "webauthn": "a security key", "passkey": "a passkey"}


def _footer(public_url: str) -> str:
    return ("\nIf this was not you, someone may have your password: change it now and review your "
            f"two-factor settings at {public_url.rstrip('/')}/account/two-factor .\n")


def method_added(*, to: str, username: str, method: str, label: str, public_url: str) -> Message:
    what = _NAMES[method] + (f" ({label!r})" if label else "")
    return Message(to=to, subject="A second factor was added to your account", body=(
        f"Hello {username},\n\n{what[0].upper() + what[1:]} was added as a second factor to the account "
        f"{username!r}. Logging in now needs it (or a recovery code) after the password.\n"
        + _footer(public_url)))


def method_removed(*, to: str, username: str, method: str, label: str, remaining: int,
                   public_url: str) -> Message:
    what = _NAMES[method] + (f" ({label!r})" if label else "")
    after = ("Your account has no second factor any more: a password alone now logs in.\n" if remaining == 0
             else "")
    return Message(to=to, subject="A second factor was removed from your account", body=(
        f"Hello {username},\n\n{what[0].upper() + what[1:]} was removed from the account {username!r}.\n"
        + after + _footer(public_url)))


def key_renamed(*, to: str, username: str, previous: str, label: str, public_url: str) -> Message:
    return Message(to=to, subject="A security key on your account was renamed", body=(
        f"Hello {username},\n\nThe security key {previous!r} on the account {username!r} is now named {label!r}.\n"
        + _footer(public_url)))


def recovery_codes_issued(*, to: str, username: str, regenerated: bool, public_url: str) -> Message:
    if regenerated:
        text = "New recovery codes were generated for the account {u!r}; every earlier code no longer works.\n"
    else:
        text = "Recovery codes were generated for the account {u!r}. Keep them somewhere safe.\n"
    return Message(to=to, subject="Recovery codes for your account", body=(
        f"Hello {username},\n\n" + text.format(u=username) + _footer(public_url)))


def recovery_code_used(*, to: str, username: str, remaining: int, public_url: str) -> Message:
    return Message(to=to, subject="A recovery code was used to log in", body=(
        f"Hello {username},\n\nA recovery code was used to log in to the account {username!r}. "
        f"{remaining} unused code{'s' if remaining != 1 else ''} remain{'s' if remaining == 1 else ''}; "
        "you can generate a new set in your two-factor settings.\n" + _footer(public_url)))
