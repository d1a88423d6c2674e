"""TLS between the services in the manifests (deploy/components/tls, in the prod overlay): every
gRPC server requires client certificates, every client has one, each from a cert-manager
Certificate whose Secret the pod mounts as a directory (so renewals reach the files), signed by
the overlay's CA Issuer, naming the hosts its clients call. The dev overlay stays plaintext."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import Manifests, Workload

# workload -> (its variables' prefix, the usages its certificate needs, whether it serves TLS)
PARTIES = {
    "authsvc": ("AUTHSVC", {"server auth", "client auth"}, True),
    "auditsvc": ("AUDITSVC", {"server auth", "client auth"}, True),
    "uploadgw": ("UPLOADGW", {"client auth"}, False),
}
# A client's target variable -> the server it names.
TARGETS = {("uploadgw", "UPLOADGW_AUTHSVC_TARGET"): "authsvc", ("uploadgw", "UPLOADGW_AUDITSVC_TARGET"): "auditsvc",
           ("auditsvc", "AUDITSVC_AUTHSVC_TARGET"): "authsvc"}


def env_of(overlay: Manifests, name: str) -> dict[str, str]:
    (container,) = overlay.workload(name).pod["containers"]
    return overlay.environment(container)


def certificate_of(overlay: Manifests, workload: Workload, path: str) -> dict:
    """The Certificate whose Secret is mounted (as a whole directory) where `path` lies."""
    (container,) = workload.pod["containers"]
    volumes = {v["name"]: v for v in workload.pod.get("volumes") or []}
    (mount,) = [m for m in container.get("volumeMounts") or [] if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert "subPath" not in mount, f"{workload.name}: a subPath mount never sees a renewed certificate"
    secret = volumes[mount["name"]]["secret"]["secretName"]
    (certificate,) = [c for c in overlay.of_kind("Certificate") if c["spec"]["secretName"] == secret]
    return certificate


def test_prod_runs_mutual_tls_with_certificates_from_its_own_ca(rendered):
    prod = rendered["prod"]
    issuers = {i["metadata"]["name"]: i for i in prod.of_kind("Issuer")}
    for name, (prefix, usages, serves) in PARTIES.items():
        env = env_of(prod, name)
        files = [env[f"{prefix}_TLS_{v}"] for v in ("CERT", "KEY", "CA")]
        (certificate,) = {certificate_of(prod, prod.workload(name), f)["metadata"]["name"] for f in files}
        spec = prod.get("Certificate", certificate)["spec"]
        assert usages <= set(spec["usages"]), (name, spec["usages"])
        assert issuers[spec["issuerRef"]["name"]]["spec"]["ca"]["secretName"] in {
            c["spec"]["secretName"] for c in prod.of_kind("Certificate") if c["spec"].get("isCA")}
        if serves:
            assert env[f"{prefix}_TLS_CLIENT_AUTH"] == "true", f"{name} must require client certificates"
            assert "127.0.0.1" in spec["ipAddresses"], f"{name}: the CLI in its pod calls 127.0.0.1"
            assert env["GATEHOUSE_TLS_CERT"] == env[f"{prefix}_TLS_CERT"], f"{name}: the in-pod CLI's certificate"
    for (client, variable), server in TARGETS.items():
        host = env_of(prod, client)[variable].rsplit(":", 1)[0].removeprefix("dns:///")
        cert = prod.get("Certificate", certificate_of(prod, prod.workload(server), env_of(prod, server)[
            f"{PARTIES[server][0]}_TLS_CERT"])["metadata"]["name"])
        assert host in cert["spec"]["dnsNames"], f"{client} calls {host}, which {server}'s certificate does not name"


@pytest.mark.parametrize("name", sorted(PARTIES))
def test_dev_stays_plaintext_and_needs_no_cert_manager(rendered, name):
    dev = rendered["dev"]
    assert not [d for d in dev.docs if d["apiVersion"].startswith("cert-manager.io/")]
    assert not [k for k in env_of(dev, name) if "_TLS_" in k]
