"""gRPC server bootstrap and the one interceptor every Gatehouse server runs.

The interceptor (1) checks the service credential carried in call metadata and refuses calls
without a valid one, (2) keeps operator-only services for the operator credential and holds a
narrow credential to the methods it is for, (3) maps the
services' `GatehouseError`s to gRPC status codes with their message and, in the status details, their
reason (`rpcstatus`: ErrorInfo, and RetryInfo when there is a wait), and (4) records metrics.
Health checking and reflection are open so that Kubernetes probes and grpcurl work.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gatehouse.diag.v1 import echo_pb2, echo_pb2_grpc
from gatehouse.infra.errors import GatehouseError
from gatehouse.infra.grpcbalance import channel_options, server_options
from gatehouse.infra.metrics import GrpcMetrics
from gatehouse.infra.rpcstatus import DEFAULT_DOMAIN, ErrorStatus
from gatehouse.infra.tls import ReloadingChannel, TlsSettings

log = logging.getLogger(__name__)
_TRequest = TypeVar("_TRequest")
_TResponse = TypeVar("_TResponse")
# grpc.aio's method behaviours: a coroutine function, or an async generator for a response stream.
_Context = grpc.aio.ServicerContext[_TRequest, _TResponse]
_UnaryBehavior = Callable[[_TRequest, _Context[_TRequest, _TResponse]], Awaitable[_TResponse]]
_StreamBehavior = Callable[[_TRequest, _Context[_TRequest, _TResponse]], AsyncIterator[_TResponse]]

CREDENTIAL_HEADER = "x-gatehouse-credential"
# The reasons of the interceptor's refusals of a caller's credential (a configuration fault of the
# calling service, never the end user's).
CREDENTIAL_REASONS = frozenset({"SERVICE_CREDENTIAL_INVALID", "NARROW_CREDENTIAL", "OPERATOR_ONLY"})
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.", "/grpc.reflection.v1.")


class CallerRole(enum.IntEnum):
    SERVICE = 1   # another Gatehouse service (the gateway)
    OPERATOR = 2  # the operator CLI
    NARROW = 3    # a service allowed a few named methods only (the audit API: ValidateSession)


_caller_role: contextvars.ContextVar[CallerRole | None] = contextvars.ContextVar(
    "gatehouse_caller_role", default=None
)


def current_caller_role() -> CallerRole | None:
    """The role of the credential on the call being served (set by the interceptor)."""
    return _caller_role.get()


class Credentials:
    """Accepted service credentials. Only digests are kept; comparison is constant-time."""

    def __init__(self, keys: Mapping[str, CallerRole]):
        self._digests = [(hashlib.sha256(k.encode()).digest(), role) for k, role in keys.items() if k]
        if not self._digests:
            raise ValueError("at least one service credential is required")

    def role_for(self, presented: str | None) -> CallerRole | None:
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for known, role in self._digests:  # no early exit: constant work whatever matches
            if hmac.compare_digest(digest, known):
                found = role
        return found


def _aborting_handler(status: ErrorStatus) -> grpc.RpcMethodHandler[Any, Any]:
    async def abort(request: object, context: _Context[Any, Any]) -> None:
        await context.abort(status.code, status.message, status.trailing_metadata())

    return grpc.unary_unary_rpc_method_handler(abort)


class GatehouseInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        credentials: Credentials,
        *,
        operator_services: Iterable[str] = (),
        narrow_methods: Iterable[str] = (),
        metrics: GrpcMetrics | None = None,
        domain: str = DEFAULT_DOMAIN,
    ) -> None:
        self._credentials = credentials
        self._domain = domain
        self._operator_prefixes = tuple(f"/{name}/" for name in operator_services)
        self._narrow_methods = frozenset(narrow_methods)
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails],
                               Awaitable[grpc.RpcMethodHandler[_TRequest, _TResponse] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_TRequest, _TResponse] | None:
        method: str = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        presented = metadata.get(CREDENTIAL_HEADER)  # str: only "-bin" keys carry bytes
        role = self._credentials.role_for(presented if isinstance(presented, str) else None)
        if role is None:
            self._count(method, grpc.StatusCode.UNAUTHENTICATED, "no_service_credential")
            return self._refusal(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid service credential",
                                 "SERVICE_CREDENTIAL_INVALID")
        if role is CallerRole.NARROW and method not in self._narrow_methods:
            self._count(method, grpc.StatusCode.PERMISSION_DENIED, "narrow_credential")
            return self._refusal(grpc.StatusCode.PERMISSION_DENIED, "this credential may not call this method",
                                 "NARROW_CREDENTIAL")
        if method.startswith(self._operator_prefixes) and role is not CallerRole.OPERATOR:
            self._count(method, grpc.StatusCode.PERMISSION_DENIED, "operator_only")
            return self._refusal(grpc.StatusCode.PERMISSION_DENIED, "this method needs the operator credential",
                                 "OPERATOR_ONLY")
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                # types-grpcio types the behaviour as a synchronous one; grpc.aio's is a coroutine function
                self._wrap_unary(method, role, handler.unary_unary),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                # types-grpcio types the behaviour as a synchronous one; grpc.aio's is an async generator
                self._wrap_stream(method, role, handler.unary_stream),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _refusal(self, code: grpc.StatusCode, message: str, reason: str) -> grpc.RpcMethodHandler[Any, Any]:
        return _aborting_handler(ErrorStatus(code=code, message=message, reason=reason, domain=self._domain))

    def _count(self, method: str, code: grpc.StatusCode, reason: str | None = None,
               seconds: float | None = None) -> None:
        if self._metrics is not None:
            self._metrics.observe(method, code, reason, seconds)

    async def _fail(self, context: _Context[Any, Any], method: str, exc: GatehouseError, started: float) -> NoReturn:
        self._count(method, exc.code, exc.reason, time.perf_counter() - started)
        status = ErrorStatus.of_error(exc, self._domain)
        await context.abort(status.code, status.message, status.trailing_metadata())

    async def _internal(self, context: _Context[Any, Any], method: str, started: float) -> NoReturn:
        log.exception("unhandled error", extra={"method": method})
        self._count(method, grpc.StatusCode.INTERNAL, "internal", time.perf_counter() - started)
        status = ErrorStatus.internal(self._domain)
        await context.abort(status.code, status.message, status.trailing_metadata())

    def _wrap_unary(self, method: str, role: CallerRole, behavior: _UnaryBehavior[_TRequest, _TResponse]
                    ) -> _UnaryBehavior[_TRequest, _TResponse]:
        async def wrapper(request: _TRequest, context: _Context[_TRequest, _TResponse]) -> _TResponse:
            token = _caller_role.set(role)
            started = time.perf_counter()
            try:
                response = await behavior(request, context)
            except GatehouseError as exc:
                await self._fail(context, method, exc, started)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception:
                await self._internal(context, method, started)
            else:
                self._count(method, grpc.StatusCode.OK, None, time.perf_counter() - started)
                return response
            finally:
                _caller_role.reset(token)

        return wrapper

    def _wrap_stream(self, method: str, role: CallerRole, behavior: _StreamBehavior[_TRequest, _TResponse]
                     ) -> _StreamBehavior[_TRequest, _TResponse]:
        async def wrapper(request: _TRequest, context: _Context[_TRequest, _TResponse]) -> AsyncIterator[_TResponse]:
            token = _caller_role.set(role)
            started = time.perf_counter()
            try:
                async for item in behavior(request, context):
                    yield item
            except GatehouseError as exc:
                await self._fail(context, method, exc, started)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception:
                await self._internal(context, method, started)
            else:
                self._count(method, grpc.StatusCode.OK, None, time.perf_counter() - started)
            finally:
                _caller_role.reset(token)

        return wrapper


class EchoServicer(echo_pb2_grpc.EchoServiceServicer):
    async def Echo(self, request: echo_pb2.EchoRequest,
                   context: _Context[echo_pb2.EchoRequest, echo_pb2.EchoResponse]) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(payload=request.payload)


async def start_server(
    *,
    listen: str,
    register: Callable[[grpc.aio.Server], Iterable[str]],
    credentials: Credentials,
    operator_services: Iterable[str] = (),
    narrow_methods: Iterable[str] = (),
    metrics: GrpcMetrics | None = None,
    server_credentials: grpc.ServerCredentials | None = None,
    domain: str = DEFAULT_DOMAIN,
    max_connection_age: bool = False,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Build and start a server: `register` adds the servicers and returns their full names.
    `domain` names the service in its errors' ErrorInfo ("gatehouse.authsvc"); `max_connection_age`
    ends each connection after a while so that clients resolve the name again (`grpcbalance`).

    Returns the server, the port it really bound (listen on port 0 for tests) and the health
    servicer (set NOT_SERVING on shutdown so that readiness probes drain traffic first).
    """
    server = grpc.aio.server(
        interceptors=[GatehouseInterceptor(credentials, operator_services=operator_services,
                                           narrow_methods=narrow_methods, metrics=metrics, domain=domain)],
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 4 * 1024 * 1024),
                 *server_options(max_connection_age=max_connection_age)],
    )
    names = list(register(server))
    echo_pb2_grpc.add_EchoServiceServicer_to_server(EchoServicer(), server)
    names.append(echo_pb2.DESCRIPTOR.services_by_name["EchoService"].full_name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME, health.SERVICE_NAME], server)
    if server_credentials is not None:
        port = server.add_secure_port(listen, server_credentials)
    else:
        port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"could not listen on {listen}")
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


