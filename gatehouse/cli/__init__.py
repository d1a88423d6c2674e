"""The `gatehouse` command: one entry point for operators and for the embedded default.

    gatehouse up                 bring the whole system up on embedded defaults
    gatehouse migrate            run every service's database migrations
    gatehouse relay --service S  move a service's outbox to the Redis stream
    gatehouse admin …            operator actions over gRPC (users, tokens, roles, projects)
    gatehouse audit …            read the audit logs (operator)
"""

from __future__ import annotations

import argparse
import sys

from gatehouse.cli import admin, audit, migrate, relay, up
from gatehouse.cli.output import fail
from gatehouse.infra.settings import SettingsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatehouse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (up, migrate, relay, admin, audit):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except SettingsError as exc:  # a malformed variable, or TLS files that do not load
        return fail(args, str(exc), 2)


if __name__ == "__main__":
    sys.exit(main())
