"""Every overlay renders with kustomize, validates strictly against Kubernetes 1.30, and keeps the
rules the deployment promises: resources, probes, pod security, disruption budgets, autoscaling,
graceful shutdown."""

from __future__ import annotations

import copy
import re
import warnings

import kubernetes_validate
import pytest

from tests.deploy import crds
from tests.deploy.conftest import OVERLAYS
from tests.deploy.manifests import Manifests, is_gatehouse_image, labels_match
from tests.deploy.render import available_renderers

K8S_VERSION = "1.30"
GRPC_SERVICES = {"authsvc": 50051, "auditsvc": 50052, "audit-consumer": 50052}
AUTOSCALED = {"authsvc", "uploadgw", "auditsvc", "audit-consumer"}
# Listen on no port, so there is nothing to probe; a fatal error ends the process and the kubelet
# restarts it.
NO_PROBES = {"relay-authsvc", "relay-uploadgw"}
MIB = 1024 * 1024


def strict_errors(doc: dict) -> list[str]:
    """What kubernetes-validate finds wrong with one object; a warning or a missing schema counts.
    cert-manager's objects are not in its schemas: they get the hand check of tests/deploy/crds.py."""
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    if str(doc.get("apiVersion", "")).startswith(f"{crds.GROUP}/"):
        return crds.cert_manager_errors(doc)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{name}: {path}: {exc.message}"]
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
        return [f"{name}: {exc.message}"]
    except Exception as exc:  # a warning raised as an error, or the validator failing on the object
        return [f"{name}: {type(exc).__name__}: {exc}"]
    return []


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_validates_strictly_against_kubernetes_1_30(rendered, name):
    docs = rendered[name].docs
    assert len(docs) > 20
    errors = [e for doc in docs for e in strict_errors(doc)]
    assert not errors, "\n".join(errors)


def test_strict_validation_rejects_a_misspelt_field(rendered):
    """The validator really runs in strict mode: an unknown field (a typo) is an error."""
    deployment = copy.deepcopy(rendered["prod"].get("Deployment", "authsvc"))
    assert strict_errors(deployment) == []
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    assert any("readOnlyRootFileSystem" in e for e in strict_errors(deployment))


def test_the_cert_manager_check_rejects_a_misspelt_or_unknown_field(rendered):
    """cert-manager objects get the hand check (not a schema): it really runs and is strict."""
    certificate = copy.deepcopy(rendered["prod"].get("Certificate", "gatehouse-tls-authsvc"))
    assert strict_errors(certificate) == []
    certificate["spec"]["dnsName"] = certificate["spec"].pop("dnsNames")
    certificate["spec"]["usages"].append("server-auth")
    certificate["spec"]["privateKey"]["algorithm"] = "EC"
    errors = "\n".join(strict_errors(certificate))
    for wrong in ("spec.dnsName: unknown field", "'server-auth' is not a usage", "algorithm 'EC'"):
        assert wrong in errors
    issuer = copy.deepcopy(rendered["prod"].get("Issuer", "gatehouse-ca"))
    issuer["spec"]["selfSigned"] = {}
    assert any("exactly one kind" in e for e in strict_errors(issuer))


def test_every_renderer_here_produces_the_same_objects(deploy_dir):
    """kubectl's built-in kustomize (what operators run) agrees with the one CI renders with."""
    renderers = available_renderers()
    if len(renderers) < 2:
        pytest.skip("only one kustomize renderer on this machine")
    for name in OVERLAYS:
        outputs = [sorted(map(repr, r.render(deploy_dir / "overlays" / name))) for r in renderers]
        assert all(out == outputs[0] for out in outputs), f"{name}: {[r.name for r in renderers]} disagree"