# -- client side ---------------------------------------------------------------------------------


class _CredentialInterceptor:
    """Adds the service credential and a default deadline to every outgoing call.

    grpc.aio files an interceptor under the FIRST interceptor kind it is an instance of, so one
    object cannot serve two kinds: `open_channel` installs one per kind.
    """

    def __init__(self, credential: str, default_timeout: float) -> None:
        self._metadata = call_metadata(credential)
        self._timeout = default_timeout

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self._metadata)
        timeout = details.timeout if details.timeout is not None else self._timeout
        return grpc.aio.ClientCallDetails(
            details.method, timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, _TRequest],
                               Awaitable[grpc.aio.UnaryUnaryCall[_TRequest, _TResponse]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: _TRequest,
    ) -> grpc.aio.UnaryUnaryCall[_TRequest, _TResponse]:
        return await continuation(self._details(client_call_details), request)

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, _TRequest],
                               Awaitable[grpc.aio.UnaryStreamCall[_TRequest, _TResponse]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: _TRequest,
    ) -> grpc.aio.UnaryStreamCall[_TRequest, _TResponse]:
        return await continuation(self._details(client_call_details), request)


class _UnaryCredentialInterceptor(_CredentialInterceptor, grpc.aio.UnaryUnaryClientInterceptor):
    pass


