"""The committed gRPC stubs match the .proto files (regenerated here and compared)."""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_have_not_drifted(tmp_path):
    written = _generator().generate(tmp_path)
    assert written, "no .proto files found"
    stale = []
    for path in written:
        committed = ROOT / path.relative_to(tmp_path)
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(str(committed.relative_to(ROOT)))
    assert not stale, f"stubs out of date, run `python scripts/gen_protos.py`: {stale}"


def test_every_proto_package_is_versioned():
    for proto in (ROOT / "protos").rglob("*.proto"):
        text = proto.read_text()
        package = next(line for line in text.splitlines() if line.startswith("package "))
        assert package.rstrip(";").split(".")[-1].startswith("v"), proto
