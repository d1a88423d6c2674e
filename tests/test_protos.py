"""The committed gRPC stubs match the .proto files (regenerated here with the locked generator and
compared), and every grpcio and protobuf that pyproject.toml admits can import them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import pathlib
import re
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parent.parent
STUBS = ROOT / "gatehouse"


def _locked_version(name: str) -> str:
    packages = tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    return next(p["version"] for p in packages if p["name"] == name)


def _floor(name: str) -> Version:
    """The lowest version pyproject.toml's runtime dependencies admit for `name` (its `>=` bound)."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (requirement,) = [Requirement(d) for d in dependencies if Requirement(d).name == name]
    (floor,) = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return floor


def _generator():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_have_not_drifted(tmp_path):
    installed, locked = importlib.metadata.version("grpcio-tools"), _locked_version("grpcio-tools")
    assert installed == locked, f"grpcio-tools {installed} is installed, uv.lock names {locked}: run `python3 dev.py test`"
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


def test_stubs_stamp_no_version_above_the_lowest_the_project_accepts():
    """A stub checks at import that grpcio (and protobuf) are at least the versions that generated it."""
    grpc_stamps = {Version(v) for p in STUBS.rglob("*_pb2_grpc.py")
                   for v in re.findall(r"^GRPC_GENERATED_VERSION = '([^']+)'", p.read_text(), re.M)}
    protobuf_stamps = {Version(v) for p in STUBS.rglob("*_pb2.py")
                       for v in re.findall(r"^# Protobuf Python Version: (\S+)", p.read_text(), re.M)}
    assert grpc_stamps and protobuf_stamps
    assert max(grpc_stamps) <= _floor("grpcio"), f"stubs need grpcio {max(grpc_stamps)}, pyproject admits {_floor('grpcio')}"
    assert max(protobuf_stamps) <= _floor("protobuf"), \
        f"stubs need protobuf {max(protobuf_stamps)}, pyproject admits {_floor('protobuf')}"
