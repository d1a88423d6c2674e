"""`gatehouse admin …`: operator actions, as calls to the auth service's AdminService."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import re
import sys

import grpc

from gatehouse.auth.v1 import admin_pb2, admin_pb2_grpc, common_pb2
from gatehouse.cli import admin_publishers
from gatehouse.cli.output import emit, fail, note, rpc_error, to_dict
from gatehouse.cli.settings import DATA_DIR_HELP, CliSettings
from gatehouse.infra.grpcserver import open_channel

ROLES = {"owner": common_pb2.ROLE_OWNER, "maintainer": common_pb2.ROLE_MAINTAINER}
_DURATION = re.compile(r"^(\d+)([mhdw])$")


class InputError(Exception):
    """What the operator typed or piped cannot be used: exit code 2 with this message, nothing done."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)


def add_parser(sub) -> None:
    admin = sub.add_parser("admin", help="operator actions (users, tokens, roles, projects, trusted publishers)")
    groups = admin.add_subparsers(dest="group", required=True, metavar="GROUP")

    user = groups.add_parser("user", help="accounts").add_subparsers(dest="action", required=True)
    p = user.add_parser("create", help="create a user")
    p.add_argument("username")
    p.add_argument("--email", required=True)
    given = p.add_mutually_exclusive_group()
    given.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input, one line (else: a prompt on a terminal; "
                            "without a terminal, no password)")
    given.add_argument("--no-password", action="store_true", help="no password: the user must reset it")
    p.add_argument("--verified", action="store_true", help="mark the email address verified")
    p.add_argument("--admin", action="store_true", help="make the user an admin")
    p.add_argument("--name", default="")
    p.set_defaults(run=_user_create)
    for name, helptext, fn in (("show", "show a user", _user_show),
                               ("enable", "re-enable a disabled account", _user_enable)):
        p = user.add_parser(name, help=helptext)
        p.add_argument("username")
        p.set_defaults(run=fn)
    p = user.add_parser("disable", help="disable an account: its sessions and tokens stop")
    p.add_argument("username")
    p.add_argument("--reason", default="")
    p.set_defaults(run=_user_disable)
    p = user.add_parser("set-admin", help="grant or revoke the admin flag")
    p.add_argument("username")
    p.add_argument("--revoke", action="store_true")
    p.set_defaults(run=_user_set_admin)

    token = groups.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    p = token.add_parser("mint", help="mint an upload token for a user (printed once)")
    p.add_argument("username")
    p.add_argument("--description", required=True)
    p.add_argument("--project", action="append", default=[], help="scope to this project (repeatable)")
    p.add_argument("--expires-in", help="e.g. 30d, 12h, 2w (default: the site's default lifetime; at most its maximum)")
    p.add_argument("--ip", action="append", default=[], dest="networks",
                   help="only from this IP address or CIDR network (repeatable)")
    p.add_argument("--release-version", default="", help="only uploads of this release version (PEP 440)")
    p.set_defaults(run=_token_mint)
    p = token.add_parser("list", help="list a user's tokens (never the secrets)")
    p.add_argument("username")
    p.set_defaults(run=_token_list)
    p = token.add_parser("revoke", help="revoke a token by id")
    p.add_argument("token_id")
    p.set_defaults(run=_token_revoke)

    role = groups.add_parser("role", help="project roles").add_subparsers(dest="action", required=True)
    p = role.add_parser("add", help="give a user a role on a project")
    p.add_argument("project")
    p.add_argument("username")
    p.add_argument("--role", choices=sorted(ROLES), required=True)
    p.add_argument("--create-project", action="store_true")
    p.set_defaults(run=_role_add)
    p = role.add_parser("remove", help="remove a user's role on a project")
    p.add_argument("project")
    p.add_argument("username")
    p.set_defaults(run=_role_remove)

    project = groups.add_parser("project", help="projects").add_subparsers(dest="action", required=True)
    p = project.add_parser("delete", help="delete a project, its roles and tokens scoped only to it")
    p.add_argument("project")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(run=_project_delete)
    p = project.add_parser("require-2fa", help="require a second factor of every collaborator (or stop: --off)")
    p.add_argument("project")
    p.add_argument("--off", action="store_true", help="stop requiring it")
    p.set_defaults(run=_project_require_2fa)
    p = project.add_parser("revoke-long-lived-tokens",
                           help="a project with a trusted publisher: revoke every token scoped to it alone, in one "
                                "transaction")
    p.add_argument("project")
    p.add_argument("--include-account-wide", action="store_true",
                   help="also the collaborators' account-wide tokens (they stop for every project)")
    p.set_defaults(run=_project_revoke_long_lived)

    publisher = admin_publishers.add_parsers(groups, project)

    for parser in (user, token, role, project, publisher):
        for choice in parser.choices.values():
            _common(choice)
    admin.set_defaults(handler=_handle)


