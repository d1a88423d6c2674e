"""The container image, checked without a Docker engine: the Dockerfile read statically, the wheel
its builder stage makes built for real from the same sources, and every workload's command parsed
by the real entry points."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib.util
import re
import subprocess
import sys
import zipfile

import pytest

from tests.deploy.conftest import ROOT
from tests.deploy.manifests import Manifests

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PACKAGES = ("gatehouse", "authsvc", "uploadgw", "auditsvc")
BUILD_TOOLS = re.compile(r"apt-get install|build-essential|\bgcc\b|\bmake\b|pip install")


@dataclasses.dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]]

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each a list of (INSTRUCTION, arguments)."""
    logical = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in filter(None, (line.strip() for line in logical.splitlines())):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], parts[0])
            stages.append(Stage(base, parts[2] if len(parts) > 2 else "", []))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def test_the_image_is_built_in_stages_and_runs_slim_python_3_11(stages):
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    assert runtime.base.startswith("python:3.11-slim") and builder.base == runtime.base
    assert any(f"--from={builder.name}" in c for c in runtime.all("COPY"))


def test_the_final_stage_has_no_build_tools_and_no_sources(stages):
    runtime = stages[-1]
    for command in runtime.all("RUN"):
        assert not BUILD_TOOLS.search(command), f"build tooling in the final stage: {command}"
    for copy in runtime.all("COPY"):
        assert copy.startswith("--from="), f"the final stage copies from the build context: {copy}"
    assert not any(kw == "ADD" for stage in stages for kw, _ in stage.instructions), "ADD may fetch URLs"


def test_the_image_runs_as_uid_10001_without_writing_bytecode(stages, rendered):
    runtime = stages[-1]
    (user,) = runtime.all("USER")
    uid, _, gid = user.partition(":")
    assert uid == gid == "10001", "a numeric non-root user, so runAsNonRoot can verify it"
    env = " ".join(runtime.all("ENV"))
    assert re.search(r"PYTHONDONTWRITEBYTECODE=1", env)
    for workload in rendered["prod"].gatehouse_workloads():
        assert workload.pod["securityContext"]["runAsUser"] == int(uid), workload.name
    assert not runtime.all("ENTRYPOINT"), "one image for every process: each workload sets its command"


def test_the_build_context_holds_exactly_what_the_builder_copies(stages):
    ignore = [l.strip() for l in (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
              if l.strip() and not l.startswith("#")]
    sources = [s for c in stages[0].all("COPY") for s in c.split()[:-1]]
    assert set(sources) == {"pyproject.toml", "uv.lock", "dev.py", *PACKAGES}
    for source in sources:
        assert (ROOT / source).exists(), source
        assert f"!{source}" in ignore or f"!{source}/" in ignore, f"{source} is not in the build context"
    stubs = list((ROOT / "gatehouse").rglob("v1/*_pb2.py"))
    assert stubs and all(p.with_name(p.stem + "_grpc.py").exists() for p in stubs), "stubs are committed"


def test_the_builder_installs_exactly_what_the_lock_pins(stages):
    """uv comes from the lock's hashes; everything else from `uv sync --frozen` (never resolved anew)."""
    runs = " ".join(stages[0].all("RUN"))
    assert "dev.py locked uv" in runs and "--require-hashes" in runs
    assert re.search(r"\buv sync --frozen\b", runs)
    assert not re.search(r"pip install (?!--no-deps --require-hashes)", runs), "an install not from the lock"


def test_the_builder_wheel_carries_every_source_file_stubs_and_migrations(tmp_path, stages):
    """Build the wheel from just the files the builder stage copies, the way the builder does."""
    context = tmp_path / "src"
    context.mkdir()
    (context / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    skip = ("__pycache__", "*.pyc", "*.egg-info")
    expected = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            rel = path.relative_to(ROOT)
            if path.is_dir() or any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in skip):
                continue
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            (context / rel).write_bytes(path.read_bytes())
            expected.add(rel.as_posix())
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--wheel-dir", str(tmp_path / "wheels"), str(context)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "wheels").glob("gatehouse-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    missing = sorted(expected - names)
    assert not missing, f"the image would lack: {missing}"
    assert any(n.startswith("gatehouse/auth/v1/") and n.endswith("_pb2.py") for n in names)
    assert any(n.startswith("authsvc/migrations/versions/") for n in names)
    assert "gatehouse = gatehouse.cli:main" in entry_points


def test_every_workload_command_names_a_real_entry_point(overlay: Manifests):
    from gatehouse.cli import build_parser

    for workload in overlay.gatehouse_workloads():
        for container in workload.containers:
            command = container["command"]
            if command[0] == "python":
                assert command[1] == "-m" and len(command) == 3, command
                module = f"{command[2]}.__main__"
                assert importlib.util.find_spec(module), f"{workload.name}: no module {module}"
            else:
                assert command[0] == "gatehouse", command
                build_parser().parse_args(command[1:])
