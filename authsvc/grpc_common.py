"""Translations shared by the auth service's gRPC adapters (protobuf <-> domain values)."""

from __future__ import annotations

import datetime as dt
import ipaddress

from google.protobuf.timestamp_pb2 import Timestamp

from authsvc.errors import InvalidArgument
from gatehouse.auth.v1 import common_pb2
from gatehouse.infra.clock import as_utc
from gatehouse.infra.outbox import Origin


def ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(as_utc(value).replace(tzinfo=None))
    return out


def from_ts(message, field: str) -> dt.datetime | None:
    """An optional Timestamp field as an aware datetime, None when unset."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=dt.timezone.utc)


# The longest text form of an IPv6 address ("ffff:…:ffff:255.255.255.255").
MAX_IP_TEXT = 45


def client_ip(text: str) -> str:
    """The client IP the gateway reports, normalised (an IPv4-mapped IPv6 address as the IPv4 one),
    or InvalidArgument. It keys per-IP rate limits and is recorded in sessions and events, so
    only an address is accepted, never arbitrary text. Zone ids ("fe80::1%eth0") are refused: they
    name an interface of the gateway's host, and any number of them would make one address many
    rate-limit keys. Empty means "not known" (no ClientInfo, a Unix socket) and stays empty."""
    if not text:
        return ""
    try:
        if len(text) > MAX_IP_TEXT or "%" in text:
            raise ValueError(text)
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument("The client's IP address (ClientInfo.ip_address) is not an IPv4 or IPv6 address.",
                              reason="client_ip_invalid") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def origin(client: common_pb2.ClientInfo | None) -> Origin:
    """Where the call came from, as the gateway says; an invalid IP is InvalidArgument, so an adapter
    works this out before anything else."""
    if client is None:
        return Origin()
    ip = client_ip(client.ip_address)
    # Keep what is recorded short and on one line.
    ua = "".join(ch for ch in client.user_agent[:300] if ch.isprintable())
    return Origin(ip_address=ip, user_agent=ua)

