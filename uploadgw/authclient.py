"""The gateway's calls to the auth service: token checks for uploads and private index reads.

The gateway never parses a token; it passes it to authsvc over gRPC with a deadline and turns the
answer into a result object or one of its own errors. Any failure to get an answer is a 503: an
upload is never accepted without a positive answer. Upload checks travel as messages of one
long-lived stream (`VerifyUploadTokens`, see `gatehouse.infra.streamcalls`): about half the round
trip of a call each; an authsvc without that method gets unary calls instead.

The channel balances calls over every authsvc pod (`gatehouse.infra.grpcbalance`). The upload checks
go over `UPLOAD_CHECK_STREAMS` streams, each renewed after `UPLOAD_CHECK_STREAM_MAX_AGE` seconds, so
that they too spread over the pods and reach new ones; a check whose stream broke (its pod died) is
sent again on a new stream, as the channel retries a unary check: the check may run twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time

import grpc

from gatehouse.auth.v1 import (
    common_pb2,
    projects_pb2,
    projects_pb2_grpc,
    publishing_pb2,
    publishing_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
)
from gatehouse.infra.grpcserver import call_metadata
from gatehouse.infra.outbox import Origin
from gatehouse.infra.rpcstatus import ErrorStatus
from gatehouse.infra.streamcalls import StreamedCaller
from uploadgw.errors import (
    AuthenticationRequired,
    DependencyUnavailable,
    Forbidden,
    InvalidUpload,
    NotFound,
    RateLimited,
)
from uploadgw.refusals import Refusal, Surface

log = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE = ("The authentication service is unavailable, so the upload was not accepted. "
                       "Try again in a moment.")
READ_UNAVAILABLE_MESSAGE = "The authentication service is unavailable. Try again in a moment."
# round_robin puts streams opened one after another on successive pods: up to four authsvc pods
# each carry a share of this gateway's checks; with more, each renewal moves its streams on.
UPLOAD_CHECK_STREAMS = 4
# Below authsvc's connection age grace (grpcbalance.MAX_CONNECTION_AGE_GRACE_MS): a stream is renewed
# by the gateway before the server would cut it.
UPLOAD_CHECK_STREAM_MAX_AGE = 60.0


@dataclasses.dataclass(frozen=True)
class Publisher:
    """The trusted publisher an upload token was minted for, and the claims of its CI run."""

    id: str
    kind: str
    display: str
    issuer_url: str
    run_claims: dict[str, str]


@dataclasses.dataclass(frozen=True)
class UploadIdentity:
    """Who may upload to which project, as authsvc answered for this one upload (a trusted
    publisher's token: user_id and username are the publisher's id and display)."""

    user_id: str
    username: str
    project_id: str
    project_name: str
    token_id: str
    project_created: bool
    publisher: Publisher | None = None


# The trusted-publishing exchange's refusals: authsvc's reason -> PyPI's error code.
EXCHANGE_CODES = {"NOT_ENABLED": "not-enabled", "INVALID_PAYLOAD": "invalid-payload",
                  "INVALID_TOKEN": "invalid-token", "INVALID_REUSE_TOKEN": "invalid-reuse-token",
                  "INVALID_PUBLISHER": "invalid-publisher", "INVALID_PENDING_PUBLISHER": "invalid-pending-publisher"}


@dataclasses.dataclass(frozen=True)
class MintedToken:
    token: str
    expires: int  # Unix time


class ExchangeRefused(Exception):
    """The exchange's answer when it is not a token: PyPI's error code and a description for the CI
    user; `unavailable` when authsvc (or the issuer behind it) could not answer."""

    def __init__(self, code: str, description: str, *, unavailable: bool = False):
        super().__init__(description)
        self.code = code
        self.description = description
        self.unavailable = unavailable


@dataclasses.dataclass(frozen=True)
class ReaderIdentity:
    user_id: str
    username: str
    token_id: str


def client_info(origin: Origin | None) -> common_pb2.ClientInfo:
    """The end user's address and user agent as authsvc takes them (cut to its column sizes);
    every call the gateway makes on a user's behalf carries one (uploads, index, pages)."""
    origin = origin or Origin()
    return common_pb2.ClientInfo(ip_address=origin.ip_address[:64], user_agent=origin.user_agent[:300])


# The gateway's error for each HTTP status of a refusal (`uploadgw.refusals` decides the status).
_ERRORS = {400: InvalidUpload, 401: AuthenticationRequired, 403: Forbidden, 404: NotFound, 429: RateLimited}


