#!/usr/bin/env python3
"""Write the `secrets.env` an overlay turns into the Secret `gatehouse-secrets`, or rotate a key in it.

    python3 deploy/gen_secrets.py dev -o deploy/overlays/dev/secrets.env
    python3 deploy/gen_secrets.py prod -o deploy/overlays/prod/secrets.env \\
        --database-url 'postgresql://gatehouse:PASSWORD@db.internal:5432/{service}' \\
        --redis-url 'rediss://:PASSWORD@redis.internal:6380/0' \\
        --smtp-url 'smtp+starttls://USER:PASSWORD@smtp.internal:587'
    python3 deploy/gen_secrets.py stage|promote AUTHSVC_TOKEN_SECRETS -f deploy/overlays/prod/secrets.env
    python3 deploy/gen_secrets.py stage|promote AUTHSVC_EVENT_KEYS -f deploy/overlays/prod/secrets.env
    python3 deploy/gen_secrets.py retire AUTHSVC_TOKEN_SECRETS 1 -f deploy/overlays/prod/secrets.env
    python3 deploy/gen_secrets.py stage|promote|retire AUTHSVC_GATEWAY_KEY -f deploy/overlays/prod/secrets.env

Every key is 32 random bytes from the `secrets` module, URL-safe base64. Standard library only, so
it runs before anything is installed. deploy/README.md explains each key and how to rotate it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pathlib
import secrets
import sys

SERVICES = ("authsvc", "uploadgw", "auditsvc")
# Keys that hold "<version>:<key>,…", newest first; old versions stay until nothing needs them.
VERSIONED = ("AUTHSVC_TOKEN_SECRETS", "AUTHSVC_TOTP_KEYS", "AUTHSVC_EVENT_KEYS", "UPLOADGW_EVENT_KEYS")
# Each producer's event keys; the audit consumer accepts all of them (AUDITSVC_EVENT_KEYS, derived).
EVENT_PRODUCERS = {"authsvc": "AUTHSVC_EVENT_KEYS", "uploadgw": "UPLOADGW_EVENT_KEYS"}
DERIVED = "AUDITSVC_EVENT_KEYS"
# Service credentials that may list several keys during a rotation (see `changed`).
LISTED = ("AUTHSVC_GATEWAY_KEY", "AUTHSVC_AUDIT_KEY", "AUDITSVC_GATEWAY_KEY")


def new_key() -> str:
    """32 random bytes as unpadded URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def accepted_event_keys(values: dict[str, str]) -> str:
    """AUDITSVC_EVENT_KEYS: every version of every producer's event key, as "producer:version:key"."""
    return ",".join(f"{producer}:{entry}" for producer, name in EVENT_PRODUCERS.items()
                    for _, entry in parse_versions(values[name]))


def service_keys() -> dict[str, str]:
    """The credentials between the parts and the root secrets, all freshly generated."""
    return {
        # The service credential authsvc accepts from the gateway (as UPLOADGW_AUTHSVC_KEY).
        "AUTHSVC_GATEWAY_KEY": new_key(),
        # The audit API's credential for authsvc, good for ValidateSession only (as AUDITSVC_AUTHSVC_KEY).
        "AUTHSVC_AUDIT_KEY": new_key(),
        # The gateway's credential for auditsvc (auditsvc: AUDITSVC_GATEWAY_KEY, gateway: UPLOADGW_AUDITSVC_KEY).
        "AUDITSVC_GATEWAY_KEY": new_key(),
        # The operator CLI's credentials (`kubectl exec … -- gatehouse admin|audit …`).
        "AUTHSVC_OPERATOR_KEY": new_key(),
        "AUDITSVC_OPERATOR_KEY": new_key(),
        # Root secret of every API token (macaroon); tokens name the version they were minted with.
        "AUTHSVC_TOKEN_SECRETS": f"1:{new_key()}",
        # Encrypts the TOTP seeds at rest.
        "AUTHSVC_TOTP_KEYS": f"1:{new_key()}",
        # Keys the client-IP hash when AUDITSVC_HASH_IPS=true.
        "AUDITSVC_IP_HASH_KEY": new_key(),
        # Signs the account pages' CSRF tokens and notices; shared, so a form works on any gateway.
        "UPLOADGW_SESSION_KEY": new_key(),
        # Seal the events each producer writes; auditsvc stores only events sealed with these.
        "AUTHSVC_EVENT_KEYS": f"1:{new_key()}",
        "UPLOADGW_EVENT_KEYS": f"1:{new_key()}",
    }


