"""`gatehouse admin user create` and the new account's password, as a real subprocess against a real
auth service: a prompt only on a terminal; without one (a script, CI, `kubectl exec` without -t) the
account is created without a password and stderr says so in one line; `--password-stdin` with
nothing to read is a one-line error. Regression: without a terminal getpass died with EOFError."""

from __future__ import annotations

import asyncio
import json
import os
import secrets

import grpc
import pytest

from gatehouse.auth.v1 import accounts_pb2, admin_pb2
from tests.cli.support import run_cli, start_cli
from tests.system import PASSWORD, client

pytestmark = pytest.mark.asyncio(loop_scope="module")
SYSTEM_OPTIONS = {"with_gateway": False}


def new_name() -> str:
    return f"pw{secrets.token_hex(4)}"


def create_args(username: str, *extra: str) -> list[str]:
    return ["admin", "user", "create", username, "--email", f"{username}@example.org", "--verified", *extra]


async def logs_in(system, username: str, password: str) -> bool:
    try:
        await system.accounts.Login(accounts_pb2.LoginRequest(username=username, password=password,
                                                              client=client()))
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc
        return False
    return True


async def exists(system, username: str) -> bool:
    try:
        await system.admin.GetUser(admin_pb2.AdminGetUserRequest(username=username))
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
        return False
    return True


async def create_on_a_terminal(system, username: str, typed: bytes) -> tuple[int, str, str]:
    """Run `user create` with a pseudo-terminal on stdin; type `typed` once the prompt is shown."""
    terminal, other_end = os.openpty()
    try:
        # A session of its own, so the child has no controlling terminal but this one on stdin.
        proc = await start_cli(system.cli_env(), *create_args(username), stdin=other_end, start_new_session=True)
        os.close(other_end)
        prompt = await asyncio.wait_for(proc.stderr.read(len("Password")), 30)
        assert prompt == b"Password"  # echo is off by now: what is typed next is read, not shown
        os.write(terminal, typed)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        os.close(terminal)
    return proc.returncode, out.decode(), (prompt + err).decode()


async def test_the_password_is_asked_for_only_on_a_terminal(system):
    username = new_name()
    rc, out, err = await create_on_a_terminal(system, username, PASSWORD.encode() + b"\n")
    assert rc == 0 and out.startswith(f"created {username} ") and "no terminal" not in err, err
    assert await logs_in(system, username, PASSWORD)
    username = new_name()
    rc, out, err = await create_on_a_terminal(system, username, b"\x04")  # Ctrl-D at the prompt
    assert rc == 2 and out == "" and "Traceback" not in err
    assert err.splitlines()[-1] == "gatehouse: error: no password entered; nothing was created"
    assert not await exists(system, username)

    # Without one: stdin /dev/null (cron, CI), and a pipe carrying text the command was not told to read.
    for stdin, no_stdin, extra in ((None, True, ()), (PASSWORD.encode() + b"\n", False, ("--json",))):
        username = new_name()
        rc, out, err = await run_cli(system.cli_env(), *create_args(username, *extra), stdin=stdin, no_stdin=no_stdin)
        assert rc == 0, err
        assert err.splitlines() == [f"gatehouse: no terminal: {username} was created without a password "
                                    "(the password-reset page sets one); pass --password-stdin to give one at "
                                    "creation"]
        if extra:
            assert json.loads(out)["username"] == username  # stdout stays the result
        else:
            assert out.startswith(f"created {username} ")
        assert await exists(system, username)
        assert not await logs_in(system, username, PASSWORD)  # the piped text was not taken as a password


async def test_password_stdin_with_nothing_to_read_is_a_one_line_error(system):
    for stdin, no_stdin in ((None, True), (b"", False), (b"\n", False)):
        username = new_name()
        rc, out, err = await run_cli(system.cli_env(), *create_args(username, "--password-stdin"),
                                     stdin=stdin, no_stdin=no_stdin)
        assert rc == 2 and out == ""
        assert err.splitlines() == ["gatehouse: error: --password-stdin: standard input held no password "
                                    "(pipe it as one line, or use --no-password); nothing was created"]
        assert not await exists(system, username)
