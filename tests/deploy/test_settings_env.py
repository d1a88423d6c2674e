"""The environment each pod starts with is one its service accepts: the manifests and the
settings modules agree on every variable name, and the credentials pair up."""

from __future__ import annotations

import os
import re

import pytest

from tests.deploy.conftest import ROOT
from tests.deploy.manifests import Manifests
from tests.test_readme import variables_read_by_code as read_by_code

SECRET_WORDS = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL|REDIS_URL|SMTP_URL")


def variables_read_by_code() -> set[str]:
    # `gatehouse relay --service S` and `gatehouse migrate` build these names at run time.
    return read_by_code() | {f"{s}_DATABASE_URL" for s in ("AUTHSVC", "UPLOADGW", "AUDITSVC")}


def env_of(overlay: Manifests, name: str) -> dict[str, str]:
    (container,) = overlay.workload(name).pod["containers"]
    return overlay.environment(container)


def test_every_variable_a_pod_gets_is_read_by_gatehouse(overlay: Manifests):
    known = variables_read_by_code()
    unknown = {name for workload in overlay.gatehouse_workloads() for container in workload.containers
               for name in overlay.environment(container) if name not in known}
    assert not unknown, f"set in the manifests but read by no code: {sorted(unknown)}"


def test_the_auth_service_accepts_its_environment(overlay: Manifests):
    from authsvc.settings import Settings

    env = env_of(overlay, "authsvc")
    settings = Settings.from_env(env)
    assert settings.listen == "0.0.0.0:50051"
    assert settings.relay_enabled is False, "the relay runs as its own Deployment"
    assert settings.redis_url and settings.token_secrets[0][0] == 1
    assert overlay.workload("authsvc").port_number("grpc") == 50051


def host_port(target: str) -> tuple[str, str]:
    """A gRPC target's host and port (`dns:///authsvc:50051` -> authsvc, 50051)."""
    host, port = target.removeprefix("dns:///").rsplit(":", 1)
    return host, port


def test_the_gateway_accepts_its_environment_and_finds_the_services(overlay: Manifests):
    from uploadgw.settings import Settings

    settings = Settings.from_env(env_of(overlay, "uploadgw"))
    assert (settings.listen_host, settings.listen_port) == ("0.0.0.0", 8000)
    assert len(settings.session_key) >= 32, "replicas must share the key that signs the forms"
    assert settings.auditsvc_key and settings.auditsvc_target
    host, port = host_port(settings.authsvc_target)
    service = overlay.get("Service", host)
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    audit_host, audit_port = host_port(env_of(overlay, "uploadgw")["UPLOADGW_AUDITSVC_TARGET"])
    assert int(audit_port) in {p["port"] for p in overlay.get("Service", audit_host)["spec"]["ports"]}


@pytest.mark.parametrize("name, consumes", [("auditsvc", False), ("audit-consumer", True)])
def test_the_audit_deployments_accept_their_environment(overlay: Manifests, name, consumes):
    from auditsvc.settings import Settings

    settings = Settings.from_env(env_of(overlay, name))
    assert settings.listen == "0.0.0.0:50052"
    assert settings.consumer_enabled is consumes
    assert settings.redis_url
    if not consumes:
        # The admin log: auditsvc asks authsvc with the narrow credential authsvc accepts for it.
        auth = env_of(overlay, "authsvc")
        assert settings.authsvc_key == auth["AUTHSVC_AUDIT_KEY"]
        assert settings.authsvc_key not in (auth["AUTHSVC_GATEWAY_KEY"], auth["AUTHSVC_OPERATOR_KEY"])
        assert overlay.get("Service", host_port(settings.authsvc_target)[0])


def test_the_audit_consumer_accepts_the_events_each_producer_seals(overlay: Manifests):
    """Each producer pod seals with its own key; the consumer pod accepts exactly those producers;
    the gateway holds no key that could seal authsvc's events."""
    from auditsvc.settings import Settings as AuditSettings
    from authsvc.settings import Settings as AuthSettings
    from gatehouse.infra.eventauth import EventSigner, EventVerifier
    from uploadgw.settings import Settings as GatewaySettings

    verifier = EventVerifier(AuditSettings.from_env(env_of(overlay, "audit-consumer")).event_keys)
    for producer, settings in (("authsvc", AuthSettings), ("uploadgw", GatewaySettings)):
        keys = settings.from_env(env_of(overlay, producer)).event_keys
        assert verifier.open(EventSigner.for_producer(producer, keys).seal(b"e")).producer == producer
    gateway = env_of(overlay, "uploadgw")
    assert not {"AUTHSVC_EVENT_KEYS", "AUDITSVC_EVENT_KEYS"} & set(gateway)
    assert "UPLOADGW_EVENT_KEYS" not in env_of(overlay, "authsvc")
    for name in ("relay-authsvc", "relay-uploadgw"):  # relays move sealed bytes and hold no key
        assert not [k for k in overlay.environment(overlay.workload(name).pod["containers"][0]) if "EVENT_KEYS" in k]