def _handle(args) -> int:
    settings = CliSettings.load(args.data_dir)
    if not settings.operator_key:
        return fail(args, settings.no_credential("AUTHSVC_OPERATOR_KEY"), 2)
    try:
        return asyncio.run(_call(args, settings))
    except InputError as exc:
        return fail(args, str(exc), 2)
    except grpc.aio.AioRpcError as exc:
        return rpc_error(args, exc)


async def _call(args, settings: CliSettings) -> int:
    async with open_channel(settings.authsvc_target, settings.operator_key,
                            default_timeout=settings.timeout, tls=settings.tls) as channel:
        return await args.run(args, admin_pb2_grpc.AdminServiceStub(channel)) or 0


def _user_text(user) -> str:
    flags = [f for f, on in (("verified", user.email_verified), ("admin", user.is_admin),
                             ("DISABLED", not user.is_active)) if on]
    return f"{user.username} <{user.primary_email}> id={user.id} {' '.join(flags)}".rstrip()


def _read_password(args) -> tuple[str, bool]:
    """The new account's password ("" for none), and whether it went unasked for want of a terminal
    (a script, CI, `kubectl exec` without -t): then the user sets one through the password-reset page."""
    if args.no_password:
        return "", False
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n") if sys.stdin else ""
        if not password:
            raise InputError("--password-stdin: standard input held no password (pipe it as one line, "
                             "or use --no-password); nothing was created")
        return password, False
    if sys.stdin is None or not sys.stdin.isatty():
        return "", True
    try:
        return getpass.getpass("Password (empty for none): "), False
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)  # end the prompt's line
        raise InputError("no password entered; nothing was created") from None


async def _user_create(args, stub):
    password, no_terminal = _read_password(args)
    reply = await stub.CreateUser(admin_pb2.AdminCreateUserRequest(
        username=args.username, email=args.email, password=password,
        email_verified=args.verified, is_admin=args.admin, name=args.name))
    emit(args, to_dict(reply.user), "created " + _user_text(reply.user))
    if no_terminal:
        note(f"no terminal: {reply.user.username} was created without a password (the password-reset "
             "page sets one); pass --password-stdin to give one at creation")


async def _user_show(args, stub):
    reply = await stub.GetUser(admin_pb2.AdminGetUserRequest(username=args.username))
    emit(args, to_dict(reply.user), _user_text(reply.user))


async def _user_disable(args, stub):
    reply = await stub.SetUserActive(admin_pb2.AdminSetUserActiveRequest(
        username=args.username, active=False, reason=args.reason))
    emit(args, to_dict(reply.user), "disabled " + _user_text(reply.user))


async def _user_enable(args, stub):
    reply = await stub.SetUserActive(admin_pb2.AdminSetUserActiveRequest(username=args.username, active=True))
    emit(args, to_dict(reply.user), "enabled " + _user_text(reply.user))


async def _user_set_admin(args, stub):
    reply = await stub.SetAdmin(admin_pb2.AdminSetAdminRequest(username=args.username, is_admin=not args.revoke))
    emit(args, to_dict(reply.user), _user_text(reply.user))


