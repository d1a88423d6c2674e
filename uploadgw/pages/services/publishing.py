"""Trusted publishers for the pages: a project's publishers (its Owners) and the user's pending
publishers, through authsvc's PublishingService (which checks the session and the Owner role
itself); the issuers to choose from come from authsvc's settings."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

import grpc

from gatehouse.auth.v1 import publishing_pb2, publishing_pb2_grpc
from gatehouse.infra.outbox import Origin
from uploadgw.pages.services.errors import PageError
from uploadgw.pages.services.rpc import Caller, client_info

# The form's fields, in the order the page shows them; a refusal names one of them by its reason.
SPEC_FIELDS = ("issuer", "owner", "repository", "workflow", "environment", "email", "subject", "claims")
PENDING_FIELDS = ("project_name", *SPEC_FIELDS)
# What each kind of issuer asks for (the rest of the form's fields must stay empty).
KIND_FIELDS = {"github": ("owner", "repository", "workflow", "environment"),
               "forgejo": ("owner", "repository", "workflow", "environment"),
               "gitlab": ("owner", "repository", "workflow", "environment"),
               "google": ("email", "subject"), "custom": ("claims",)}
_KIND_NAMES = {publishing_pb2.PUBLISHER_KIND_GITHUB: "github", publishing_pb2.PUBLISHER_KIND_GITLAB: "gitlab",
               publishing_pb2.PUBLISHER_KIND_FORGEJO: "forgejo", publishing_pb2.PUBLISHER_KIND_GOOGLE: "google",
               publishing_pb2.PUBLISHER_KIND_CUSTOM: "custom"}


@dataclasses.dataclass(frozen=True)
class IssuerChoice:
    url: str
    name: str
    kind: str
    claims: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PublisherRow:
    id: str
    display: str
    bound: bool  # the provider's immutable ids are bound (it has published once)
    created_at: dt.datetime
    created_by: str


@dataclasses.dataclass(frozen=True)
class PendingRow:
    id: str
    display: str
    project_name: str
    created_at: dt.datetime


def _when(ts) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.timezone.utc)


def parse_claims(text: str) -> dict[str, str]:
    """A custom issuer's claims as the form takes them: one `name=value` a line."""
    claims: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise PageError("Write each claim on its own line as name=value.", field="claims")
        claims[name.strip()] = value.strip()
    return claims


class PublishingPages:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float):
        self._stub = publishing_pb2_grpc.PublishingServiceStub(channel)
        self._call = Caller(timeout)

    async def issuers(self) -> list[IssuerChoice]:
        reply = await self._call(self._stub.ListIssuers, publishing_pb2.ListIssuersRequest(), session_call=False)
        return [IssuerChoice(url=i.url, name=i.name, kind=_KIND_NAMES.get(i.kind, "custom"), claims=tuple(i.claims))
                for i in reply.issuers]

    async def spec(self, values: Mapping[str, str]) -> publishing_pb2.PublisherSpec:
        """The spec a form entered, with the fields of the chosen issuer's kind only (the form
        shows every field, so that it works without JavaScript); a field left out is named."""
        issuer = next((i for i in await self.issuers() if i.url == values.get("issuer", "")), None)
        if issuer is None:
            raise PageError("Choose the CI system (issuer) that will publish.", field="issuer")
        used = KIND_FIELDS[issuer.kind]
        required = {"owner": "Enter the owner (GitLab: the namespace).",
                    "repository": "Enter the repository (GitLab: the project).",
                    "workflow": "Enter the workflow file name (GitLab: the CI config path).",
                    "email": "Enter the service account's email address."}
        for name in used:
            if name in required and not values.get(name, "").strip():
                raise PageError(required[name], field=name)
        spec = publishing_pb2.PublisherSpec(issuer_url=issuer.url)
        for name in used:
            if name == "claims":
                spec.claims.update(parse_claims(values.get("claims", "")))
            else:
                setattr(spec, name, values.get(name, "").strip())
        return spec

    # -- a project's publishers (Owners) ---------------------------------------------------------
    async def publishers(self, session_token: str, project_name: str) -> list[PublisherRow]:
        reply = await self._call(self._stub.ListPublishers, publishing_pb2.ListPublishersRequest(
            session_token=session_token, project_name=project_name))
        return [PublisherRow(id=p.id, display=p.display, bound=bool(p.bound_repository_id),
                             created_at=_when(p.created_at), created_by=p.created_by) for p in reply.publishers]

    async def add(self, session_token: str, project_name: str, values: Mapping[str, str],
                  origin: Origin | None) -> str:
        """Add the publisher the form describes; its display text."""
        reply = await self._call(self._stub.AddPublisher, publishing_pb2.AddPublisherRequest(
            session_token=session_token, project_name=project_name, spec=await self.spec(values),
            client=client_info(origin)), fields=SPEC_FIELDS)
        return reply.publisher.display

    async def remove(self, session_token: str, project_name: str, publisher_id: str, origin: Origin | None) -> None:
        await self._call(self._stub.RemovePublisher, publishing_pb2.RemovePublisherRequest(
            session_token=session_token, project_name=project_name, publisher_id=publisher_id,
            client=client_info(origin)))

    # -- pending publishers (the user's, for projects that do not exist yet) ---------------------
    async def pending(self, session_token: str) -> list[PendingRow]:
        reply = await self._call(self._stub.ListPendingPublishers, publishing_pb2.ListPendingPublishersRequest(
            session_token=session_token))
        return [PendingRow(id=p.id, display=p.display, project_name=p.project_name, created_at=_when(p.created_at))
                for p in reply.pending_publishers]

    async def add_pending(self, session_token: str, values: Mapping[str, str], origin: Origin | None) -> str:
        if not values.get("project_name", "").strip():
            raise PageError("Enter the name of the project the first upload will create.", field="project_name")
        reply = await self._call(self._stub.AddPendingPublisher, publishing_pb2.AddPendingPublisherRequest(
            session_token=session_token, project_name=values["project_name"].strip(),
            spec=await self.spec(values), client=client_info(origin)), fields=PENDING_FIELDS)
        return reply.pending_publisher.display

    async def remove_pending(self, session_token: str, pending_id: str, origin: Origin | None) -> None:
        await self._call(self._stub.RemovePendingPublisher, publishing_pb2.RemovePendingPublisherRequest(
            session_token=session_token, pending_publisher_id=pending_id, client=client_info(origin)))

    async def set_only(self, session_token: str, project_name: str, enabled: bool, origin: Origin | None) -> None:
        """"Trusted publishing only": refuse uploads with long-lived API tokens (or stop)."""
        await self._call(self._stub.SetTrustedPublishingOnly, publishing_pb2.SetTrustedPublishingOnlyRequest(
            session_token=session_token, project_name=project_name, enabled=enabled, client=client_info(origin)),
            field="enabled")
