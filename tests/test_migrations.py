"""Each service's migrations, run on an empty database, give exactly its models' schema."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from gatehouse.cli.migrate import migrations_dir
from gatehouse.infra.db import schema_drift

SERVICES = [s for s in ("authsvc", "uploadgw", "auditsvc")
            if importlib.util.find_spec(s) and importlib.util.find_spec(f"{s}.models")]


@pytest.mark.parametrize("service", SERVICES)
def test_upgrade_head_matches_models(service, make_database_url):
    metadata = importlib.import_module(f"{service}.models").metadata
    drift = schema_drift(make_database_url(service), migrations_dir(service), metadata)
    assert drift == [], f"{service}: migrations and models differ: {drift}"