def generated_values() -> dict[str, str]:
    """`service_keys()` plus what follows from them (the event keys the audit consumer accepts)."""
    values = service_keys()
    values[DERIVED] = accepted_event_keys(values)
    return values


def dev_values() -> dict[str, str]:
    """Keys plus the in-cluster PostgreSQL and Redis of the dev overlay, with fresh passwords."""
    pg_password, redis_password = new_key(), new_key()
    values = generated_values()
    for service in SERVICES:
        values[f"{service.upper()}_DATABASE_URL"] = (
            f"postgresql://gatehouse:{pg_password}@postgres:5432/{service}")
    values["GATEHOUSE_REDIS_URL"] = f"redis://:{redis_password}@redis:6379/0"
    # Empty: the dev overlay writes mail into /tmp/mail of the authsvc pod instead.
    values["AUTHSVC_SMTP_URL"] = ""
    values["POSTGRES_PASSWORD"] = pg_password
    values["REDIS_PASSWORD"] = redis_password
    return values


def prod_values(database_url: str, redis_url: str, smtp_url: str) -> dict[str, str]:
    """Keys plus the connection URLs of the external PostgreSQL, Redis and SMTP relay."""
    if "{service}" not in database_url:
        raise SystemExit("--database-url must contain {service}: each service has its own database")
    values = generated_values()
    for service in SERVICES:
        values[f"{service.upper()}_DATABASE_URL"] = database_url.replace("{service}", service)
    values["GATEHOUSE_REDIS_URL"] = redis_url
    values["AUTHSVC_SMTP_URL"] = smtp_url
    return values


def render(values: dict[str, str], overlay: str) -> str:
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            raise SystemExit(f"{name}: a value must fit on one line")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    head = [f"# Gatehouse secrets for the {overlay} overlay, generated {stamp}. Never commit this file;",
            "# keep a copy in your secret store. deploy/README.md explains each key and its rotation."]
    return "\n".join(head + [f"{name}={value}" for name, value in values.items()]) + "\n"


def parse_env(text: str) -> list[tuple[str, str] | str]:
    """Lines of an env file: (name, value) pairs, other lines (comments, blanks) kept as they are."""
    lines: list[tuple[str, str] | str] = []
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            lines.append((name.strip(), value))
        else:
            lines.append(line)
    return lines


def parse_versions(current: str) -> list[tuple[int, str]]:
    """ "<version>:<key>,…" as (version, entry) pairs, in their order."""
    versions = []
    for item in filter(None, (part.strip() for part in current.split(","))):
        version, sep, _ = item.partition(":")
        if not sep or not version.isdigit():
            raise SystemExit(f"not a '<version>:<key>' entry: {version!r}")
        versions.append((int(version), item))
    return versions


