"""The CLI from any directory: `admin`, `audit`, `migrate` and `relay` find the embedded system's
`gatehouse.env` the same way (`--data-dir`, else GATEHOUSE_DATA_DIR, else ./var), and when no
credential is found the error names the variable and the file looked in. Regression: `audit` run
outside the checkout said only "set AUDITSVC_OPERATOR_KEY" while `admin` inside it worked."""

from __future__ import annotations

import os
import pathlib

import pytest

from tests.cli.support import run_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")
SYSTEM_OPTIONS = {"with_gateway": False}


def bare_env(system, **extra: str) -> dict[str, str]:
    """The environment of an operator's shell: no service variables, the credentials only on disk."""
    env = {k: v for k, v in system.cli_env().items()
           if not k.startswith(("AUTHSVC_", "AUDITSVC_", "UPLOADGW_", "GATEHOUSE_"))}
    return {**env, **extra}


def write_data_dir(system, parent: pathlib.Path) -> pathlib.Path:
    """`<parent>/var/gatehouse.env` as `gatehouse up` writes it, pointing at the test system."""
    data = parent / "var"
    data.mkdir(parents=True)
    (data / "gatehouse.env").write_text(
        f"GATEHOUSE_AUTHSVC_TARGET={system.auth_target}\n"
        f"AUTHSVC_OPERATOR_KEY={system.auth_settings.operator_key}\n"
        f"GATEHOUSE_AUDITSVC_TARGET={system.audit_target}\n"
        f"AUDITSVC_OPERATOR_KEY={system.audit_settings.operator_key}\n"
        f"AUTHSVC_DATABASE_URL=sqlite:///{data / 'authsvc.sqlite3'}\n")
    return data


async def test_admin_and_audit_find_the_data_directory_from_anywhere(system, tmp_path):
    person = await system.person("dd")
    data = write_data_dir(system, tmp_path / "checkout")
    elsewhere = str(tmp_path / "elsewhere")
    os.mkdir(elsewhere)
    commands = (("admin", "user", "show", person.username), ("audit", "user", person.username, "--json"))
    ways = {
        "GATEHOUSE_DATA_DIR": dict(env=bare_env(system, GATEHOUSE_DATA_DIR=str(data)), cwd=elsewhere),
        "relative GATEHOUSE_DATA_DIR": dict(env=bare_env(system, GATEHOUSE_DATA_DIR="checkout/var"),
                                            cwd=str(tmp_path)),
        "--data-dir over GATEHOUSE_DATA_DIR": dict(env=bare_env(system, GATEHOUSE_DATA_DIR=elsewhere),
                                                   cwd=elsewhere, args=("--data-dir", str(data))),
        "./var": dict(env=bare_env(system), cwd=str(data.parent)),
    }
    for way, how in ways.items():
        for command in commands:
            rc, out, err = await run_cli(how["env"], *command, *how.get("args", ()), cwd=how["cwd"])
            assert rc == 0, (way, command, err)
            if command[0] == "admin":
                assert out.startswith(f"{person.username} <{person.email}>"), (way, out)

    rc, out, err = await run_cli(bare_env(system, GATEHOUSE_DATA_DIR=str(data)), "migrate", cwd=elsewhere)
    assert rc == 0 and out.strip() == "migrated authsvc", err
    assert (data / "authsvc.sqlite3").is_file()


async def test_without_a_credential_the_error_names_the_variable_and_the_file(system, tmp_path):
    elsewhere = (tmp_path / "elsewhere").resolve()
    elsewhere.mkdir()
    relative = tmp_path / "nowhere"
    for command, variable in ((("admin", "user", "show", "anyone"), "AUTHSVC_OPERATOR_KEY"),
                              (("audit", "all"), "AUDITSVC_OPERATOR_KEY")):
        for env, looked_in in ((bare_env(system), elsewhere / "var" / "gatehouse.env"),
                               (bare_env(system, GATEHOUSE_DATA_DIR=os.path.relpath(relative, elsewhere)),
                                relative.resolve() / "gatehouse.env")):
            rc, out, err = await run_cli(env, *command, cwd=str(elsewhere))
            assert rc == 2 and out == ""
            assert err.splitlines() == [
                f"gatehouse: error: no operator credential: set {variable}, or point --data-dir / "
                f"GATEHOUSE_DATA_DIR at the data directory of `gatehouse up` (looked in {looked_in})"]

    rc, _, err = await run_cli(bare_env(system), "migrate", cwd=str(elsewhere))
    assert rc == 2 and f"(looked in {elsewhere / 'var' / 'gatehouse.env'})" in err
    rc, _, err = await run_cli(bare_env(system), "relay", "--service", "authsvc", cwd=str(elsewhere))
    assert rc == 2 and f"{elsewhere / 'var' / 'gatehouse.env'})" in err
