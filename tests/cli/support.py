"""Running the real `gatehouse` command in tests."""

from __future__ import annotations

import asyncio
import sys
import tempfile


def cli_workdir() -> str:
    """An empty working directory for CLI runs, so that no `./var/gatehouse.env` is picked up."""
    global _CLI_WORKDIR
    if _CLI_WORKDIR is None:
        _CLI_WORKDIR = tempfile.mkdtemp(prefix="gatehouse-cli-")
    return _CLI_WORKDIR


_CLI_WORKDIR: str | None = None


async def start_cli(env: dict[str, str], *args: str, stdin=asyncio.subprocess.PIPE, cwd: str | None = None,
                    **options) -> asyncio.subprocess.Process:
    """Start the real `gatehouse` command (`python -m gatehouse.cli ARGS`) with pipes (stdin: a pipe
    unless told otherwise, e.g. DEVNULL or a terminal's file descriptor)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatehouse.cli", *args, env=env, cwd=cwd or cli_workdir(), stdin=stdin,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **options)


async def run_cli(env: dict[str, str], *args: str, stdin: bytes | None = None, no_stdin: bool = False,
                  cwd: str | None = None, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run the real `gatehouse` command to its end: (exit code, stdout, stderr). Standard input is a
    pipe carrying `stdin` (closed at once when None), or /dev/null with `no_stdin`.

    Asynchronous on purpose: the servers run on this test's event loop and must keep answering."""
    proc = await start_cli(env, *args, stdin=asyncio.subprocess.DEVNULL if no_stdin else asyncio.subprocess.PIPE,
                           cwd=cwd)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(), err.decode()