class AuthClient:
    """Wraps the TokenService stub on a bare channel (`open_bare_channel`); every
    call carries the gateway's credential and a deadline."""

    def __init__(self, channel: grpc.aio.Channel, *, credential: str, timeout: float,
                 index_cache_seconds: float = 0.0):
        self._tokens = tokens_pb2_grpc.TokenServiceStub(channel)
        self._projects = projects_pb2_grpc.ProjectServiceStub(channel)
        self._publishing = publishing_pb2_grpc.PublishingServiceStub(channel)
        self._metadata = call_metadata(credential)
        self._upload_checks = StreamedCaller(lambda: self._tokens.VerifyUploadTokens(metadata=self._metadata),
                                             tokens_pb2.VerifyUploadTokenCall, width=UPLOAD_CHECK_STREAMS,
                                             max_age=UPLOAD_CHECK_STREAM_MAX_AGE, retry_lost=True)
        self._timeout = timeout
        self._index_cache_seconds = index_cache_seconds
        self._index_cache: dict[bytes, tuple[float, ReaderIdentity]] = {}

    async def verify_upload(self, token: str, project_name: str, origin: Origin, version: str = "") -> UploadIdentity:
        """May this token upload `version` of `project_name` from `origin`'s address (authsvc decides)."""
        request = tokens_pb2.VerifyUploadTokenRequest(token=token, project_name=project_name, version=version,
                                                      client=client_info(origin))
        try:
            reply = await self._verify_upload(request)
        except grpc.aio.AioRpcError as err:
            raise self._map(err, upload=True) from None
        if not reply.user_id or not reply.project_id:
            # A positive answer must say who and which project; anything else fails closed.
            raise DependencyUnavailable(UNAVAILABLE_MESSAGE, reason="auth_bad_reply")
        publisher = None
        if reply.HasField("publisher"):
            ref = reply.publisher
            publisher = Publisher(id=ref.id, kind=ref.kind, display=ref.display, issuer_url=ref.issuer_url,
                                  run_claims=dict(ref.run_claims))
        return UploadIdentity(
            user_id=reply.user_id, username=reply.username, project_id=reply.project_id,
            project_name=reply.project_name or project_name, token_id=reply.token_id,
            project_created=reply.project_created, publisher=publisher,
        )

    async def check_upload_token(self, token: str, origin: Origin) -> None:
        """The check at an upload's headers: Forbidden when authsvc refuses the token itself
        (malformed, forged, retired key, deleted, expired, user disabled). Only a refusal counts: any
        other outcome leaves the decision to `verify_upload`, which every accepted upload needs."""
        request = tokens_pb2.VerifyUploadTokenRequest(token=token, token_only=True, client=client_info(origin))
        try:
            await self._verify_upload(request)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise self._map(err, upload=True) from None

    async def _verify_upload(self, request: tokens_pb2.VerifyUploadTokenRequest):
        if not self._upload_checks.unimplemented:
            try:
                return await self._upload_checks.call(request, self._timeout)
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                log.info("authsvc has no VerifyUploadTokens: upload checks use unary calls")
        return await self._tokens.VerifyUploadToken(request, metadata=self._metadata, timeout=self._timeout)

    async def close(self) -> None:
        await self._upload_checks.close()

    async def project_id(self, name: str) -> str | None:
        """The id authsvc has now for the project `name`, or None when it has none."""
        try:
            reply = await self._projects.GetProject(projects_pb2.GetProjectRequest(name=name),
                                                    metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise self._map(err, upload=False) from None
        return reply.project.id or None

    async def verify_index(self, token: str, origin: Origin) -> ReaderIdentity:
        # Keyed by the client address too: a token may be restricted to some networks.
        key = hashlib.sha256(token.encode() + b"\x00" + origin.ip_address.encode()).digest()
        if self._index_cache_seconds > 0:
            hit = self._index_cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        request = tokens_pb2.VerifyIndexTokenRequest(token=token, client=client_info(origin))
        try:
            reply = await self._tokens.VerifyIndexToken(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            raise self._map(err, upload=False) from None
        if not reply.user_id:
            raise DependencyUnavailable(READ_UNAVAILABLE_MESSAGE, reason="auth_bad_reply")
        reader = ReaderIdentity(user_id=reply.user_id, username=reply.username, token_id=reply.token_id)
        if self._index_cache_seconds > 0:
            if len(self._index_cache) > 10_000:
                self._index_cache.clear()
            self._index_cache[key] = (time.monotonic() + self._index_cache_seconds, reader)
        return reader

    async def oidc_audience(self) -> str:
        """The audience identity tokens must name (ExchangeRefused when not enabled or unavailable)."""
        try:
            reply = await self._publishing.GetAudience(publishing_pb2.GetAudienceRequest(), metadata=self._metadata,
                                                       timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            raise self._exchange_refusal(err) from None
        return reply.audience

    async def mint_publisher_token(self, token: str, *, single_use: bool, origin: Origin) -> MintedToken:
        """Exchange a CI job's identity token for an upload token (ExchangeRefused when refused)."""
        request = publishing_pb2.MintPublisherTokenRequest(token=token, single_use=single_use,
                                                           client=client_info(origin))
        try:
            reply = await self._publishing.MintToken(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            raise self._exchange_refusal(err) from None
        if not reply.token:
            raise ExchangeRefused("service-unavailable", UNAVAILABLE_MESSAGE, unavailable=True)
        return MintedToken(token=reply.token, expires=reply.expires_at.seconds)

    @staticmethod
    def _exchange_refusal(err: grpc.aio.AioRpcError) -> ExchangeRefused:
        status = ErrorStatus.of_rpc(err)
        code = EXCHANGE_CODES.get(status.reason)
        if code is None:
            log.warning("authsvc exchange call failed", extra={"grpc_status": status.code.name,
                                                                "reason": status.reason})
            message = status.message if status.code == grpc.StatusCode.UNAVAILABLE and status.reason else ""
            return ExchangeRefused("service-unavailable", message or "The authentication service is unavailable. "
                                   "Try again in a moment.", unavailable=True)
        return ExchangeRefused(code, status.message)

    def _map(self, err: grpc.aio.AioRpcError, *, upload: bool):
        """The gateway's error for a failed call, by `uploadgw.refusals` (status and reason); the
        message is authsvc's, which twine prints. Any failure to get an answer is a 503."""
        refusal = Refusal.of(err, Surface.UPLOAD if upload else Surface.READ)
        if refusal.unavailable:
            log.warning("authsvc call failed", extra={"grpc_status": refusal.code.name, "reason": refusal.label})
            return DependencyUnavailable(UNAVAILABLE_MESSAGE if upload else READ_UNAVAILABLE_MESSAGE,
                                         reason="auth_unavailable")
        return _ERRORS[refusal.http_status](refusal.message or "Access denied.", reason=refusal.label,
                                            retry_after=refusal.retry_after)
