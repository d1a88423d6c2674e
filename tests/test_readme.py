"""The README keeps its promises: the two commands, and every environment variable documented."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV_CALL = re.compile(r"""env\.(?:str|int|float|bool|list|secret|service_key)\(\s*f?["']([A-Z][A-Z0-9_]+)["']""")


def variables_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        names |= set(ENV_CALL.findall(path.read_text(encoding="utf-8")))
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
