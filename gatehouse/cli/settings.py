"""Where the CLI finds the services and its operator credential.

Environment first (GATEHOUSE_AUTHSVC_TARGET, AUTHSVC_OPERATOR_KEY, GATEHOUSE_AUDITSVC_TARGET,
AUDITSVC_OPERATOR_KEY, and GATEHOUSE_TLS_* when the services serve TLS); otherwise the embedded default's `<data dir>/gatehouse.env`, written by
`gatehouse up`, so that `gatehouse admin …` works next to a local system with no set-up. Every
command finds the data directory the same way (`data_dir`): `--data-dir`, else GATEHOUSE_DATA_DIR,
else ./var.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from gatehouse.infra.settings import Env
from gatehouse.infra.tls import TlsSettings

DEFAULT_DATA_DIR = "var"
ENV_FILE = "gatehouse.env"
DATA_DIR_HELP = "the data directory of `gatehouse up` (default: $GATEHOUSE_DATA_DIR, else ./var)"


def data_dir(given: str | None = None) -> pathlib.Path:
    """The embedded system's data directory, absolute: `given` (--data-dir), else GATEHOUSE_DATA_DIR,
    else ./var."""
    env = Env()
    return pathlib.Path(given or env.str("GATEHOUSE_DATA_DIR", DEFAULT_DATA_DIR)).expanduser().resolve()


def read_env_file(path: pathlib.Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def load_environ(given_data_dir: str | None = None) -> tuple[dict[str, str], pathlib.Path]:
    """The environment's non-empty variables over those of `<data dir>/gatehouse.env`, and that
    file's path (for messages that say where the CLI looked)."""
    env_file = data_dir(given_data_dir) / ENV_FILE
    environ = read_env_file(env_file)
    environ.update({k: v for k, v in os.environ.items() if v})
    return environ, env_file


@dataclasses.dataclass(frozen=True)
class CliSettings:
    authsvc_target: str
    operator_key: str
    auditsvc_target: str
    audit_operator_key: str
    timeout: float
    env_file: pathlib.Path
    # TLS to both services (GATEHOUSE_TLS_*; gatehouse.infra.tls): None is plaintext.
    tls: TlsSettings | None = None

    @classmethod
    def load(cls, data_dir: str | None = None) -> "CliSettings":
        environ, env_file = load_environ(data_dir)
        env = Env(environ)
        return cls(
            authsvc_target=env.str("GATEHOUSE_AUTHSVC_TARGET", "127.0.0.1:50051"),
            operator_key=env.str("AUTHSVC_OPERATOR_KEY", ""),
            auditsvc_target=env.str("GATEHOUSE_AUDITSVC_TARGET", "127.0.0.1:50052"),
            audit_operator_key=env.str("AUDITSVC_OPERATOR_KEY", ""),
            timeout=env.float("GATEHOUSE_CLI_TIMEOUT", 10.0),
            env_file=env_file,
            tls=TlsSettings.from_env(env, "GATEHOUSE"),
        )

    def no_credential(self, variable: str) -> str:
        """The error when `variable` is set neither in the environment nor in the data directory."""
        return (f"no operator credential: set {variable}, or point --data-dir / GATEHOUSE_DATA_DIR at the "
                f"data directory of `gatehouse up` (looked in {self.env_file})")
