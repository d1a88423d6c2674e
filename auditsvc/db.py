"""The audit service's declarative base (its own metadata, its own tables)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime
from sqlalchemy.orm import DeclarativeBase

from gatehouse.infra.db import make_metadata


class Base(DeclarativeBase):
    metadata = make_metadata()
    type_annotation_map = {dt.datetime: DateTime(timezone=True)}
