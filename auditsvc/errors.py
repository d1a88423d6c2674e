"""The audit service's exceptions; the gRPC interceptor maps them to status codes with the message, and
their reason to the status details' ErrorInfo (under DOMAIN)."""

from gatehouse.infra.errors import (  # noqa: F401  (re-exported for the service's modules)
    FailedPrecondition,
    GatehouseError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

DOMAIN = "gatehouse.auditsvc"


class RecordRejected(Exception):
    """The database refused this event's data (not an outage): retrying the same bytes won't help.

    Internal to the consumer path (never reaches gRPC): after enough deliveries the entry goes to
    the dead-letter stream.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
