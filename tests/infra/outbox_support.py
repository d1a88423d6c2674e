"""A tiny producer service for relay and pipeline tests: one table, its outbox, an emitter."""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table, insert

from gatehouse.infra.db import make_engine, make_metadata, make_session_factory
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin, make_outbox_table

metadata = make_metadata()
widgets = Table("widgets", metadata, Column("id", Integer, primary_key=True), Column("name", String(50)))
outbox = make_outbox_table(metadata)


async def producer_db(url: str):
    """(engine, session factory) over a fresh producer schema."""
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine, make_session_factory(engine)


async def produce(db, emitter: EventEmitter, count: int, *, rollback: bool = False,
                  user=("u1", "alice"), tag: str = "widget:create", on_commit=None) -> list[str]:
    """Commit `count` changes, each with its event in the same transaction; return the event ids."""
    ids = []
    for i in range(count):
        async with db() as session:
            await session.execute(insert(widgets).values(name=f"w{i}"))
            event = await emitter.emit(session, tag, actor=ActorRef.user(*user), user=user,
                                       origin=Origin("192.0.2.10", "pytest"), details={"n": str(i)})
            if rollback:
                await session.rollback()
                continue
            await session.commit()
        if on_commit is not None:
            on_commit()
        ids.append(event.event_id)
    return ids
