"""The auth service's declarative base and its outbox table (its own metadata, its own tables)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import DateTime
from sqlalchemy.orm import DeclarativeBase

from gatehouse.infra.db import make_metadata
from gatehouse.infra.outbox import make_outbox_table


class Base(DeclarativeBase):
    metadata = make_metadata()
    type_annotation_map = {dt.datetime: DateTime(timezone=True)}


outbox = make_outbox_table(Base.metadata)


def new_id() -> str:
    return str(uuid.uuid4())
