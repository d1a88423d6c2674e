"""NetworkPolicies: nothing reaches a pod unless allowed; only the gateway reaches the auth and
audit services; only the services reach PostgreSQL and Redis."""

from __future__ import annotations

from tests.deploy.manifests import Manifests, labels_match

INGRESS_CONTROLLER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def pod_peer(name: str) -> dict:
    return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}


def declared_ports(workload) -> set[int]:
    return {p["containerPort"] for c in workload.pod["containers"] for p in c.get("ports") or []}


def peers_reaching(overlay: Manifests, peer: dict) -> list[str]:
    """Names of the workloads whose pods a same-namespace podSelector peer matches."""
    assert set(peer) == {"podSelector"}, f"not a pod peer: {peer}"
    return [w.name for w in overlay.workloads() if labels_match(peer["podSelector"], w.pod_labels)]


def test_ingress_is_denied_by_default(overlay: Manifests):
    denies = [p for p in overlay.of_kind("NetworkPolicy")
              if p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"]
              and not p["spec"].get("ingress")]
    assert len(denies) == 1
    for workload in overlay.workloads():
        for port in declared_ports(workload):
            assert {} not in overlay.ingress_sources(workload, port), f"{workload.name}:{port} is open to all"


def test_only_the_gateway_reaches_the_auth_and_audit_services(overlay: Manifests):
    """The one exception: the audit API asks authsvc whether a session is an admin's."""
    sources = overlay.ingress_sources(overlay.workload("auditsvc"), 50052)
    assert sources == [pod_peer("uploadgw")], f"auditsvc is reachable from {sources}"
    assert peers_reaching(overlay, sources[0]) == ["uploadgw"]
    sources = overlay.ingress_sources(overlay.workload("authsvc"), 50051)
    assert sources == [pod_peer("uploadgw"), pod_peer("auditsvc")], f"authsvc is reachable from {sources}"
    assert [w for peer in sources for w in peers_reaching(overlay, peer)] == ["uploadgw", "auditsvc"]


def test_the_pods_allowed_into_authsvc_are_the_ones_configured_to_call_it(overlay: Manifests):
    allowed = {w for peer in overlay.ingress_sources(overlay.workload("authsvc"), 50051)
               for w in peers_reaching(overlay, peer)}
    callers = set()
    for workload in overlay.gatehouse_workloads():
        for container in workload.containers:
            if container["command"][:2] == ["python", "-m"]:
                variable = f"{container['command'][2].upper()}_AUTHSVC_TARGET"
                target = overlay.environment(container).get(variable, "").removeprefix("dns:///")
                if target.startswith("authsvc:"):
                    callers.add(workload.name)
    assert allowed == callers


def test_only_the_ingress_controller_reaches_the_gateway(overlay: Manifests):
    assert overlay.ingress_sources(overlay.workload("uploadgw"), 8000) == [INGRESS_CONTROLLER]


def test_background_workers_accept_no_connections_but_metrics_scrapes(overlay: Manifests):
    for workload in overlay.gatehouse_workloads():
        for port in declared_ports(workload):
            sources = overlay.ingress_sources(workload, port)
            if port == 9100:
                assert sources == [MONITORING], (workload.name, sources)
            elif workload.name not in ("authsvc", "auditsvc", "uploadgw"):
                assert sources == [], f"{workload.name}:{port} is reachable from {sources}"


def test_only_the_services_reach_postgresql_and_redis(rendered):
    """In dev: exactly the pods that hold a database (or Redis) URL may connect to it."""
    dev = rendered["dev"]
    for store, port, needs in (("postgres", 5432, "_DATABASE_URL"), ("redis", 6379, "GATEHOUSE_REDIS_URL")):
        sources = dev.ingress_sources(dev.workload(store), port)
        allowed = {name for peer in sources for name in peers_reaching(dev, peer)}
        users = {w.name for w in dev.gatehouse_workloads()
                 if any(k.endswith(needs) for c in w.containers for k in dev.environment(c))}
        assert allowed == users, f"{store}: allowed {sorted(allowed)}, used by {sorted(users)}"


def test_every_policy_selects_pods_and_names_their_ports(overlay: Manifests):
    for policy in overlay.of_kind("NetworkPolicy"):
        name = policy["metadata"]["name"]
        selected = [w for w in overlay.workloads() if labels_match(policy["spec"]["podSelector"], w.pod_labels)]
        assert selected, f"NetworkPolicy {name} selects no pods"
        for rule in policy["spec"].get("ingress") or []:
            for port in rule.get("ports") or []:
                assert all(w.port_number(port["port"]) for w in selected), (name, port["port"])
            for peer in rule.get("from") or []:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert peers_reaching(overlay, peer), f"NetworkPolicy {name}: {peer} matches no pods"