def changed(name: str, current: str, action: str, version: int | None = None) -> str:
    """The new value of `name` after `action`:

    rotate  a new version (highest + 1) in front: new tokens/seeds use it at once;
    stage   a new version at the end: every pod can verify/decrypt with it, nothing uses it yet;
    promote the highest version to the front (after a staged version has rolled out everywhere);
    retire  drop `version` (never the one in front).

    A service credential (LISTED) is a comma-separated list: the servers accept every key in it and
    the clients send the first. `stage` appends a new key, `promote` moves the last to the front,
    `retire` keeps only the front one; `rotate` replaces the list with one new key at once.
    """
    if name in LISTED:
        keys = [k.strip() for k in current.split(",") if k.strip()]
        if action == "stage":
            return ",".join(keys + [new_key()])
        if action == "promote":
            return ",".join(keys[-1:] + keys[:-1])
        if action == "retire":
            if version is not None:
                raise SystemExit(f"{name} has no versions: `retire {name}` keeps only the key in front")
            return ",".join(keys[:1])
        return new_key()
    if name not in VERSIONED:
        if action != "rotate":
            raise SystemExit(f"{name} has no versions: only `rotate` applies")
        return new_key()
    entries = parse_versions(current)
    newest = max((v for v, _ in entries), default=0)
    if action in ("rotate", "stage"):
        entry = (newest + 1, f"{newest + 1}:{new_key()}")
        entries = [entry] + entries if action == "rotate" else entries + [entry]
    elif action == "promote":
        entries = sorted(entries, key=lambda e: e[0] != newest)
    elif action == "retire":
        if entries and entries[0][0] == version:
            raise SystemExit(f"version {version} is the one in use; promote another first")
        if version not in {v for v, _ in entries}:
            raise SystemExit(f"{name} has no version {version}")
        entries = [e for e in entries if e[0] != version]
    return ",".join(item for _, item in entries)


def update(path: pathlib.Path, name: str, action: str, version: int | None = None) -> None:
    if name == DERIVED:
        raise SystemExit(f"{name} follows {' and '.join(EVENT_PRODUCERS.values())}; change those")
    if name not in service_keys():
        raise SystemExit(f"{name} is not a generated key; edit connection URLs by hand")
    lines = parse_env(path.read_text())
    found = False
    for i, line in enumerate(lines):
        if isinstance(line, tuple) and line[0] == name:
            lines[i] = (name, changed(name, line[1], action, version))
            found = True
    if not found:
        raise SystemExit(f"{name} is not in {path}")
    if name in EVENT_PRODUCERS.values():  # the consumer accepts exactly the producers' versions
        current = dict(x for x in lines if isinstance(x, tuple))
        accepted = accepted_event_keys(current)
        if DERIVED in current:
            lines = [(DERIVED, accepted) if isinstance(x, tuple) and x[0] == DERIVED else x for x in lines]
        else:
            lines.append((DERIVED, accepted))
    write(path, "\n".join(f"{x[0]}={x[1]}" if isinstance(x, tuple) else x for x in lines) + "\n",
          replace=True)


def write(path: pathlib.Path | None, text: str, *, replace: bool = False) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    if path.exists() and not replace:
        raise SystemExit(f"{path} exists; rotate single keys with `rotate`, or move it away first")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="secrets for overlays/dev (in-cluster PostgreSQL and Redis)")
    dev.add_argument("-o", "--output", type=pathlib.Path)
    prod = sub.add_parser("prod", help="secrets for overlays/prod (external PostgreSQL and Redis)")
    prod.add_argument("-o", "--output", type=pathlib.Path)
    prod.add_argument("--database-url", required=True,
                      help="postgresql://user:password@host:5432/{service} ({service}: each service's database)")
    prod.add_argument("--redis-url", required=True, help="redis://… or rediss://… (TLS)")
    prod.add_argument("--smtp-url", default="", help="smtp://, smtp+starttls:// or smtps://user:password@host:port")
    for action, text in (("rotate", "replace a key; for a versioned key add a new version in front"),
                         ("stage", "add a new version (or service key) at the end: accepted, not used yet"),
                         ("promote", "move the newest version (or service key) to the front"),
                         ("retire", "remove an old version; for a service key, all but the one in front")):
        p = sub.add_parser(action, help=text)
        p.add_argument("name")
        if action == "retire":
            p.add_argument("version", type=int, nargs="?")
        p.add_argument("-f", "--file", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "dev":
        write(args.output, render(dev_values(), "dev"))
    elif args.command == "prod":
        write(args.output, render(prod_values(args.database_url, args.redis_url, args.smtp_url), "prod"))
    else:
        update(args.file, args.name, args.command, getattr(args, "version", None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
