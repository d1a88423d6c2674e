"""deploy/gen_secrets.py: keys the services accept, private files, and rotation that keeps the
versions still in use."""

from __future__ import annotations

import importlib.util
import stat
import subprocess
import sys

import pytest

from tests.deploy.conftest import DEPLOY, PROD_URLS

SCRIPT = DEPLOY / "gen_secrets.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gen_secrets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def read_env(path) -> dict[str, str]:
    script = load_script()
    return {line[0]: line[1] for line in script.parse_env(path.read_text()) if isinstance(line, tuple)}


def test_every_generated_key_is_32_bytes_the_settings_decoder_reads():
    from gatehouse.infra.settings import decode_key

    script = load_script()
    for _ in range(200):
        for name, value in script.service_keys().items():
            raw = value.split(":", 1)[1] if name in script.VERSIONED else value
            assert decode_key(raw) is not None and len(decode_key(raw)) == 32, (name, value)


def test_the_secrets_file_is_private_and_never_overwritten(tmp_path):
    target = tmp_path / "secrets.env"
    assert run("dev", "-o", str(target)).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    before = target.read_text()
    again = run("dev", "-o", str(target))
    assert again.returncode != 0 and "exists" in again.stderr
    assert target.read_text() == before


def test_prod_needs_one_database_per_service(tmp_path):
    urls = dict(zip(PROD_URLS[::2], PROD_URLS[1::2]))
    bad = run("prod", "-o", str(tmp_path / "s.env"), "--database-url", "postgresql://u:p@db/gatehouse",
              "--redis-url", urls["--redis-url"])
    assert bad.returncode != 0 and "{service}" in bad.stderr
    assert run("prod", "-o", str(tmp_path / "s.env"), *PROD_URLS).returncode == 0
    env = read_env(tmp_path / "s.env")
    assert {env[f"{s}_DATABASE_URL"].rsplit("/", 1)[1].split("?")[0] for s in ("AUTHSVC", "UPLOADGW", "AUDITSVC")} == {
        "authsvc", "uploadgw", "auditsvc"}


@pytest.mark.parametrize("name", ["AUTHSVC_TOKEN_SECRETS", "AUTHSVC_TOTP_KEYS"])
def test_rotating_a_versioned_key_puts_a_new_version_first_and_keeps_the_old(tmp_path, name):
    from authsvc.settings import Settings

    target = tmp_path / "secrets.env"
    run("dev", "-o", str(target))
    first = read_env(target)
    for _ in range(2):
        assert run("rotate", name, "-f", str(target)).returncode == 0
    after = read_env(target)
    versions = [item.split(":", 1)[0] for item in after[name].split(",")]
    assert versions == ["3", "2", "1"]
    assert after[name].endswith(first[name]), "the old versions are kept verbatim"
    assert {k: v for k, v in after.items() if k != name} == {k: v for k, v in first.items() if k != name}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    field = "token_secrets" if name == "AUTHSVC_TOKEN_SECRETS" else "totp_keys"
    assert [v for v, _ in getattr(Settings.from_env(dict(after, AUTHSVC_SMTP_URL="")), field)] == [3, 2, 1]


@pytest.mark.parametrize("name", ["AUTHSVC_TOKEN_SECRETS", "AUTHSVC_TOTP_KEYS"])
def test_a_staged_version_is_known_everywhere_before_it_is_used(tmp_path, name):
    """stage (verify/decrypt only) -> roll out -> promote (mint/encrypt with it) -> retire the old."""
    from authsvc.settings import Settings

    target = tmp_path / "secrets.env"
    run("dev", "-o", str(target))

    def versions(field):
        settings = Settings.from_env(dict(read_env(target), AUTHSVC_SMTP_URL=""))
        return [v for v, _ in getattr(settings, field)]

    field = "token_secrets" if name == "AUTHSVC_TOKEN_SECRETS" else "totp_keys"
    assert run("stage", name, "-f", str(target)).returncode == 0
    assert versions(field) == [1, 2], "the old version still mints; the staged one only verifies"
    assert run("promote", name, "-f", str(target)).returncode == 0
    assert versions(field) == [2, 1]
    refused = run("retire", name, "2", "-f", str(target))
    assert refused.returncode != 0 and "in use" in refused.stderr
    assert run("retire", name, "1", "-f", str(target)).returncode == 0
    assert versions(field) == [2]
    assert run("promote", "UPLOADGW_SESSION_KEY", "-f", str(target)).returncode != 0


