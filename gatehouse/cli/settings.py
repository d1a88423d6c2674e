"""Where the CLI finds the services and its operator credential.

Environment first (GATEHOUSE_AUTHSVC_TARGET, AUTHSVC_OPERATOR_KEY, GATEHOUSE_AUDITSVC_TARGET,
AUDITSVC_OPERATOR_KEY); otherwise the embedded default's `<data dir>/gatehouse.env`, written by
`gatehouse up`, so that `gatehouse admin …` works next to a local system with no set-up.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from gatehouse.infra.settings import Env

DEFAULT_DATA_DIR = "var"


def read_env_file(path: pathlib.Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


@dataclasses.dataclass(frozen=True)
class CliSettings:
    authsvc_target: str
    operator_key: str
    auditsvc_target: str
    audit_operator_key: str
    timeout: float

    @classmethod
    def load(cls, data_dir: str | None = None) -> "CliSettings":
        environ = dict(read_env_file(pathlib.Path(data_dir or DEFAULT_DATA_DIR) / "gatehouse.env"))
        environ.update({k: v for k, v in os.environ.items() if v})
        env = Env(environ)
        return cls(
            authsvc_target=env.str("GATEHOUSE_AUTHSVC_TARGET", "127.0.0.1:50051"),
            operator_key=env.str("AUTHSVC_OPERATOR_KEY", ""),
            auditsvc_target=env.str("GATEHOUSE_AUDITSVC_TARGET", "127.0.0.1:50052"),
            audit_operator_key=env.str("AUDITSVC_OPERATOR_KEY", ""),
            timeout=env.float("GATEHOUSE_CLI_TIMEOUT", 10.0),
        )