def parse_duration(text: str) -> dt.timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 12h, 30d, 2w)")
    n, unit = int(match.group(1)), match.group(2)
    return dt.timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: n})


async def _token_mint(args, stub):
    request = admin_pb2.AdminMintTokenRequest(
        username=args.username, description=args.description,
        scope=common_pb2.TokenScope(all_projects=not args.project, project_names=args.project,
                                    allowed_networks=args.networks, release_version=args.release_version))
    if args.expires_in:
        try:
            delta = parse_duration(args.expires_in)
        except ValueError as exc:
            return fail(args, str(exc), 2)
        request.expires_at.FromDatetime(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + delta)
    reply = await stub.MintToken(request)
    emit(args, {"token": reply.token, "info": to_dict(reply.info)}, reply.token)
    if not args.json:  # stdout is the token alone: TOKEN=$(gatehouse admin token mint …)
        note(f"token id {reply.info.id}; expires {reply.info.expires_at.ToJsonString()}; shown once — store it now")


async def _token_list(args, stub):
    reply = await stub.ListTokens(admin_pb2.AdminListTokensRequest(username=args.username))
    rows = [to_dict(t) for t in reply.tokens]
    lines = []
    for t in reply.tokens:
        scope = "all projects" if t.scope.all_projects else ", ".join(t.scope.project_names)
        last = t.last_used_at.ToJsonString() if t.HasField("last_used_at") else "never used"
        expires = t.expires_at.ToJsonString() if t.HasField("expires_at") else "no expiry"
        lines.append(f"{t.id}  {t.description!r}  [{scope}]  {last}  {expires}")
    emit(args, rows, "\n".join(lines) or "no tokens")


async def _token_revoke(args, stub):
    await stub.RevokeToken(admin_pb2.AdminRevokeTokenRequest(token_id=args.token_id))
    emit(args, {"revoked": args.token_id}, f"revoked {args.token_id}")


async def _role_add(args, stub):
    reply = await stub.AddRole(admin_pb2.AdminAddRoleRequest(
        project_name=args.project, username=args.username, role=ROLES[args.role],
        create_project=args.create_project))
    emit(args, to_dict(reply), f"{args.username} is now {args.role} of {reply.project.name or args.project}")


async def _role_remove(args, stub):
    await stub.RemoveRole(admin_pb2.AdminRemoveRoleRequest(project_name=args.project, username=args.username))
    emit(args, {"removed": args.username, "project": args.project},
         f"removed {args.username} from {args.project}")


async def _project_delete(args, stub):
    if not args.yes:
        if not sys.stdin.isatty():
            return fail(args, "refusing to delete without --yes when not on a terminal", 2)
        typed = input(f"Type the project name to delete it ({args.project}): ")
        if typed.strip() != args.project:
            return fail(args, "the name did not match; nothing deleted", 2)
    reply = await stub.DeleteProject(admin_pb2.AdminDeleteProjectRequest(project_name=args.project))
    emit(args, {"deleted": args.project, "project_id": reply.project_id}, f"deleted {args.project}")


async def _project_require_2fa(args, stub):
    reply = await stub.SetProjectTwoFactorRequired(admin_pb2.AdminSetProjectTwoFactorRequiredRequest(
        project_name=args.project, required=not args.off))
    name = reply.project.name or args.project
    text = (f"{name} requires two-factor authentication of its collaborators" if reply.project.two_factor_required
            else f"{name} does not require two-factor authentication")
    if reply.project.two_factor_required and reply.usernames_without_two_factor:
        text += "; not yet enabled by: " + ", ".join(reply.usernames_without_two_factor)
    emit(args, to_dict(reply), text)


async def _project_revoke_long_lived(args, stub):
    reply = await stub.RevokeLongLivedTokens(admin_pb2.AdminRevokeLongLivedTokensRequest(
        project_name=args.project, include_account_wide=args.include_account_wide))
    lines = [f"revoked {t.id}  {t.username}  {t.description!r}" for t in reply.revoked]
    emit(args, to_dict(reply), "\n".join(lines) or f"no long-lived token of {args.project} to revoke")