def test_the_overlays_hold_every_part(overlay: Manifests):
    deployments = {w.name for w in overlay.workloads("Deployment")}
    assert deployments >= {"authsvc", "uploadgw", "auditsvc", "audit-consumer", "relay-authsvc", "relay-uploadgw"}
    assert overlay.get("Job", "gatehouse-migrate")["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "gatehouse", "migrate"]
    assert {s["metadata"]["name"] for s in overlay.of_kind("Service")} >= {"authsvc", "uploadgw", "auditsvc"}
    assert overlay.of_kind("Ingress") and overlay.of_kind("PersistentVolumeClaim")
    namespaces = {d["metadata"].get("namespace") for d in overlay.docs if d["kind"] != "Namespace"}
    assert namespaces == {"gatehouse"}
    labels = overlay.get("Namespace", "gatehouse")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_dev_runs_postgresql_and_redis_in_cluster_and_prod_does_not(rendered):
    dev = {w.name for w in rendered["dev"].workloads("StatefulSet")}
    assert dev == {"postgres", "redis"}
    assert all(w.obj["spec"]["replicas"] == 1 for w in rendered["dev"].workloads("StatefulSet"))
    assert rendered["prod"].workloads("StatefulSet") == []
    prod_env = rendered["prod"].data_of("Secret", secret_name(rendered["prod"]))
    assert "@db.internal:5432/authsvc" in prod_env["AUTHSVC_DATABASE_URL"]
    assert prod_env["GATEHOUSE_REDIS_URL"].startswith("rediss://")


def secret_name(manifests: Manifests) -> str:
    (secret,) = [s for s in manifests.of_kind("Secret") if s["metadata"]["name"].startswith("gatehouse-secrets")]
    return secret["metadata"]["name"]


def test_every_container_has_resource_requests_and_limits(overlay: Manifests):
    for workload in overlay.workloads():
        for container in workload.containers:
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(kind) or {})
                assert not missing, f"{workload.name}/{container['name']}: no {kind} for {missing}"


def test_every_serving_container_has_native_probes(overlay: Manifests):
    for workload in overlay.workloads("Deployment", "StatefulSet"):
        for container in workload.pod["containers"]:
            if workload.name in NO_PROBES:
                assert not container.get("ports"), f"{workload.name} listens on a port: probe it"
                continue
            assert container.get("readinessProbe") and container.get("livenessProbe"), workload.name
            if workload.name in GRPC_SERVICES:
                # Under TLS the kubelet (which speaks no TLS) probes the plaintext health-only port.
                health = overlay.environment(container).get(f"{workload.name.upper()}_HEALTH_LISTEN")
                port = int(health.rsplit(":", 1)[1]) if health else GRPC_SERVICES[workload.name]
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert container[probe]["grpc"]["port"] == port, (workload.name, probe)
                assert workload.port_number(port) == port, f"{workload.name}: probed port {port} not declared"
    gateway = overlay.workload("uploadgw").pod["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/_health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/_health/live"
    assert overlay.workload("uploadgw").port_number(gateway["readinessProbe"]["httpGet"]["port"]) == 8000


def test_every_pod_meets_the_restricted_pod_security_standard(overlay: Manifests):
    for workload in overlay.workloads():
        pod = workload.pod
        where = workload.name
        assert pod.get("automountServiceAccountToken") is False, where
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        assert not any("hostPath" in v for v in pod.get("volumes") or []), where
        pod_sc = pod.get("securityContext") or {}
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        for container in workload.containers:
            sc = container.get("securityContext") or {}
            where = f"{workload.name}/{container['name']}"
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", pod_sc.get("runAsUser")) not in (None, 0), where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("privileged") in (None, False), where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            mounts = {m["mountPath"] for m in container.get("volumeMounts") or []}
            assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


def test_gatehouse_pods_run_one_image_as_uid_10001(overlay: Manifests):
    images = set()
    for workload in overlay.gatehouse_workloads():
        assert workload.pod["securityContext"]["runAsUser"] == 10001, workload.name
        images |= {c["image"] for c in workload.containers}
    assert len(images) == 1 and is_gatehouse_image(images.pop())


def test_every_deployment_has_a_disruption_budget_that_lets_nodes_drain(overlay: Manifests):
    budgets = overlay.of_kind("PodDisruptionBudget")
    for workload in overlay.workloads("Deployment"):
        covering = [b for b in budgets if labels_match(b["spec"]["selector"], workload.pod_labels)]
        assert len(covering) == 1, f"{workload.name}: {len(covering)} PodDisruptionBudgets"
        assert covering[0]["spec"].get("maxUnavailable", 0) >= 1, workload.name
    for budget in budgets:
        assert any(labels_match(budget["spec"]["selector"], w.pod_labels) for w in overlay.workloads()), (
            f"PodDisruptionBudget {budget['metadata']['name']} covers no pods")


def test_autoscalers_own_the_replica_count_of_their_deployments(overlay: Manifests):
    autoscalers = {h["spec"]["scaleTargetRef"]["name"]: h for h in overlay.of_kind("HorizontalPodAutoscaler")}
    assert set(autoscalers) == AUTOSCALED
    for name, hpa in autoscalers.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        workload = overlay.workload(name)
        assert "replicas" not in workload.obj["spec"], f"{name}: kubectl apply would reset the HPA's count"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], name
        for metric in hpa["spec"]["metrics"]:
            resource = metric["resource"]["name"]
            assert all(resource in c["resources"]["requests"] for c in workload.pod["containers"]), (
                f"{name}: utilisation of {resource} needs a request")


