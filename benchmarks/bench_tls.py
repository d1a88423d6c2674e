"""Benchmark: what mutual TLS costs the calls between services (issue 22).

Starts two auth services (`python -m authsvc`, separate processes, each on its own temporary
SQLite database): one plaintext, one serving mutual TLS with certificates from a throwaway CA
(trustme, from the test extra). Each gets a user, a project and a token; then Echo and
VerifyUploadToken are measured for `--seconds` per cell at concurrency 1 and 64, in `--rounds`
turns that alternate the two modes (medians are reported), plaintext over
`grpc.aio.insecure_channel` (the baseline) and TLS over the channel the gateway uses
(`open_bare_channel(tls=…)`: a ReloadingChannel that watches its files). Prints calls/s, p50, p99
and the TLS/plaintext throughput ratio per cell. Target (ours; the issue sets none): every ratio
>= 0.8, i.e. mTLS costs at most a fifth of the throughput on loopback, where encryption is most
visible (no network time to hide it).

    python benchmarks/bench_tls.py [--seconds 1.5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import secrets
import sys
import tempfile

import grpc

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_verify import free_port, measure, prepare_calls, start_authsvc, wait_ready  # noqa: E402
from gatehouse.infra.grpcserver import open_bare_channel  # noqa: E402
from gatehouse.infra.tls import TlsSettings  # noqa: E402

TARGET = 0.8


def identities(root: pathlib.Path) -> tuple[dict[str, str], TlsSettings]:
    """A throwaway CA with the server's files and the client's: the server's AUTHSVC_TLS_*
    variables (mutual TLS) and the client's settings."""
    try:
        import trustme

        from tests.tlsfiles import Identity
    except ImportError:
        raise SystemExit("bench_tls needs trustme (the test extra): python3 dev.py test --co -q") from None
    ca = trustme.CA()
    server = Identity(root / "server").write(ca, "127.0.0.1")
    client = Identity(root / "client").write(ca, "uploadgw")
    return {**server.env("AUTHSVC"), "AUTHSVC_TLS_CLIENT_AUTH": "true"}, client.tls("UPLOADGW")


async def run(args) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        root = pathlib.Path(tmp)
        server_tls, client_tls = identities(root)
        calls, processes, channels = {}, [], []
        try:
            for mode, extra in (("plaintext", {}), ("mTLS", server_tls)):
                gateway, operator = "gw-" + secrets.token_urlsafe(24), "op-" + secrets.token_urlsafe(24)
                port = free_port()
                processes.append(start_authsvc(root, f"sqlite:///{root / f'{mode}.sqlite3'}", port, gateway,
                                               operator, extra_env=extra, name=mode))
                channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{port}") if mode == "plaintext"
                                else open_bare_channel(f"127.0.0.1:{port}", tls=client_tls))
                await wait_ready(channels[-1], processes[-1], root / f"{mode}.log")
                calls[mode] = await prepare_calls(channels[-1], gateway, operator)
            # The modes take turns, cell by cell, for `--rounds`: a machine whose speed drifts weighs
            # on both alike. Each cell's figure is its median over the rounds.
            runs: dict[tuple[str, int, str], list[dict]] = {}
            for _ in range(args.rounds):
                for concurrency in (1, 64):
                    for name in ("echo", "verify"):
                        for mode in ("plaintext", "mTLS"):
                            runs.setdefault((name, concurrency, mode), []).append(
                                await measure(calls[mode][name], concurrency, args.seconds))
        finally:
            for channel in channels:
                await channel.close()
            for process in processes:
                process.terminate()
                process.wait(timeout=15)
    median = {key: sorted(r, key=lambda m: m["rate"])[len(r) // 2] for key, r in runs.items()}
    print(f"Echo and VerifyUploadToken, plaintext vs mutual TLS over loopback ({args.rounds} rounds of "
          f"{args.seconds:g} s per cell, medians; {os.cpu_count()} CPUs)")
    print(f"{'rpc':<8}{'conc':>6}{'mode':>11}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'TLS/plain':>11}")
    ok = True
    for name, concurrency in [(n, c) for c in (1, 64) for n in ("echo", "verify")]:
        plain, tls = median[(name, concurrency, "plaintext")], median[(name, concurrency, "mTLS")]
        ratio = tls["rate"] / plain["rate"]
        ok &= ratio >= TARGET
        for mode, r in (("plaintext", plain), ("mTLS", tls)):
            shown = f"{ratio:>11.2f}" if mode == "mTLS" else ""
            print(f"{name:<8}{concurrency:>6}{mode:>11}{r['rate']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{shown}")
    print(f"target: every TLS/plaintext throughput ratio >= {TARGET}")
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.5, help="measuring time per cell (default 1.5)")
    parser.add_argument("--rounds", type=int, default=5, help="turns each mode takes per cell (default 5)")
    raise SystemExit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
