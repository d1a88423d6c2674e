"""The README keeps its promises: the two commands, every environment variable documented, and
its quick start working as written."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

from gatehouse.infra.tls import TLS_VARIABLES

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV_CALL = re.compile(r"""env\.(?:str|int|float|bool|list|secret|service_key)\(\s*f?["']([A-Z][A-Z0-9_]+)["']""")
# `TlsSettings.from_env(env, "PREFIX")` reads `PREFIX_<name>` for each of tls.TLS_VARIABLES.
TLS_CALL = re.compile(r"""TlsSettings\.from_env\(\s*env,\s*["']([A-Z][A-Z0-9_]*)["']""")


def variables_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        names |= set(ENV_CALL.findall(text))
        names |= {f"{prefix}_{name}" for prefix in TLS_CALL.findall(text) for name in TLS_VARIABLES}
    return names


def test_every_environment_variable_is_documented():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    missing = sorted(variables_read_by_code() - documented)
    assert not missing, f"README's configuration table lacks: {missing}"


def test_readme_names_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "python3 dev.py up" in readme and "python3 dev.py test" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 dev.py test" in ci


# -- the quick start, run as written ---------------------------------------------------------------

UP = "python3 dev.py up"
SKIPPED = "python3 dev.py test"  # this very suite
DEFAULT_PORTS = (8000, 50051, 50052, 6390)  # what the README's commands use: gatehouse up's defaults
QUICK_START_TIMEOUT = 600


def shell_blocks(readme: str) -> list[str]:
    """Every ```bash block of the README, in order."""
    return re.findall(r"^```bash\n(.*?)^```", readme, re.M | re.S)


def _fresh_copy(target: pathlib.Path) -> None:
    """The checkout's files as a clone would have them (tracked and new, nothing ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_quick_start_works_as_written(tmp_path):
    """From a fresh copy: `python3 dev.py up` (in the background, as in its own terminal), then every
    other line of every bash block in one shell without a terminal, a real twine and a real pip."""
    taken = [p for p in DEFAULT_PORTS if _port_taken(p)]
    assert not taken, f"the README's commands use ports {DEFAULT_PORTS}; these are taken here: {taken}"
    checkout = tmp_path / "gatehouse"
    _fresh_copy(checkout)
    lines = [line for block in shell_blocks((ROOT / "README.md").read_text()) for line in block.splitlines()]
    assert any(line.startswith(UP) for line in lines) and any(line.startswith(SKIPPED) for line in lines)
    script = [line for line in lines if not line.startswith((UP, SKIPPED))]
    # Nothing from this suite's own settings; twine from this suite's venv, after the copy's own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSVC_", "AUDITSVC_", "UPLOADGW_", "GATEHOUSE_"))}
    env["PATH"] = f"{env.get('PATH', '')}:{pathlib.Path(sys.executable).parent}"
    up = subprocess.Popen(["bash", "-c", UP], cwd=checkout, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        said: list[str] = []
        deadline = time.monotonic() + QUICK_START_TIMEOUT
        while not said or "Gatehouse is up." not in said[-1]:
            line = up.stdout.readline()
            assert line and time.monotonic() < deadline, "`python3 dev.py up` did not come up:\n" + "".join(said)
            said.append(line)
        ran = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(script)], cwd=checkout, env=env,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=QUICK_START_TIMEOUT)
        assert ran.returncode == 0, f"the quick start failed:\n{ran.stdout}\n{ran.stderr}"
        assert "Hello from my-project, installed from Gatehouse" in ran.stdout, ran.stdout + ran.stderr
        assert "Traceback" not in ran.stderr, ran.stderr
    finally:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
