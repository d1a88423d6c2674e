"""Unary calls carried as the messages of one long-lived bidirectional stream.

A gRPC call costs both sides more hand-offs than a message on a stream that is already open. The
client makes a call object, a task and a batch of operations; the server accepts a new call, runs
the interceptor, then asks for the call's message: two trips from gRPC's poller thread into the
event loop before the handler starts. A message's round trip on an open stream takes about half a
call's (the figures are in the commit that introduced the stream).

The stream carries the service credential (the interceptor checks it once, when the stream opens).
Each call message has an `id` (unique among the stream's calls in flight), the `request` and
`timeout_ms`, its deadline; each result message repeats the `id` and has a `status` (a CallStatus:
the code, message, retry-after and rich status details, with the reason's ErrorInfo, that a unary
call's status would have had, built by the same `rpcstatus` code) and, when the status is OK, the
`response`. Results come in the order they are ready. A denial is a result; the stream stays up.

`StreamedCalls` serves such a stream with a handler written for the unary call; `StreamedCaller`
makes calls over it and raises what a failed unary call raises (`grpc.aio.AioRpcError`, with the
status details and retry-after in its trailing metadata), so callers keep one error mapping. When
the stream breaks, every call in flight on it fails UNAVAILABLE (a check may or may not have run,
as when a unary call's connection drops) and the next call opens a new stream; a caller whose
requests may run twice has them sent again on a new stream instead (`retry_lost`), as the channel's
retry policy does for an idempotent unary call. A stopping server serves its streams through its
grace period, then cancels them (calls in flight then fail, as unary ones would). On a balanced
channel a caller keeps several streams and renews each after a while (`width`, `max_age`), so that
its calls spread over the service's pods as unary calls would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar, cast

import grpc
from google.protobuf.message import Message

from gatehouse.infra.errors import GatehouseError
from gatehouse.infra.metrics import GrpcMetrics
from gatehouse.infra.rpcstatus import DEFAULT_DOMAIN, ErrorStatus, code_of

log = logging.getLogger(__name__)

STREAM_ENDED = "The connection to the service was lost before it answered."

_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)
_Req_co = TypeVar("_Req_co", bound=Message, covariant=True)
_Resp_co = TypeVar("_Resp_co", bound=Message, covariant=True)


class CallStatusMessage(Protocol):
    """common.proto's CallStatus, as this module reads and writes it."""

    code: int
    message: str
    retry_after_seconds: int
    details: bytes


class CallMessage(Protocol[_Req_co]):
    """A stream's call message (e.g. tokens.proto's VerifyUploadTokenCall)."""

    @property
    def id(self) -> int: ...
    @property
    def request(self) -> _Req_co: ...
    @property
    def timeout_ms(self) -> int: ...


class ResultMessage(Protocol[_Resp_co]):
    """A stream's result message (e.g. tokens.proto's VerifyUploadTokenResult)."""

    @property
    def id(self) -> int: ...
    @property
    def status(self) -> CallStatusMessage: ...
    @property
    def response(self) -> _Resp_co: ...


_Result = TypeVar("_Result", bound=ResultMessage[Message])


# -- server side ---------------------------------------------------------------------------------


class StreamedCalls(Generic[_Req, _Resp, _Result]):
    """Serves a stream of calls with `handle(request) -> response`, the unary method's logic.
    `method` names the unary method in the metrics, so the calls count alike whichever way they
    came. GatehouseErrors become their status, with the reason in its details as the interceptor
    gives a unary call's (`domain` names the service there); anything else is logged and answered
    INTERNAL."""

    def __init__(self, method: str, handle: Callable[[_Req], Awaitable[_Resp]], result_type: Callable[..., _Result], *,
                 metrics: GrpcMetrics | None = None, domain: str = DEFAULT_DOMAIN) -> None:
        self.method = method
        self.domain = domain
        self.handle = handle
        self.result_type = result_type
        self.metrics = metrics

    async def serve(self, calls: AsyncIterator[CallMessage[_Req]], context: grpc.aio.ServicerContext[Any, _Result]
                    ) -> None:
        """Until the caller ends the stream, or the server stops (its grace period over)."""
        loop = asyncio.get_running_loop()
        writing = asyncio.Lock()  # a stream takes one write at a time
        answering: set[asyncio.Task[None]] = set()
        try:
            async for call in calls:
                deadline = loop.time() + call.timeout_ms / 1000 if call.timeout_ms else None
                task = asyncio.ensure_future(self._answer(call, deadline, context, writing))
                answering.add(task)
                task.add_done_callback(answering.discard)
        finally:
            if answering:  # their work finishes (asyncio.wait cancels nothing, even if this is cancelled)
                await asyncio.wait(set(answering))

    async def _answer(self, call: CallMessage[_Req], deadline: float | None,
                      context: grpc.aio.ServicerContext[Any, _Result], writing: asyncio.Lock) -> None:
        started = time.perf_counter()
        result = self.result_type(id=call.id)
        code, reason = grpc.StatusCode.OK, None
        loop = asyncio.get_running_loop()
        limit = asyncio.timeout_at(deadline)  # as gRPC does for a call: at its deadline the handler is cancelled
        try:
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError
            async with limit:
                result.response.CopyFrom(await self.handle(call.request))
        except TimeoutError:
            if deadline is None or loop.time() < deadline:  # not ours: the handler's own error
                code, reason, result.status.message = self._internal(result)
            else:
                code, reason, result.status.message = grpc.StatusCode.DEADLINE_EXCEEDED, "deadline", "Deadline Exceeded"
        except GatehouseError as exc:
            status = ErrorStatus.of_error(exc, self.domain)
            code, reason, result.status.message = exc.code, exc.reason, status.message
            result.status.retry_after_seconds = status.retry_after or 0
            result.status.details = status.details()
        except Exception:
            code, reason, result.status.message = self._internal(result)
        result.status.code = code.value[0]
        if self.metrics is not None:
            self.metrics.observe(self.method, code, reason, time.perf_counter() - started)
        try:
            async with writing:
                await context.write(result)
        except Exception:  # noqa: BLE001 - the stream is gone; its caller learns so from its end
            log.debug("result not delivered: the stream has ended", extra={"method": self.method})

    def _internal(self, result: ResultMessage[Message]) -> tuple[grpc.StatusCode, str, str]:
        log.exception("unhandled error", extra={"method": self.method})
        status = ErrorStatus.internal(self.domain)
        result.status.details = status.details()
        return status.code, "internal", status.message


