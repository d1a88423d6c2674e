"""`POST /_/secrets/disclose-token`: leaked-token reports from secret scanners, in PyPI's format.

The gateway only carries the report: the body byte for byte (the signature covers it) and the two
signature headers go to authsvc, which owns the scanners' keys and the tokens and decides. As on
PyPI the answer is 204 whatever the report named; 400 when the report is unsigned, signed by a key
no trusted scanner lists as current, its signature does not match, or the body is not a JSON list
of findings; 413 when it is too large; 503 when authsvc (or a scanner's key list) cannot answer.
"""

from __future__ import annotations

import logging

import grpc
from aiohttp import web

from gatehouse.auth.v1 import disclosure_pb2, disclosure_pb2_grpc
from gatehouse.infra.grpcserver import call_metadata
from uploadgw.authclient import READ_UNAVAILABLE_MESSAGE, client_info
from uploadgw.errors import DependencyUnavailable, InvalidUpload, TooLarge
from uploadgw.http.upload import origin_of
from uploadgw.refusals import Refusal, Surface

log = logging.getLogger(__name__)
KEY_ID_HEADER = "GITHUB-PUBLIC-KEY-IDENTIFIER"
SIGNATURE_HEADER = "GITHUB-PUBLIC-KEY-SIGNATURE"
MAX_REPORT_BYTES = 512 * 1024  # authsvc's bound too (authsvc/tokens/disclosure.py)
# A report may wait for a scanner's keys to be fetched (5 s at most) and revoke many tokens, one
# transaction each: more than an upload check's deadline.
MIN_TIMEOUT = 30.0


class DisclosureHandler:
    def __init__(self, channel: grpc.aio.Channel, *, credential: str, timeout: float) -> None:
        self._stub = disclosure_pb2_grpc.DisclosureServiceStub(channel)
        self._metadata = call_metadata(credential)
        self._timeout = max(timeout, MIN_TIMEOUT)

    async def disclose(self, request: web.Request) -> web.Response:
        # The declared length first, so that an oversized report is refused before it is read.
        if (request.content_length or 0) > MAX_REPORT_BYTES or len(body := await request.read()) > MAX_REPORT_BYTES:
            raise TooLarge(f"The report is too large: at most {MAX_REPORT_BYTES} bytes.", reason="report_too_large")
        report = disclosure_pb2.DiscloseTokensRequest(
            body=body, key_identifier=_header(request, KEY_ID_HEADER), signature=_header(request, SIGNATURE_HEADER),
            client=client_info(origin_of(request)))
        try:
            await self._stub.DiscloseTokens(report, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            refusal = Refusal.of(err, Surface.READ)
            if refusal.http_status == 400:
                raise InvalidUpload(refusal.message, reason=refusal.label) from None
            log.warning("leaked-token report not handled", extra={"reason": refusal.label})
            raise DependencyUnavailable(refusal.message if refusal.reason else READ_UNAVAILABLE_MESSAGE,
                                        reason="auth_unavailable") from None
        return web.Response(status=204)


def _header(request: web.Request, name: str) -> str:
    value = request.headers.get(name, "")
    if not value.isascii():
        raise InvalidUpload(f"The {name} header must be ASCII.", reason="signature_invalid")
    return value
