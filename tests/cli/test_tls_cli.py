"""The CLI's TLS settings (GATEHOUSE_TLS_*) when they are wrong: a clear error naming the variable
and exit code 2, never a traceback and never a silent fall-back to plaintext. (The CLI over mutual
TLS to real services is in tests/e2e/test_tls_processes.py.)"""

from __future__ import annotations

import json

import pytest

from tests.e2e.embedded import gatehouse


@pytest.mark.parametrize(("env", "message"), [
    ({"GATEHOUSE_TLS_CA": "{tmp}/missing-ca.pem"}, "GATEHOUSE_TLS_CA: cannot read {tmp}/missing-ca.pem"),
    ({"GATEHOUSE_TLS_CERT": "{tmp}/tls.crt"}, "GATEHOUSE_TLS_CERT and GATEHOUSE_TLS_KEY go together"),
])
def test_tls_files_that_do_not_load_stop_the_cli_with_a_message(tmp_path, env, message):
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    done = gatehouse("admin", "user", "show", "alice", "--data-dir", str(tmp_path), "--json",
                     AUTHSVC_OPERATOR_KEY="operator-key", GATEHOUSE_AUTHSVC_TARGET="127.0.0.1:1", **env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert message.format(tmp=tmp_path) in done.stderr
    assert json.loads(done.stdout)["error"] == done.stderr.strip().removeprefix("gatehouse: error: ")