# -- client side ---------------------------------------------------------------------------------


def rpc_error(code: grpc.StatusCode, message: str) -> grpc.aio.AioRpcError:
    """The error of a call that failed here, before any answer (no reason: nothing refused it)."""
    return ErrorStatus(code=code, message=message).rpc_error()


def result_error(status: CallStatusMessage) -> grpc.aio.AioRpcError:
    """The error a unary call with this CallStatus would have raised: code, message and trailers."""
    found = ErrorStatus.from_details(code_of(status.code), status.message, status.details)
    if found.retry_after is None and status.retry_after_seconds:  # from a server that sends no details
        found = dataclasses.replace(found, retry_after=status.retry_after_seconds)
    return found.rpc_error()


class _Stream:
    """One open stream: its call, its place among the caller's streams, the calls waiting for a
    result, the writer and the reader."""

    def __init__(self, call: grpc.aio.StreamStreamCall[Any, Any], slot: int) -> None:
        self.call = call
        self.slot = slot
        self.waiting: dict[int, asyncio.Future[ResultMessage[Message]]] = {}
        self.outgoing: asyncio.Queue[Message | None] = asyncio.Queue()  # None: no more calls, half-close
        self.tasks: list[asyncio.Task[None]] = []


class StreamedCaller:
    """Calls over `StreamedCalls` streams that `open_stream()` opens (with the credential in its
    metadata and no deadline), opened on the first call and again after a failure. `call(request,
    timeout)` returns the response or raises `grpc.aio.AioRpcError` as the unary call would.
    `unimplemented` turns True when the server does not have the stream method (an older
    version): its calls fail UNIMPLEMENTED, nothing having run, and the caller should use the unary
    method from then on.

    Spreading over a balanced channel: each stream is one gRPC call, so it stays on the pod the
    channel picked when it opened. The caller keeps a set of `width` streams, opened one right after
    another (so that round_robin puts them on successive pods), and takes them in turn. After
    `max_age` seconds (less up to a fifth, so that callers do not renew in step) the set takes no
    new calls, each of its streams closing once its answers are in, and the next call opens a new
    set on the pods the channel has then (new ones included). A stream that breaks is opened again
    alone. With `retry_lost`, a call whose stream ended before its answer (UNAVAILABLE: its pod went
    away) is sent again on a new stream, within its deadline, at most `LOST_ATTEMPTS` times in all:
    only for a request that may run twice."""

    LOST_ATTEMPTS = 3

    def __init__(self, open_stream: Callable[[], grpc.aio.StreamStreamCall[Any, Any]],
                 call_type: Callable[..., Message], *, width: int = 1, max_age: float | None = None,
                 retry_lost: bool = False) -> None:
        self._open = open_stream
        self._call_type = call_type
        self._ids = itertools.count(1)
        self._turns = itertools.count()
        self._slots: list[_Stream | None] = [None] * width
        self._renew_at: float | None = None  # when the set stops taking calls (loop time)
        self._live: set[_Stream] = set()  # every stream not yet ended, retired ones included
        self._max_age = max_age
        self._retry_lost = retry_lost
        self.unimplemented = False

    async def call(self, request: Message, timeout: float) -> Message:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        slot = next(self._turns) % len(self._slots)
        for attempt in range(1, self.LOST_ATTEMPTS + 1):
            try:
                result = await self._attempt(request, deadline, slot)
            except grpc.aio.AioRpcError as lost:  # the stream ended before this call's result came
                if (not self._retry_lost or attempt == self.LOST_ATTEMPTS or loop.time() >= deadline
                        or lost.code() is not grpc.StatusCode.UNAVAILABLE):
                    raise
                log.debug("stream lost before its result: the call goes on a new stream", extra={"attempt": attempt})
                continue
            if result.status.code:
                raise result_error(result.status)
            return result.response
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def _attempt(self, request: Message, deadline: float, slot: int) -> ResultMessage[Message]:
        """The call's result on the slot's stream, or the stream's end (DEADLINE_EXCEEDED: none in time)."""
        stream = self._stream(slot)
        call_id = next(self._ids)
        answer: asyncio.Future[ResultMessage[Message]] = asyncio.get_running_loop().create_future()
        stream.waiting[call_id] = answer
        timeout = max(deadline - asyncio.get_running_loop().time(), 0.0)
        stream.outgoing.put_nowait(self._call_type(id=call_id, request=request, timeout_ms=int(timeout * 1000)))
        try:
            async with asyncio.timeout_at(deadline):
                return await answer
        except TimeoutError:
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        finally:
            stream.waiting.pop(call_id, None)

    def _stream(self, slot: int) -> _Stream:
        """The slot's stream: a new set when the set is old or every stream of it has ended, a new
        stream in the slot when its own ended."""
        now = asyncio.get_running_loop().time()
        if self._renew_at is not None and now >= self._renew_at:
            for old in self._slots:
                if old is not None:
                    old.outgoing.put_nowait(None)  # it answers the calls it has, then closes
            self._slots = [None] * len(self._slots)
        if all(stream is None for stream in self._slots):
            self._renew_at = None if self._max_age is None else now + self._max_age * random.uniform(0.8, 1.0)
            for each in range(len(self._slots)):
                self._start(each)
        stream = self._slots[slot]
        return stream if stream is not None else self._start(slot)

    def _start(self, slot: int) -> _Stream:
        stream = self._slots[slot] = _Stream(self._open(), slot)
        self._live.add(stream)
        stream.tasks = [asyncio.ensure_future(self._write(stream)), asyncio.ensure_future(self._read(stream))]
        return stream

    async def _write(self, stream: _Stream) -> None:
        """The calls go out in order, one write at a time; a caller that gives up does not cut a
        write short. A write fails only on a stream that has ended: the reader reports it. A retired
        stream is half-closed after its last call: the server ends it once it has answered them."""
        try:
            while (message := await stream.outgoing.get()) is not None:
                await stream.call.write(message)
            await stream.call.done_writing()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.debug("stream write failed", extra={"error": type(exc).__name__})
            stream.call.cancel()  # so that the reader ends, whatever state the call is in

    async def _read(self, stream: _Stream) -> None:
        try:
            while (read := await stream.call.read()) is not grpc.aio.EOF:
                # types-grpcio types read() as `object | response` (its EOF type is object): not EOF, it is a result
                result = cast(ResultMessage[Message], read)
                answer = stream.waiting.get(result.id)
                if answer is not None and not answer.done():
                    answer.set_result(result)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the stream's status says what happened
            pass
        if self._slots[stream.slot] is stream:  # new calls go to a new stream from now on
            self._slots[stream.slot] = None
        self._fail(stream, await self._status(stream))

    @staticmethod
    async def _status(stream: _Stream) -> grpc.aio.AioRpcError:
        """Why a stream ended: its own status, or UNAVAILABLE when that says nothing more useful
        (OK: the server returned early; CANCELLED: it stopped)."""
        try:
            code, details = await stream.call.code(), await stream.call.details()
        except Exception:  # noqa: BLE001
            code, details = grpc.StatusCode.UNAVAILABLE, ""
        if code in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            code, details = grpc.StatusCode.UNAVAILABLE, ""
        return rpc_error(code, details or STREAM_ENDED)

    def _fail(self, stream: _Stream, failure: grpc.aio.AioRpcError) -> None:
        """A stream that ended (its callers have already let go of it): its waiting calls fail."""
        self._live.discard(stream)
        if failure.code() is grpc.StatusCode.UNIMPLEMENTED:
            self.unimplemented = True
        for answer in stream.waiting.values():
            if not answer.done():
                answer.set_exception(failure)
        stream.waiting.clear()
        stream.call.cancel()
        for task in stream.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def close(self) -> None:
        streams, self._slots = list(self._live), [None] * len(self._slots)
        for stream in streams:
            self._fail(stream, rpc_error(grpc.StatusCode.UNAVAILABLE, "The client is shutting down."))
        await asyncio.gather(*(task for stream in streams for task in stream.tasks), return_exceptions=True)
