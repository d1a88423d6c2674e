"""PublishingService over gRPC: translates protobuf to the exchange and publisher calls and back."""

from __future__ import annotations

from authsvc.accounts.service import AccountsService
from authsvc.grpc_common import origin, ts
from authsvc.projects.grpc_api import project_pb
from authsvc.publishing.exchange import Exchange
from authsvc.publishing.kinds import Spec
from authsvc.publishing.service import PendingView, PublishersService, PublisherView, SpecInput
from authsvc.settings import OidcIssuer
from gatehouse.auth.v1 import publishing_pb2, publishing_pb2_grpc
from gatehouse.infra.outbox import ActorRef

_KINDS = {"github": publishing_pb2.PUBLISHER_KIND_GITHUB, "gitlab": publishing_pb2.PUBLISHER_KIND_GITLAB,
          "forgejo": publishing_pb2.PUBLISHER_KIND_FORGEJO, "google": publishing_pb2.PUBLISHER_KIND_GOOGLE,
          "custom": publishing_pb2.PUBLISHER_KIND_CUSTOM}


def spec_input(spec: publishing_pb2.PublisherSpec) -> SpecInput:
    return SpecInput(issuer_url=spec.issuer_url, owner=spec.owner, repository=spec.repository,
                     workflow=spec.workflow, environment=spec.environment, email=spec.email,
                     subject=spec.subject, claims=dict(spec.claims), repository_id=spec.repository_id,
                     owner_id=spec.owner_id)


def spec_pb(spec: Spec) -> publishing_pb2.PublisherSpec:
    return publishing_pb2.PublisherSpec(issuer_url=spec.issuer_url, owner=spec.owner, repository=spec.repository,
                                        workflow=spec.workflow, environment=spec.environment, email=spec.email,
                                        subject=spec.subject, claims=dict(spec.claims))


def publisher_pb(view: PublisherView) -> publishing_pb2.Publisher:
    return publishing_pb2.Publisher(
        id=view.id, kind=_KINDS[view.spec.kind], spec=spec_pb(view.spec), project_id=view.project_id,
        project_name=view.project_name, display=view.display, bound_repository_id=view.bound_repository_id,
        bound_owner_id=view.bound_owner_id, created_at=ts(view.created_at), created_by=view.created_by)


def pending_pb(view: PendingView) -> publishing_pb2.PendingPublisher:
    return publishing_pb2.PendingPublisher(
        id=view.id, kind=_KINDS[view.spec.kind], spec=spec_pb(view.spec), project_name=view.project_name,
        display=view.display, username=view.username, created_at=ts(view.created_at))


def issuer_pb(issuer: OidcIssuer) -> publishing_pb2.Issuer:
    return publishing_pb2.Issuer(url=issuer.url, kind=_KINDS[issuer.kind], name=issuer.name, claims=issuer.claims)


class PublishingServicer(publishing_pb2_grpc.PublishingServiceServicer):
    def __init__(self, accounts: AccountsService, publishers: PublishersService, exchange: Exchange):
        self.accounts = accounts
        self.publishers = publishers
        self.exchange = exchange

    async def _user(self, session_token: str):
        auth = await self.accounts.authenticate_session(session_token)
        return auth.user, ActorRef.user(auth.user.id, auth.user.username)

    async def GetAudience(self, request, context):
        self.exchange.check_enabled()
        return publishing_pb2.GetAudienceResponse(audience=self.exchange.audience)

    async def MintToken(self, request, context):
        where = origin(request.client)
        minted = await self.exchange.mint(request.token, single_use=request.single_use, origin=where)
        return publishing_pb2.MintPublisherTokenResponse(
            token=minted.token, expires_at=ts(minted.expires_at), project_names=minted.project_names,
            single_use=minted.single_use)

    async def ListIssuers(self, request, context):
        return publishing_pb2.ListIssuersResponse(issuers=[issuer_pb(i) for i in self.publishers.issuers])

    async def ListPublishers(self, request, context):
        user, _ = await self._user(request.session_token)
        views = await self.publishers.list_publishers(request.project_name, as_user=user)
        return publishing_pb2.ListPublishersResponse(publishers=[publisher_pb(v) for v in views])

    async def AddPublisher(self, request, context):
        where = origin(request.client)
        user, actor = await self._user(request.session_token)
        view = await self.publishers.add_publisher(request.project_name, spec_input(request.spec), as_user=user,
                                                   actor=actor, origin=where)
        return publishing_pb2.AddPublisherResponse(publisher=publisher_pb(view))

    async def RemovePublisher(self, request, context):
        where = origin(request.client)
        user, actor = await self._user(request.session_token)
        await self.publishers.remove_publisher(request.project_name, request.publisher_id, as_user=user,
                                               actor=actor, origin=where)
        return publishing_pb2.RemovePublisherResponse()

    async def ListPendingPublishers(self, request, context):
        user, _ = await self._user(request.session_token)
        views = await self.publishers.list_pending(user.id)
        return publishing_pb2.ListPendingPublishersResponse(pending_publishers=[pending_pb(v) for v in views])

    async def AddPendingPublisher(self, request, context):
        where = origin(request.client)
        user, actor = await self._user(request.session_token)
        view = await self.publishers.add_pending(request.project_name, spec_input(request.spec), user=user,
                                                 actor=actor, origin=where)
        return publishing_pb2.AddPendingPublisherResponse(pending_publisher=pending_pb(view))

    async def RemovePendingPublisher(self, request, context):
        where = origin(request.client)
        user, actor = await self._user(request.session_token)
        await self.publishers.remove_pending(request.pending_publisher_id, owner_id=user.id, actor=actor,
                                             origin=where)
        return publishing_pb2.RemovePendingPublisherResponse()

    async def SetTrustedPublishingOnly(self, request, context):
        where = origin(request.client)
        user, actor = await self._user(request.session_token)
        project = await self.publishers.set_trusted_publishing_only(request.project_name, request.enabled,
                                                                    as_user=user, actor=actor, origin=where)
        return publishing_pb2.SetTrustedPublishingOnlyResponse(project=project_pb(project))
