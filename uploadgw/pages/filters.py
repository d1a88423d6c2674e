"""Template filters: times in UTC, sizes, and event tags in words."""

from __future__ import annotations

import datetime as dt

import jinja2

from gatehouse.infra.clock import as_utc

EVENT_LABELS = {
    "account:create": "Account created",
    "account:email:add": "Email address added",
    "account:email:sent": "Email sent",
    "account:email:verified": "Email address verified",
    "account:email:primary:change": "Primary email address changed",
    "account:login:success": "Logged in",
    "account:login:failure": "Failed login",
    "account:login:held": "Login from a new device held: confirmation link mailed",
    "account:login:confirmed": "Login from a new device confirmed",
    "account:logout": "Logged out",
    "account:reauthenticate:failure": "Wrong password when confirming an action",
    "account:password:change": "Password changed",
    "account:password:reset:request": "Password reset requested",
    "account:password:reset": "Password reset",
    "account:session:revoke": "Session ended",
    "account:api_token:added": "API token created",
    "account:api_token:removed": "API token deleted",
    "account:api_token:expired": "API token expired",
    "account:two_factor:method_added": "Two-factor method added",
    "account:two_factor:method_removed": "Two-factor method removed",
    "account:recovery_codes:generated": "Recovery codes generated",
    "account:recovery_codes:regenerated": "Recovery codes regenerated",
    "account:recovery_codes:used": "Recovery code used",
    "account:two_factor:method_renamed": "Security key renamed",
    "account:disable": "Account disabled by an operator",
    "account:enable": "Account enabled by an operator",
    "account:admin:grant": "Made an administrator",
    "account:admin:revoke": "No longer an administrator",
    "project:create": "Project created",
    "project:delete": "Project deleted",
    "project:role:add": "Collaborator added",
    "project:role:change": "Collaborator's role changed",
    "project:role:remove": "Collaborator removed",
    "project:owners_require_2fa:enabled": "Two-factor authentication required of collaborators",
    "project:owners_require_2fa:disabled": "Two-factor authentication no longer required of collaborators",
    "project:api_token:added": "API token created for the project",
    "project:api_token:removed": "API token for the project deleted",
    "project:api_token:expired": "API token for the project expired",
    "project:release:add": "Release added",
    "project:release:remove": "Release deleted",
    "project:release:yank": "Release yanked",
    "project:release:unyank": "Release un-yanked",
    "project:file:remove": "File deleted",
    "project:upload:refused": "Upload refused (token expired, deleted or not valid for this project)",
    "project:publisher:add": "Trusted publisher added",
    "project:publisher:remove": "Trusted publisher removed",
    "project:trusted_publishing_only:enabled": "Uploads only from trusted publishers (API tokens refused)",
    "project:trusted_publishing_only:disabled": "Uploads with API tokens accepted again",
    "project:phishing_resistant_only:enabled": "Only security-key and passkey logins accepted",
    "project:phishing_resistant_only:disabled": "Logins with any second factor accepted again",
    "project:publisher:token:mint": "Upload token minted for a trusted publisher",
    "account:pending_publisher:add": "Pending trusted publisher registered",
    "account:pending_publisher:remove": "Pending trusted publisher removed",
    "account:pending_publisher:converted": "Pending trusted publisher created its project",
    "file:add": "File uploaded",
}


def utc(value: dt.datetime | None, empty: str = "never") -> str:
    if value is None:
        return empty
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def iso(value: dt.datetime | None) -> str:
    return as_utc(value).isoformat(timespec="seconds") if value is not None else ""


def filesize(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def event_label(tag: str) -> str:
    return EVENT_LABELS.get(tag, tag)


def install(env: jinja2.Environment) -> None:
    env.filters.update(utc=utc, iso=iso, filesize=filesize, event_label=event_label)
