"""Audit pipeline benchmark: outbox -> relay -> Redis stream -> consumer -> SQL.

    python benchmarks/bench_audit.py [--events 50000] [--rate 1000] [--seconds 10] [--sqlite]

Starts its own Redis (gatehouse.infra.redis_embed, append-only file on) and uses PostgreSQL at
127.0.0.1:5432 (throwaway databases, dropped afterwards) when reachable, else SQLite files.
Measures, in one run:
  * raw Redis: XADD (MULTI pipeline, and the relay's one-script-per-batch), XREADGROUP + XACK;
  * relay alone (outbox -> stream), consumer alone (stream -> SQL), both in one process, and
    both in two processes as deployed (relay in the producer service, consumer in auditsvc):
    the last is the sustained figure;
  * the consumer process's CPU cost: events per consumer CPU-second in that last phase;
  * end-to-end lag (producer commit -> event committed in the audit database, i.e. queryable)
    at a paced rate with the consumer in its own process, p50/p90/p99/max.
Every event is sealed with a producer key when it is built and verified by the consumer (HMAC-SHA256,
gatehouse.infra.eventauth), as in production.
Targets: >= 10,000 events/s into PostgreSQL; lag p99 < 1 s at 1,000 events/s.
Exit status 0 when both targets are met.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
from sqlalchemy import Column, Integer, String, Table, func, insert, select  # noqa: E402

from auditsvc.consumer import Consumer  # noqa: E402
from auditsvc.server import MIGRATIONS  # noqa: E402
from auditsvc.store.models import events  # noqa: E402
from auditsvc.store.service import AuditLog  # noqa: E402
from gatehouse.infra.clock import SystemClock  # noqa: E402
from gatehouse.infra.db import make_engine, make_metadata, make_session_factory, upgrade  # noqa: E402
from gatehouse.infra.eventauth import EventKey, EventSigner, EventVerifier  # noqa: E402
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin, make_outbox_table  # noqa: E402
from gatehouse.infra.redis_embed import EmbeddedRedis  # noqa: E402
from gatehouse.infra.relay import OutboxRelay  # noqa: E402
from benchmarks.throwaway import create_database, drop_database, reachable  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SUSTAINED = "relay + consumer, two processes"
BATCH = 500
TARGET = 10_000
# A throwaway event key per run; the consumer process gets it on its command line (hex).
EVENT_KEY = EventKey("bench", 1, secrets.token_bytes(32))
VERIFIER = EventVerifier([EVENT_KEY])

metadata = make_metadata()
changes = Table("changes", metadata, Column("id", Integer, primary_key=True), Column("what", String(40)))
outbox = make_outbox_table(metadata)


# -- databases -------------------------------------------------------------------------------


class Databases:
    """Two throwaway databases (producer, audit): PostgreSQL when reachable, else SQLite."""

    def __init__(self, tmp: pathlib.Path, force_sqlite: bool):
        self.tmp = tmp
        self.force_sqlite = force_sqlite
        self.created: list[str] = []
        self.backend = "sqlite"

    async def detect(self) -> str:
        if not self.force_sqlite:
            try:
                await reachable(PG_ADMIN)
                self.backend = "postgresql"
            except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
                print(f"PostgreSQL not reachable ({type(exc).__name__}); using SQLite", flush=True)
        return self.backend

    async def make(self, label: str) -> str:
        if self.backend == "postgresql":
            url = await create_database(PG_ADMIN, label)
            self.created.append(url)
            return url
        return f"sqlite:///{self.tmp / (label + '-' + uuid.uuid4().hex[:6])}.sqlite3"

    async def drop(self) -> None:
        for url in self.created:
            await drop_database(PG_ADMIN, url)


# -- helpers ---------------------------------------------------------------------------------


def build_payloads(count: int, clock) -> list[dict]:
    emitter = EventEmitter(outbox, source="bench", clock=clock, signer=EventSigner(EVENT_KEY))
    rows = []
    for i in range(count):
        user = (f"u-{i % 1000}", f"user{i % 1000}")
        event = emitter.build("account:login:success", actor=ActorRef.user(*user), user=user,
                              project=(f"p-{i % 50}", f"project{i % 50}"),
                              origin=Origin("198.51.100.7", "twine/6.1.0 CPython/3.12"),
                              details={"method": "password", "n": str(i)})
        rows.append({"event_id": event.event_id, "tag": event.tag, "payload": emitter.serialize(event),
                     "created_at": clock.now(), "attempts": 0})
    return rows


async def fill_outbox(db, rows: list[dict]) -> None:
    for i in range(0, len(rows), 5000):
        async with db() as session:
            await session.execute(insert(outbox), rows[i:i + 5000])
            await session.commit()


async def count_events(audit_db) -> int:
    async with audit_db() as session:
        return (await session.execute(select(func.count()).select_from(events))).scalar_one()


async def run_until(coro_factory, done, poll: float = 0.02):
    """Run a `run_forever(stop)` until `done()`; return the elapsed seconds."""
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(coro_factory(stop))
    while not await done():
        if task.done():
            task.result()
            raise RuntimeError("worker stopped early")
        await asyncio.sleep(poll)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return elapsed


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- the consumer in its own process (as deployed: auditsvc apart from the producers) ---------


async def consumer_role(args) -> int:
    """`--role consumer`: consume until `--target` events are stored; print timings on stdout."""
    engine = make_engine(args.db_url)
    stored_at: list[tuple[str, float]] = []

    async def hook(event_ids):
        now = time.time()
        stored_at.extend((i, now) for i in event_ids)

    key = EventKey("bench", 1, bytes.fromhex(args.event_key))
    consumer = Consumer(args.redis_url, args.stream, "auditsvc", "bench", AuditLog(
        make_session_factory(engine), clock=SystemClock()), verifier=EventVerifier([key]),
        batch_size=BATCH, block_ms=1000,
        after_commit=hook if args.lag_file else None)
    await consumer.ensure_group()
    gc.freeze()  # as `python -m auditsvc` does
    print("ready", flush=True)
    cpu_started = time.process_time()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run_forever(stop))
    while consumer.stats.stored < args.target and not task.done():
        await asyncio.sleep(0.01)
    print(f"done {time.time()} {time.process_time() - cpu_started}", flush=True)
    stop.set()
    await task
    await engine.dispose()
    if args.lag_file:
        pathlib.Path(args.lag_file).write_text("".join(f"{i} {t}\n" for i, t in stored_at))
    return 0


class ConsumerProcess:
    def __init__(self, redis_url, db_url, stream, target, lag_file=None):
        self.argv = [sys.executable, __file__, "--role", "consumer", "--redis-url", redis_url,
                     "--db-url", db_url, "--stream", stream, "--target", str(target),
                     "--event-key", EVENT_KEY.key.hex()]
        if lag_file:
            self.argv += ["--lag-file", str(lag_file)]
        self.proc = None
        self.cpu_seconds = 0.0  # the consumer process's CPU time from ready to done

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(*self.argv, stdout=asyncio.subprocess.PIPE)
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise SystemExit(f"consumer process did not start: {line!r}")

    async def finished_at(self, timeout: float = 300) -> float:
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        await self.proc.wait()
        if not line.startswith(b"done "):
            raise SystemExit(f"consumer process failed: {line!r}")
        _done, finished, cpu = line.split()
        self.cpu_seconds = float(cpu)
        return float(finished)


# -- phases ----------------------------------------------------------------------------------


async def raw_redis(url: str, payload: bytes, n: int) -> dict[str, float]:
    """Redis alone: XADD (pipelined, and batched in one script call as the relay does), then
    XREADGROUP + XACK in batches as the consumer does."""
    from gatehouse.infra.relay import XADD_BATCH_SCRIPT

    client = aioredis.Redis.from_url(url)
    stream = f"bench:raw:{uuid.uuid4().hex[:6]}"
    rates = {}
    try:
        started = time.perf_counter()
        for i in range(0, n, BATCH):
            async with client.pipeline(transaction=True) as pipe:
                for j in range(i, min(n, i + BATCH)):
                    pipe.xadd(stream, {"event_id": str(j), "tag": "t", "event": payload})
                await pipe.execute()
        rates["raw XADD, MULTI pipeline"] = n / (time.perf_counter() - started)
        script = client.register_script(XADD_BATCH_SCRIPT)
        started = time.perf_counter()
        for i in range(0, n, BATCH):
            args = []
            for j in range(i, min(n, i + BATCH)):
                args += (str(j), "t", payload)
            await script(keys=[stream], args=args)
        rates["raw XADD, batch script"] = n / (time.perf_counter() - started)
        await client.xgroup_create(stream, "g", id="0")
        started, seen = time.perf_counter(), 0
        while seen < 2 * n:
            reply = await client.xreadgroup("g", "c", {stream: ">"}, count=BATCH)
            ids = [entry_id for _s, entries in reply for entry_id, _f in entries]
            await client.xack(stream, "g", *ids)
            seen += len(ids)
        rates["raw XREADGROUP + XACK"] = 2 * n / (time.perf_counter() - started)
        await client.delete(stream)
        return rates
    finally:
        await client.aclose()


class Pair:
    """A fresh producer database (with its outbox) and a fresh, migrated audit database."""

    async def open(self, dbs: Databases, label: str) -> "Pair":
        self.producer_engine = make_engine(await dbs.make(f"{label}prod"))
        self.audit_url = await dbs.make(f"{label}audit")
        await asyncio.to_thread(upgrade, self.audit_url, MIGRATIONS)
        self.audit_engine = make_engine(self.audit_url)
        async with self.producer_engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        self.producer = make_session_factory(self.producer_engine)
        self.audit_db = make_session_factory(self.audit_engine)
        self.log = AuditLog(self.audit_db, clock=SystemClock())
        return self

    async def close(self) -> None:
        await self.producer_engine.dispose()
        await self.audit_engine.dispose()


async def throughput(dbs: Databases, redis_url: str, n: int) -> tuple[dict[str, float], float]:
    """Each phase starts from empty databases, so that no phase pays for another's history.

    Returns the rates and the events per consumer CPU-second of the two-process phase (the
    consumer's cost, which a machine loaded by other work distorts far less than the rates)."""
    clock = SystemClock()
    results = {}

    # Relay alone, then consumer alone over what it published.
    pair = await (Pair()).open(dbs, "seq")
    try:
        stream = f"bench:seq:{uuid.uuid4().hex[:6]}"
        await fill_outbox(pair.producer, build_payloads(n, clock))
        relay = OutboxRelay(pair.producer, outbox, redis_url, stream, batch_size=BATCH, retention=None)
        seconds = await run_until(relay.run_forever, lambda: _done(relay.published, n))
        results["relay alone (outbox -> stream)"] = n / seconds
        consumer = Consumer(redis_url, stream, "auditsvc", "bench", pair.log, verifier=VERIFIER, batch_size=BATCH,
                            block_ms=50)
        seconds = await run_until(consumer.run_forever, lambda: _done(consumer.stats.stored, n))
        results["consumer alone (stream -> SQL)"] = n / seconds
        await _check(pair, n)
    finally:
        await pair.close()

    # Both at once in one process.
    pair = await (Pair()).open(dbs, "one")
    try:
        stream = f"bench:one:{uuid.uuid4().hex[:6]}"
        await fill_outbox(pair.producer, build_payloads(n, clock))
        relay = OutboxRelay(pair.producer, outbox, redis_url, stream, batch_size=BATCH, retention=None)
        consumer = Consumer(redis_url, stream, "auditsvc", "bench", pair.log, verifier=VERIFIER, batch_size=BATCH,
                            block_ms=50)
        stop = asyncio.Event()
        relay_task = asyncio.create_task(relay.run_forever(stop))
        seconds = await run_until(consumer.run_forever, lambda: _done(consumer.stats.stored, n))
        stop.set()
        await relay_task
        results["relay + consumer, one process"] = n / seconds
        await _check(pair, n)
    finally:
        await pair.close()

    # As deployed: the relay in the producer's process, the consumer in auditsvc's.
    pair = await (Pair()).open(dbs, "two")
    try:
        stream = f"bench:two:{uuid.uuid4().hex[:6]}"
        await fill_outbox(pair.producer, build_payloads(n, clock))
        worker = ConsumerProcess(redis_url, pair.audit_url, stream, n)
        await worker.start()
        relay = OutboxRelay(pair.producer, outbox, redis_url, stream, batch_size=BATCH, retention=None)
        stop = asyncio.Event()
        started = time.time()
        relay_task = asyncio.create_task(relay.run_forever(stop))
        finished = await worker.finished_at()
        stop.set()
        await relay_task
        results[SUSTAINED] = n / (finished - started)
        consumer_cpu_rate = n / worker.cpu_seconds
        await _check(pair, n)
    finally:
        await pair.close()
    return results, consumer_cpu_rate


async def _check(pair: Pair, n: int) -> None:
    stored = await count_events(pair.audit_db)
    if stored != n:
        raise SystemExit(f"lost or duplicated events: {stored} rows for {n} events")


async def _done(value: int, target: int) -> bool:
    return value >= target


async def lag(dbs: Databases, redis_url: str, tmp: pathlib.Path, rate: int, seconds: float,
              tx_size: int, producers: int) -> list[float]:
    """Paced producers + relay here, consumer in its own process; lag = commit -> stored (s)."""
    clock = SystemClock()
    producer_engine = make_engine(await dbs.make("lagprod"))
    audit_url = await dbs.make("lagaudit")
    await asyncio.to_thread(upgrade, audit_url, MIGRATIONS)
    committed: dict[str, float] = {}
    total = int(rate * seconds) // tx_size * tx_size
    lag_file = tmp / "lag.txt"
    try:
        async with producer_engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        producer = make_session_factory(producer_engine)
        emitter = EventEmitter(outbox, source="bench", clock=clock, signer=EventSigner(EVENT_KEY))
        stream = f"bench:lag:{uuid.uuid4().hex[:6]}"
        worker = ConsumerProcess(redis_url, audit_url, stream, total, lag_file)
        await worker.start()
        relay = OutboxRelay(producer, outbox, redis_url, stream, batch_size=BATCH)
        stop = asyncio.Event()
        relay_task = asyncio.create_task(relay.run_forever(stop))

        async def produce(first_tx: int, started: float):
            # Transaction k (of tx_size events) is due at started + k * tx_size / rate.
            for k in range(first_tx, total // tx_size, producers):
                delay = started + k * tx_size / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with producer() as session:
                    # One change and its events in one transaction (the events as one multi-row
                    # insert: round trips are what a producer pays here, not what is measured).
                    await session.execute(insert(changes).values(what="x"))
                    built = [emitter.build("account:login:success", actor=ActorRef.user("u-1", "alice"),
                                           user=("u-1", "alice"), origin=Origin("198.51.100.7", "bench"),
                                           details={"n": f"{k}.{i}"}) for i in range(tx_size)]
                    await session.execute(insert(outbox), [
                        {"event_id": e.event_id, "tag": e.tag, "payload": emitter.serialize(e),
                         "created_at": clock.now(), "attempts": 0} for e in built])
                    await session.commit()
                ids = [e.event_id for e in built]
                now = time.time()
                for event_id in ids:
                    committed[event_id] = now
                relay.notify()

        started = time.perf_counter()
        await asyncio.gather(*(produce(j, started) for j in range(producers)))
        produced_s = time.perf_counter() - started
        await worker.finished_at(timeout=60)
        stop.set()
        await relay_task
        print(f"  paced producers: {len(committed)} events in {produced_s:.1f} s "
              f"({len(committed) / produced_s:.0f} events/s; {producers} concurrent, {tx_size} per transaction)",
              flush=True)
    finally:
        await producer_engine.dispose()
    stored = dict(line.split() for line in lag_file.read_text().splitlines())
    if set(stored) != set(committed):
        raise SystemExit(f"lag run: {len(stored)} stored for {len(committed)} committed")
    return [float(stored[i]) - committed[i] for i in committed]


async def main(args) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        tmp = pathlib.Path(tmp)
        redis = EmbeddedRedis(tmp / "redis", appendonly=True, password=secrets.token_urlsafe(32)).start()
        dbs = Databases(tmp, args.sqlite)
        try:
            backend = await dbs.detect()
            print(f"database: {backend}" + (" at 127.0.0.1:5432 (throwaway databases)" if backend == "postgresql"
                                           else f" files in {tmp}"), flush=True)
            print(f"redis: embedded redis-server at {redis.host}:{redis.port} (password, appendonly yes, "
                  "appendfsync always)", flush=True)
            sample = build_payloads(1, SystemClock())[0]["payload"]
            print(f"event size: {len(sample)} bytes; batches of {BATCH}; {args.events} events per phase",
                  flush=True)
            raw = await raw_redis(redis.url, sample, args.events)
            results, consumer_cpu_rate = await throughput(dbs, redis.url, args.events)
            print(f"lag run: {args.rate} events/s for {args.seconds} s ...", flush=True)
            lags = await lag(dbs, redis.url, tmp, args.rate, args.seconds, args.tx_size, args.producers)
        finally:
            await dbs.drop()
            redis.stop()

    xadd_rate = max(raw["raw XADD, MULTI pipeline"], raw["raw XADD, batch script"])
    read_rate = raw["raw XREADGROUP + XACK"]
    print()
    print(f"{'phase (' + backend + ')':<36}{'events/s':>10}{'vs raw XADD':>13}{'vs raw read':>13}")
    for name, rate in [*raw.items(), *results.items()]:
        print(f"{name:<36}{rate:>10,.0f}{rate / xadd_rate:>13.1%}{rate / read_rate:>13.1%}")
    print("(ratios against the faster raw XADD and against raw XREADGROUP + XACK)")
    sustained = results[SUSTAINED]
    print(f"consumer process ({SUSTAINED}): {consumer_cpu_rate:,.0f} events per consumer CPU-second")
    print()
    ms = [v * 1000 for v in lags]
    print(f"end-to-end lag at {args.rate}/s over {args.seconds} s ({len(ms)} events): "
          f"p50 {pct(ms, 50):.1f} ms, p90 {pct(ms, 90):.1f} ms, p99 {pct(ms, 99):.1f} ms, "
          f"max {max(ms):.1f} ms, mean {statistics.fmean(ms):.1f} ms")
    ok_rate = sustained >= TARGET
    ok_lag = pct(ms, 99) < 1000
    print(f"target >= {TARGET:,} events/s into {backend}, events sealed and verified: {'PASS' if ok_rate else 'FAIL'} ({sustained:,.0f})")
    print(f"target lag p99 < 1 s at 1,000 events/s: {'PASS' if ok_lag else 'FAIL'} ({pct(ms, 99):.0f} ms)")
    return 0 if ok_rate and ok_lag else 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=50_000, help="events per throughput phase")
    p.add_argument("--rate", type=int, default=1000, help="paced producer rate for the lag run")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the lag run")
    p.add_argument("--tx-size", type=int, default=10, help="events per producer transaction in the lag run")
    p.add_argument("--producers", type=int, default=4, help="concurrent producer tasks in the lag run")
    p.add_argument("--sqlite", action="store_true", help="use SQLite even if PostgreSQL is reachable")
    p.add_argument("--role", choices=["bench", "consumer"], default="bench", help=argparse.SUPPRESS)
    p.add_argument("--redis-url", help=argparse.SUPPRESS)
    p.add_argument("--db-url", help=argparse.SUPPRESS)
    p.add_argument("--stream", help=argparse.SUPPRESS)
    p.add_argument("--target", type=int, help=argparse.SUPPRESS)
    p.add_argument("--lag-file", help=argparse.SUPPRESS)
    p.add_argument("--event-key", help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(asyncio.run(consumer_role(arguments) if arguments.role == "consumer" else main(arguments)))
