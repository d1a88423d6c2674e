#!/usr/bin/env python3
"""The floor of the upload benchmark: an HTTP server that reads each whole request and answers 200.

No authentication, no parsing of the form, nothing stored: what is left of an upload's time is
twine's own work and loopback's. bench_upload.py runs it as a target in the same run and prints
every target's ratio to it. Standard library only; keep-alive like the real servers.

    python benchmarks/nullserver.py PORT
"""

from __future__ import annotations

import asyncio
import sys

CHUNK = 1024 * 1024
REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK"
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bool:
    """Read (and drop) the request's body; False when it cannot be framed."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()).strip():  # trailers, then the blank line
                    pass
                return True
            await reader.readexactly(size + 2)
    remaining = int(headers.get("content-length", "0") or "0")
    while remaining > 0:
        data = await reader.read(min(CHUNK, remaining))
        if not data:
            return False
        remaining -= len(data)
    return True


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request_line = await reader.readline()
            if not request_line.strip():
                break
            headers: dict[str, str] = {}
            while (line := await reader.readline()).strip():
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if not await read_body(reader, headers):
                writer.write(BAD)
                break
            writer.write(REPLY)
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", port, limit=64 * 1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