def test_prod_keeps_two_of_everything_and_dev_one(rendered):
    for overlay_name, least in (("prod", 2), ("dev", 1)):
        manifests = rendered[overlay_name]
        for hpa in manifests.of_kind("HorizontalPodAutoscaler"):
            assert hpa["spec"]["minReplicas"] == least, (overlay_name, hpa["metadata"]["name"])
        for workload in manifests.workloads("Deployment"):
            if workload.name not in AUTOSCALED:
                assert workload.obj["spec"]["replicas"] == least, (overlay_name, workload.name)


def prestop_sleep(container: dict) -> int:
    handler = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in handler:
        return int(handler["sleep"]["seconds"])
    command = handler.get("exec", {}).get("command") or []
    assert command[:1] == ["sleep"], f"{container['name']}: preStop is not a sleep: {command}"
    return int(command[1])


def test_serving_pods_drain_before_they_stop(overlay: Manifests):
    """A preStop sleep lets endpoints and the ingress forget the pod before SIGTERM; the grace
    period leaves the service time to finish in-flight work after that."""
    for workload in overlay.gatehouse_workloads():
        if workload.kind != "Deployment" or workload.name in NO_PROBES:
            continue
        container = workload.pod["containers"][0]
        sleep = prestop_sleep(container)
        grace = workload.pod["terminationGracePeriodSeconds"]
        assert 1 <= sleep and sleep + 10 < grace, (workload.name, sleep, grace)
    gateway = overlay.workload("uploadgw").pod
    assert gateway["terminationGracePeriodSeconds"] >= 60, "uploads in flight need time to finish"


def test_rollouts_never_lower_capacity(overlay: Manifests):
    for workload in overlay.workloads("Deployment"):
        strategy = workload.obj["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0, workload.name


def body_size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[unit.lower()]


def test_the_ingress_routes_to_the_gateway_and_admits_100_mib_uploads(overlay: Manifests):
    from uploadgw.settings import Settings

    (ingress,) = overlay.of_kind("Ingress")
    annotations = ingress["metadata"]["annotations"]
    largest = Settings.max_file_size + Settings.max_form_size
    assert body_size(annotations["nginx.ingress.kubernetes.io/proxy-body-size"]) > largest >= 100 * MIB
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"uploadgw"}


def test_services_select_pods_and_name_their_ports(overlay: Manifests):
    for service in overlay.of_kind("Service"):
        selected = [w for w in overlay.workloads("Deployment", "StatefulSet")
                    if labels_match({"matchLabels": service["spec"]["selector"]}, w.pod_labels)]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)} workloads"
        for port in service["spec"]["ports"]:
            assert selected[0].port_number(port["targetPort"]), (service["metadata"]["name"], port)
    for name in ("authsvc", "auditsvc"):
        assert overlay.get("Service", name)["spec"]["clusterIP"] == "None", f"{name}: gRPC needs a headless Service"


def test_grpc_clients_balance_over_every_pod_of_a_headless_service(overlay: Manifests):
    """A client between pods names the service as `dns:///NAME:PORT`: DNS answers every ready pod of
    the headless Service and the channel's round_robin spreads calls over them (grpcbalance).
    The operator CLI in a pod talks to that pod (127.0.0.1)."""
    checked = 0
    for workload in overlay.gatehouse_workloads():
        for container in workload.pod["containers"]:
            for var, target in overlay.environment(container).items():
                if not var.endswith(("_AUTHSVC_TARGET", "_AUDITSVC_TARGET")) or target.startswith("127.0.0.1:"):
                    continue
                found = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", target)
                assert found, f"{workload.name}: {var}={target} is not a dns:/// target"
                service = overlay.get("Service", found[1])
                assert service["spec"]["clusterIP"] == "None", f"{var}: {found[1]} is not headless"
                assert int(found[2]) in {p["port"] for p in service["spec"]["ports"]}, (var, target)
                checked += 1
    assert checked >= 3  # the gateway's two, the audit service's one


def test_the_file_store_is_one_volume_shared_by_every_gateway(rendered):
    claim = rendered["prod"].get("PersistentVolumeClaim", "uploadgw-files")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    gateway = rendered["prod"].workload("uploadgw")
    volumes = {v["name"]: v for v in gateway.pod["volumes"]}
    (mount,) = [m for m in gateway.pod["containers"][0]["volumeMounts"]
                if "persistentVolumeClaim" in volumes[m["name"]]]
    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == "uploadgw-files"
    env = rendered["prod"].environment(gateway.pod["containers"][0])
    assert env["UPLOADGW_STORAGE_DIR"] == mount["mountPath"]
