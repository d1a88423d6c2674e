"""Every model of the audit service, imported once so that the metadata is complete."""

from auditsvc.db import Base  # noqa: F401
from auditsvc.store.models import StoredEvent  # noqa: F401

metadata = Base.metadata
