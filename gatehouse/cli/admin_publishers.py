"""`gatehouse admin publisher …` and `project trusted-publishing-only`: trusted publishers as an
operator (any project; any user's pending publishers), through AdminService."""

from __future__ import annotations

import argparse

from gatehouse.auth.v1 import admin_pb2, publishing_pb2
from gatehouse.cli.output import emit, fail, to_dict


def add_parsers(groups, project) -> argparse._SubParsersAction:
    """The `publisher` group (returned, for the common options) and `project trusted-publishing-only`."""
    publisher = groups.add_parser("publisher", help="trusted publishers (CI uploads without a stored token)"
                                  ).add_subparsers(dest="action", required=True)
    p = publisher.add_parser("list", help="a project's trusted publishers")
    p.add_argument("project")
    p.set_defaults(run=_list)
    p = publisher.add_parser("add", help="trust a CI workflow to upload to a project")
    p.add_argument("project")
    _spec_options(p)
    p.add_argument("--repository-id", default="", help="bind at once to the repository's immutable id (GitHub "
                   "repository_id, GitLab project_id; with --owner-id), instead of on first use")
    p.add_argument("--owner-id", default="", help="its owner's id (GitHub repository_owner_id, GitLab namespace_id)")
    p.set_defaults(run=_add)
    p = publisher.add_parser("remove", help="remove a project's trusted publisher by id")
    p.add_argument("project")
    p.add_argument("publisher_id")
    p.set_defaults(run=_remove)
    p = publisher.add_parser("pending-list", help="pending publishers (for projects not created yet)")
    p.add_argument("--user", default="", help="only this user's (default: everyone's)")
    p.set_defaults(run=_pending_list)
    p = publisher.add_parser("pending-add", help="a pending publisher: its first upload creates the project, "
                                                 "with USERNAME as Owner")
    p.add_argument("username")
    p.add_argument("project")
    _spec_options(p)
    p.set_defaults(run=_pending_add)
    p = publisher.add_parser("pending-remove", help="remove a pending publisher by id")
    p.add_argument("pending_id")
    p.set_defaults(run=_pending_remove)

    p = project.add_parser("trusted-publishing-only", help="refuse uploads with long-lived API tokens (only its "
                                                           "trusted publishers upload), or stop: --off")
    p.add_argument("project")
    p.add_argument("--off", action="store_true", help="accept API tokens again")
    p.set_defaults(run=_only)
    return publisher


def _spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--issuer", required=True, help="the issuer's URL, as AUTHSVC_OIDC_ISSUERS names it")
    p.add_argument("--owner", default="", help="GitHub/Forgejo owner, GitLab namespace")
    p.add_argument("--repository", default="", help="repository (GitLab: project)")
    p.add_argument("--workflow", default="", help="workflow file name (GitLab: CI config path)")
    p.add_argument("--environment", default="", help="deployment environment (optional)")
    p.add_argument("--email", default="", help="Google service account email")
    p.add_argument("--subject", default="", help="Google service account id (optional)")
    p.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE",
                   help="a custom issuer's claim (repeatable)")


def _spec(args) -> publishing_pb2.PublisherSpec | None:
    """The spec the options give; None when a --claim is not NAME=VALUE."""
    claims = {}
    for item in args.claim:
        name, sep, value = item.partition("=")
        if not sep or not name:
            return None
        claims[name] = value
    return publishing_pb2.PublisherSpec(issuer_url=args.issuer, owner=args.owner, repository=args.repository,
                                        workflow=args.workflow, environment=args.environment, email=args.email,
                                        subject=args.subject, claims=claims,
                                        repository_id=getattr(args, "repository_id", ""),
                                        owner_id=getattr(args, "owner_id", ""))


def _line(publisher) -> str:
    bound = " (bound)" if publisher.bound_repository_id else ""
    return f"{publisher.id}  {publisher.display}{bound}  added by {publisher.created_by}"


def _pending_line(pending) -> str:
    return f"{pending.id}  {pending.project_name}: {pending.display}  for {pending.username}"


async def _list(args, stub):
    reply = await stub.ListPublishers(admin_pb2.AdminListPublishersRequest(project_name=args.project))
    emit(args, [to_dict(p) for p in reply.publishers],
         "\n".join(_line(p) for p in reply.publishers) or f"{args.project} has no trusted publishers")


async def _add(args, stub):
    spec = _spec(args)
    if spec is None:
        return fail(args, "--claim takes NAME=VALUE; nothing was added", 2)
    reply = await stub.AddPublisher(admin_pb2.AdminAddPublisherRequest(project_name=args.project, spec=spec))
    emit(args, to_dict(reply.publisher), "added " + _line(reply.publisher))


async def _remove(args, stub):
    await stub.RemovePublisher(admin_pb2.AdminRemovePublisherRequest(project_name=args.project,
                                                                     publisher_id=args.publisher_id))
    emit(args, {"removed": args.publisher_id, "project": args.project},
         f"removed trusted publisher {args.publisher_id} from {args.project}")


async def _pending_list(args, stub):
    reply = await stub.ListPendingPublishers(admin_pb2.AdminListPendingPublishersRequest(username=args.user))
    emit(args, [to_dict(p) for p in reply.pending_publishers],
         "\n".join(_pending_line(p) for p in reply.pending_publishers) or "no pending publishers")


async def _pending_add(args, stub):
    spec = _spec(args)
    if spec is None:
        return fail(args, "--claim takes NAME=VALUE; nothing was added", 2)
    reply = await stub.AddPendingPublisher(admin_pb2.AdminAddPendingPublisherRequest(
        username=args.username, project_name=args.project, spec=spec))
    emit(args, to_dict(reply.pending_publisher), "added " + _pending_line(reply.pending_publisher))


async def _pending_remove(args, stub):
    await stub.RemovePendingPublisher(admin_pb2.AdminRemovePendingPublisherRequest(
        pending_publisher_id=args.pending_id))
    emit(args, {"removed": args.pending_id}, f"removed pending publisher {args.pending_id}")


async def _only(args, stub):
    reply = await stub.SetProjectTrustedPublishingOnly(admin_pb2.AdminSetTrustedPublishingOnlyRequest(
        project_name=args.project, enabled=not args.off))
    name = reply.project.name or args.project
    text = (f"{name} accepts uploads only from its trusted publishers" if reply.project.trusted_publishing_only
            else f"{name} accepts uploads with API tokens")
    emit(args, to_dict(reply), text)