async def test_a_service_key_rotation_never_refuses_a_call(tmp_path):
    """stage -> promote -> retire on AUTHSVC_GATEWAY_KEY, with real authsvc servers standing for
    the pods of each step: at every step of a rollout, the gateway pods of the step before and of
    this step are accepted by the authsvc pods of both (the Secret maps AUTHSVC_GATEWAY_KEY to
    the gateway's UPLOADGW_AUTHSVC_KEY)."""
    import grpc

    from authsvc.server import create_server
    from authsvc.settings import Settings
    from gatehouse.diag.v1 import echo_pb2, echo_pb2_grpc
    from gatehouse.infra.grpcserver import open_channel
    from gatehouse.infra.settings import Env

    target = tmp_path / "secrets.env"
    run("dev", "-o", str(target))
    states = [read_env(target)]
    for step in ("stage", "promote", "retire"):
        assert run(step, "AUTHSVC_GATEWAY_KEY", "-f", str(target)).returncode == 0
        states.append(read_env(target))
    old, staged, promoted, retired = (state["AUTHSVC_GATEWAY_KEY"] for state in states)
    first = old.split(",")[0]
    new = staged.split(",")[1]
    assert (staged, promoted, retired) == (f"{first},{new}", f"{new},{first}", new)

    async def accepts(server_env: dict, gateway_env: dict) -> bool:
        settings = Settings.from_env(dict(server_env, AUTHSVC_SMTP_URL="", AUTHSVC_LISTEN="127.0.0.1:0",
                                          AUTHSVC_DATABASE_URL=f"sqlite:///{tmp_path}/auth.sqlite3",
                                          AUTHSVC_RELAY_ENABLED="false"))
        key = Env({"UPLOADGW_AUTHSVC_KEY": gateway_env["AUTHSVC_GATEWAY_KEY"]}).service_key("UPLOADGW_AUTHSVC_KEY")
        running = await create_server(settings, migrate_first=True)
        try:
            async with open_channel(f"127.0.0.1:{running.port}", key) as channel:
                await echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(payload=b"x"), timeout=5)
            return True
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
            return False
        finally:
            await running.stop(grace=0)

    for before, after in zip(states, states[1:]):
        for server in (before, after):
            for gateway in (before, after):
                assert await accepts(server, gateway), (server["AUTHSVC_GATEWAY_KEY"], gateway["AUTHSVC_GATEWAY_KEY"])
    assert not await accepts(states[-1], states[0]), "a retired key is refused"


def test_rotating_a_credential_replaces_it_and_urls_are_edited_by_hand(tmp_path):
    target = tmp_path / "secrets.env"
    run("dev", "-o", str(target))
    before = read_env(target)
    assert run("rotate", "AUTHSVC_GATEWAY_KEY", "-f", str(target)).returncode == 0
    assert read_env(target)["AUTHSVC_GATEWAY_KEY"] != before["AUTHSVC_GATEWAY_KEY"]
    refused = run("rotate", "AUTHSVC_DATABASE_URL", "-f", str(target))
    assert refused.returncode != 0 and "by hand" in refused.stderr


def test_the_readme_explains_every_generated_key():
    readme = (DEPLOY / "README.md").read_text()
    script = load_script()
    names = set(script.dev_values()) | set(script.prod_values("x/{service}", "r", ""))
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"deploy/README.md does not explain {missing}"


@pytest.mark.parametrize("producer", ["authsvc", "uploadgw"])
def test_rotating_an_event_key_keeps_the_audit_consumer_accepting_what_producers_seal(tmp_path, producer):
    """stage -> promote -> retire on a producer's event key rewrites AUDITSVC_EVENT_KEYS each time, so
    the consumer accepts a version before the producer seals with it, and no longer after retiring it."""
    from auditsvc.settings import Settings as AuditSettings
    from gatehouse.infra.eventauth import EventAuthError, EventSigner, EventVerifier, parse_producer_keys

    name = f"{producer.upper()}_EVENT_KEYS"
    target = tmp_path / "secrets.env"
    run("dev", "-o", str(target))

    def sealed_and_accepted():
        env = read_env(target)
        signer = EventSigner.for_producer(producer, parse_producer_keys(name, env[name]))
        audit = AuditSettings.from_env(dict(env, AUDITSVC_GATEWAY_KEY="g" * 20, AUDITSVC_OPERATOR_KEY="o" * 20))
        opened = EventVerifier(audit.event_keys).open(signer.seal(b"event"))
        assert (opened.producer, opened.event) == (producer, b"event")
        return signer.key.version, sorted(k.version for k in audit.event_keys if k.producer == producer)

    assert sealed_and_accepted() == (1, [1])
    assert run("stage", name, "-f", str(target)).returncode == 0
    assert sealed_and_accepted() == (1, [1, 2])
    assert run("promote", name, "-f", str(target)).returncode == 0
    assert sealed_and_accepted() == (2, [1, 2])
    old = EventSigner.for_producer(producer, parse_producer_keys(name, read_env(target)[name])[1:])
    assert run("retire", name, "1", "-f", str(target)).returncode == 0
    assert sealed_and_accepted() == (2, [2])
    audit = AuditSettings.from_env(dict(read_env(target), AUDITSVC_GATEWAY_KEY="g" * 20,
                                        AUDITSVC_OPERATOR_KEY="o" * 20))
    with pytest.raises(EventAuthError, match="unknown key"):
        EventVerifier(audit.event_keys).open(old.seal(b"event"))
    refused = run("rotate", "AUDITSVC_EVENT_KEYS", "-f", str(target))
    assert refused.returncode != 0 and name in refused.stderr
