"""The one way page services call authsvc and auditsvc: a deadline, and errors turned into PageErrors."""

from __future__ import annotations

from collections.abc import Collection

import grpc

from uploadgw.authclient import client_info  # noqa: F401  (the page services take it from here)
from uploadgw.pages.services.errors import from_rpc


class Caller:
    """Calls one gRPC method with the page timeout; a failure raises the matching PageError
    (`fields` and `field`: see `from_rpc`)."""

    def __init__(self, timeout: float):
        self.timeout = timeout

    async def __call__(self, method, request, *, fields: Collection[str] = (), field: str = "",
                       session_call: bool = True):
        try:
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise from_rpc(err, fields=fields, field=field, session_call=session_call) from None
