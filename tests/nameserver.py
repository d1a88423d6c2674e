"""A DNS server on a loopback UDP port that answers A queries for a few names, as a headless
Kubernetes Service's name resolves to every ready pod: one name, several addresses.

gRPC's c-ares resolver asks it when a target names it as the DNS authority:
`dns://127.0.0.1:<port>/authsvc.test:<grpc port>` (`NameServer.target`). Every other name, and
every other record type (AAAA, TXT), gets an answer with no records. It serves from a thread of its
own, so a test that blocks its event loop does not stall the resolver.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Mapping, Sequence

A, IN = 1, 1
NXDOMAIN = 3


def _question(packet: bytes) -> tuple[str, int, bytes]:
    """The first question's name, type, and its bytes as they came (name, type and class)."""
    labels, at = [], 12
    while length := packet[at]:
        labels.append(packet[at + 1:at + 1 + length].decode("ascii"))
        at += 1 + length
    (qtype,) = struct.unpack("!H", packet[at + 1:at + 3])
    return ".".join(labels).lower(), qtype, packet[12:at + 5]


def answer(packet: bytes, records: Mapping[str, Sequence[str]]) -> bytes:
    """The response to one query: the name's A records, none for other types, NXDOMAIN for others."""
    (query_id,) = struct.unpack("!H", packet[:2])
    name, qtype, question = _question(packet)
    known = name in records
    addresses = records[name] if known and qtype == A else ()
    # QR, opcode 0, RD and RA set; rcode 0 or NXDOMAIN. One question, the answers, nothing else.
    header = struct.pack("!HHHHHH", query_id, 0x8180 | (0 if known else NXDOMAIN), 1, len(addresses), 0, 0)
    # Each answer points back at the question's name (offset 12), TTL 1 s.
    rows = b"".join(struct.pack("!HHHIH", 0xC00C, A, IN, 1, 4) + socket.inet_aton(a) for a in addresses)
    return header + question + rows


class NameServer:
    """`with NameServer({"authsvc.test": [...]}) as dns:` serves on `dns.port` until the block ends.
    `dns.queries` lists the (name, type) of every query it answered."""

    def __init__(self, records: Mapping[str, Sequence[str]]) -> None:
        self.records = {name.lower(): list(addresses) for name, addresses in records.items()}
        self.queries: list[tuple[str, int]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-nameserver", daemon=True)

    def target(self, name: str, port: int) -> str:
        """A gRPC target that resolves `name` through this server."""
        return f"dns://127.0.0.1:{self.port}/{name}:{port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                packet, peer = self._sock.recvfrom(512)
            except TimeoutError:
                continue
            try:
                self._sock.sendto(answer(packet, self.records), peer)
            except (IndexError, struct.error, UnicodeDecodeError):
                continue  # not a query this server understands: no answer
            self.queries.append(_question(packet)[:2])

    def start(self) -> NameServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> NameServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def loopback_addresses(count: int) -> list[str]:
    """127.0.0.1, 127.0.0.2, …: Linux routes all of 127.0.0.0/8 to the loopback interface, so each
    replica of a test listens on an address of its own, all on one port, as pods do."""
    return [f"127.0.0.{i}" for i in range(1, count + 1)]


def port_free_on(addresses: Sequence[str]) -> int:
    """A TCP port that every one of `addresses` can bind now."""
    for _ in range(50):
        socks = [socket.socket()]
        try:
            socks[0].bind((addresses[0], 0))
            port: int = socks[0].getsockname()[1]
            for address in addresses[1:]:
                socks.append(socket.socket())
                socks[-1].bind((address, port))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise OSError(f"no port free on all of {addresses}")