def test_the_relays_and_the_migration_get_their_database_urls(overlay: Manifests):
    for service in ("authsvc", "uploadgw"):
        workload = overlay.workload(f"relay-{service}")
        (container,) = workload.pod["containers"]
        assert container["command"] == ["gatehouse", "relay", "--service", service]
        env = overlay.environment(container)
        assert env[f"{service.upper()}_DATABASE_URL"] and env["GATEHOUSE_REDIS_URL"]
    migrate = overlay.environment(overlay.workload("gatehouse-migrate").pod["containers"][0])
    for service in ("AUTHSVC", "UPLOADGW", "AUDITSVC"):
        assert migrate[f"{service}_DATABASE_URL"].startswith("postgresql://")


def test_the_gateway_holds_its_own_credentials_and_no_operator_secret(overlay: Manifests):
    gateway, auth, audit = (env_of(overlay, n) for n in ("uploadgw", "authsvc", "auditsvc"))
    assert gateway["UPLOADGW_AUTHSVC_KEY"] == auth["AUTHSVC_GATEWAY_KEY"] != auth["AUTHSVC_OPERATOR_KEY"]
    assert gateway["UPLOADGW_AUDITSVC_KEY"] == audit["AUDITSVC_GATEWAY_KEY"] != audit["AUDITSVC_OPERATOR_KEY"]
    assert gateway["UPLOADGW_AUTHSVC_KEY"] != gateway["UPLOADGW_AUDITSVC_KEY"]
    leaked = {k for k in gateway if "OPERATOR" in k or k in ("AUTHSVC_TOKEN_SECRETS", "AUTHSVC_TOTP_KEYS")}
    assert not leaked
    for name in ("relay-authsvc", "relay-uploadgw", "audit-consumer", "gatehouse-migrate"):
        env = overlay.environment(overlay.workload(name).pod["containers"][0])
        assert not {"AUTHSVC_TOKEN_SECRETS", "AUTHSVC_TOTP_KEYS", "AUTHSVC_OPERATOR_KEY"} & set(env), name


def test_no_secret_sits_in_a_configmap(overlay: Manifests):
    for config in overlay.of_kind("ConfigMap"):
        for key in config.get("data") or {}:
            assert not SECRET_WORDS.search(key), f"ConfigMap {config['metadata']['name']} holds {key}"


def test_the_operator_cli_in_the_auth_pod_reaches_its_own_server(overlay: Manifests, monkeypatch, tmp_path):
    from gatehouse.cli.settings import CliSettings

    for name, target_var in (("authsvc", "authsvc_target"), ("auditsvc", "auditsvc_target")):
        env = env_of(overlay, name)
        for key in [k for k in os.environ if k.startswith(("GATEHOUSE_", "AUTHSVC_", "AUDITSVC_"))]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        cli = CliSettings.load(str(tmp_path))
        listen_port = env[f"{name.upper()}_LISTEN"].rsplit(":", 1)[1]
        assert getattr(cli, target_var) == f"127.0.0.1:{listen_port}"
        key = cli.operator_key if name == "authsvc" else cli.audit_operator_key
        assert key and key == env[f"{name.upper()}_OPERATOR_KEY"]


def test_generated_secrets_files_never_reach_git():
    for overlay in ("dev", "prod"):
        assert "secrets.env" in (ROOT / "deploy" / "overlays" / overlay / ".gitignore").read_text().split()


def test_the_public_url_the_ingress_host_and_the_webauthn_origin_agree(overlay: Manifests):
    """Security keys are bound to the relying-party id: it must be the host users reach."""
    from urllib.parse import urlsplit

    from authsvc.settings import Settings

    settings = Settings.from_env(env_of(overlay, "authsvc"))
    public = urlsplit(settings.public_url)
    (ingress,) = overlay.of_kind("Ingress")
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts == {public.hostname} == {settings.webauthn_rp_id}
    assert settings.webauthn_origins == (f"{public.scheme}://{public.netloc}",)
    tls_hosts = {h for entry in ingress["spec"].get("tls") or [] for h in entry["hosts"]}
    assert (public.scheme == "https") == bool(tls_hosts) and tls_hosts <= hosts
