"""Questions about a rendered overlay: its workloads, their pods and env, what a policy lets in."""

from __future__ import annotations

import base64
import dataclasses

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


def labels_match(selector: dict, labels: dict) -> bool:
    """A Kubernetes label selector (matchLabels + matchExpressions) against a set of labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


@dataclasses.dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    obj: dict

    @property
    def pod(self) -> dict:
        return self.obj["spec"]["template"]["spec"]

    @property
    def pod_labels(self) -> dict:
        return self.obj["spec"]["template"]["metadata"].get("labels") or {}

    @property
    def containers(self) -> list[dict]:
        return list(self.pod.get("initContainers") or []) + list(self.pod["containers"])

    def port_number(self, port) -> int | None:
        """A container port by number or by name."""
        for container in self.containers:
            for p in container.get("ports") or []:
                if port in (p["containerPort"], p.get("name")):
                    return p["containerPort"]
        return None


class Manifests:
    """The objects one overlay renders to."""

    def __init__(self, docs: list[dict]):
        self.docs = docs

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        matches = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
        return matches[0]

    def workloads(self, *kinds: str) -> list[Workload]:
        return [Workload(d["kind"], d["metadata"]["name"], d) for d in self.docs
                if d["kind"] in (kinds or WORKLOAD_KINDS)]

    def workload(self, name: str) -> Workload:
        matches = [w for w in self.workloads() if w.name == name]
        assert len(matches) == 1, f"expected one workload {name}, found {len(matches)}"
        return matches[0]

    def gatehouse_workloads(self) -> list[Workload]:
        """The workloads that run the Gatehouse image (not the dev PostgreSQL and Redis)."""
        return [w for w in self.workloads() if all(is_gatehouse_image(c["image"]) for c in w.pod["containers"])]

    def data_of(self, kind: str, name: str) -> dict[str, str]:
        obj = self.get(kind, name)
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            data.update(obj.get("stringData") or {})
            return data
        return dict(obj.get("data") or {})

    def environment(self, container: dict) -> dict[str, str]:
        """The environment a container starts with; a reference to a missing key fails the test."""
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                env.update(self.data_of("ConfigMap", source["configMapRef"]["name"]))
            if "secretRef" in source:
                env.update(self.data_of("Secret", source["secretRef"]["name"]))
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            ref = var["valueFrom"]
            if "secretKeyRef" in ref:
                kind, key_ref = "Secret", ref["secretKeyRef"]
            else:
                kind, key_ref = "ConfigMap", ref["configMapKeyRef"]
            data = self.data_of(kind, key_ref["name"])
            assert key_ref["key"] in data or key_ref.get("optional"), (
                f"{container['name']}: {var['name']} refers to {kind} {key_ref['name']} key "
                f"{key_ref['key']!r}, which it does not have")
            if key_ref["key"] in data:
                env[var["name"]] = data[key_ref["key"]]
        return env

    def ingress_sources(self, workload: Workload, port: int) -> list[dict]:
        """The `from` peers the NetworkPolicies allow to reach `workload` on `port`.

        [] means nothing may connect; a peer {} (or a rule without `from`) means anyone.
        """
        selecting = [p for p in self.of_kind("NetworkPolicy")
                     if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
                     and labels_match(p["spec"]["podSelector"], workload.pod_labels)]
        assert selecting, f"{workload.name}: no NetworkPolicy isolates it"
        peers: list[dict] = []
        for policy in selecting:
            for rule in policy["spec"].get("ingress") or []:
                ports = rule.get("ports")
                if ports and not any(workload.port_number(p.get("port")) == port for p in ports):
                    continue
                peers.extend(rule.get("from") or [{}])
        return peers


def image_repository(image: str) -> str:
    """`registry:5000/team/gatehouse:1.0@sha256:…` -> `registry:5000/team/gatehouse`."""
    image = image.split("@", 1)[0]
    head, sep, tag = image.rpartition(":")
    return head if sep and "/" not in tag else image


def is_gatehouse_image(image: str) -> bool:
    return image_repository(image).rsplit("/", 1)[-1] == "gatehouse"
