"""DisclosureService over gRPC: a scanner's report, as the gateway received it, to DisclosureService."""

from __future__ import annotations

import grpc

from authsvc.grpc_common import origin
from authsvc.tokens.disclosure import DisclosureService
from gatehouse.auth.v1 import disclosure_pb2, disclosure_pb2_grpc


class DisclosureServicer(disclosure_pb2_grpc.DisclosureServiceServicer):
    def __init__(self, disclosures: DisclosureService) -> None:
        self.disclosures = disclosures

    async def DiscloseTokens(
            self, request: disclosure_pb2.DiscloseTokensRequest,
            context: grpc.aio.ServicerContext[disclosure_pb2.DiscloseTokensRequest,
                                              disclosure_pb2.DiscloseTokensResponse],
    ) -> disclosure_pb2.DiscloseTokensResponse:
        await self.disclosures.disclose(request.body, request.key_identifier, request.signature,
                                        origin(request.client))
        return disclosure_pb2.DiscloseTokensResponse()