class _StreamCredentialInterceptor(_CredentialInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    pass


def open_channel(
    target: str,
    credential: str,
    *,
    default_timeout: float = 5.0,
    channel_credentials: grpc.ChannelCredentials | None = None,
    tls: TlsSettings | None = None,
) -> grpc.aio.Channel:
    """A channel whose every call carries `credential` and a deadline (default 5 s); over TLS
    that follows its files when `tls` is given (`gatehouse.infra.tls`)."""
    interceptors: list[grpc.aio.ClientInterceptor] = [_UnaryCredentialInterceptor(credential, default_timeout),
                                                      _StreamCredentialInterceptor(credential, default_timeout)]
    return open_bare_channel(target, channel_credentials=channel_credentials, interceptors=interceptors, tls=tls)


def open_bare_channel(target: str, *, channel_credentials: grpc.ChannelCredentials | None = None,
                      interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
                      tls: TlsSettings | None = None,
                      options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """A channel without the credential interceptors: each call passes `call_metadata(credential)`
    and a timeout itself. For a hot path: an interceptor costs an extra turn of the event loop per call.
    Every channel balances its calls over the addresses its target resolves to (`grpcbalance`)."""
    if tls is not None:
        return ReloadingChannel(tls, lambda credentials, tls_options: open_bare_channel(
            target, channel_credentials=credentials, interceptors=interceptors, options=[*options, *tls_options]))
    all_options = [*channel_options(), *options]
    if channel_credentials is not None:
        return grpc.aio.secure_channel(target, channel_credentials, options=all_options, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=all_options, interceptors=interceptors)


def call_metadata(credential: str) -> tuple[tuple[str, str], ...]:
    """The metadata that carries a service credential (for calls on a bare channel)."""
    return ((CREDENTIAL_HEADER, credential),)


def retry_after(err: grpc.aio.AioRpcError) -> int | None:
    """The seconds a rejected call says to wait (its RetryInfo, or its "retry-after" trailer), or None."""
    return ErrorStatus.of_rpc(err).retry_after
