"""Wiring: builds the auth service's collaborators from settings (no I/O at import time)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from authsvc.accounts.passwords import PasswordHasher, PasswordPolicy
from authsvc.accounts.service import AccountsService
from authsvc.db import outbox
from authsvc.settings import Settings
from gatehouse.infra.clock import Clock, SystemClock
from gatehouse.infra.db import make_engine, make_session_factory
from gatehouse.infra.outbox import EventEmitter


@dataclasses.dataclass
class AuthApp:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    db: async_sessionmaker
    events: EventEmitter
    hasher: PasswordHasher
    accounts: AccountsService

    async def close(self) -> None:
        self.hasher.close()
        await self.engine.dispose()


def build_app(settings: Settings, *, clock: Clock | None = None) -> AuthApp:
    clock = clock or SystemClock()
    engine = make_engine(settings.database_url)
    db = make_session_factory(engine)
    events = EventEmitter(outbox, source="authsvc", clock=clock)
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism, workers=settings.hash_workers,
    )
    accounts = AccountsService(
        db=db, clock=clock, hasher=hasher, policy=PasswordPolicy(), events=events,
        session_lifetime=dt.timedelta(seconds=settings.session_lifetime_seconds),
    )
    return AuthApp(settings=settings, clock=clock, engine=engine, db=db, events=events,
                   hasher=hasher, accounts=accounts)
