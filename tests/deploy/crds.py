"""cert-manager's objects (Certificate, Issuer) against the fields of its v1 API, checked by hand.

kubernetes-validate knows the Kubernetes API only; cert-manager's CRDs are not in its schemas and
their text is not vendored here. So this is no schema validation: it is a strict check of the
fields our manifests use, with the field names, required fields and enumerations of cert-manager
v1's CRDs (cert-manager.io_certificates.yaml and cert-manager.io_issuers.yaml). A field that is
not listed here is reported, like a misspelt one; add it here when a manifest starts using it.
"""

from __future__ import annotations

import re

GROUP = "cert-manager.io"
CERTIFICATE_FIELDS = {
    "additionalOutputFormats", "commonName", "dnsNames", "duration", "emailAddresses", "encodeUsagesInRequest",
    "ipAddresses", "isCA", "issuerRef", "keystores", "literalSubject", "nameConstraints", "otherNames",
    "privateKey", "renewBefore", "renewBeforePercentage", "revisionHistoryLimit", "secretName", "secretTemplate",
    "signatureAlgorithm", "subject", "uris", "usages",
}
CERTIFICATE_REQUIRED = {"issuerRef", "secretName"}
PRIVATE_KEY_FIELDS = {"algorithm", "encoding", "rotationPolicy", "size"}
ALGORITHMS = {"RSA", "ECDSA", "Ed25519"}
ROTATION_POLICIES = {"Never", "Always"}
USAGES = {
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
    "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
    "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
}
ISSUER_REF_FIELDS = {"group", "kind", "name"}
ISSUER_KINDS = {"acme", "ca", "selfSigned", "vault", "venafi"}
CA_FIELDS = {"crlDistributionPoints", "issuingCertificateURLs", "ocspServers", "secretName"}
SELF_SIGNED_FIELDS = {"crlDistributionPoints"}
METADATA_FIELDS = {"name", "namespace", "labels", "annotations"}
DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")


def _unknown(where: str, obj: dict, known: set[str]) -> list[str]:
    return [f"{where}.{key}: unknown field" for key in sorted(set(obj) - known)]


def cert_manager_errors(doc: dict) -> list[str]:
    """What is wrong with one cert-manager.io/v1 object, by the rules above."""
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    errors = _unknown(name, doc, {"apiVersion", "kind", "metadata", "spec"})
    errors += _unknown(f"{name}: metadata", doc.get("metadata") or {}, METADATA_FIELDS)
    if doc.get("apiVersion") != f"{GROUP}/v1":
        errors.append(f"{name}: apiVersion {doc.get('apiVersion')} is not {GROUP}/v1")
    spec = doc.get("spec") or {}
    if doc["kind"] == "Certificate":
        errors += _unknown(f"{name}: spec", spec, CERTIFICATE_FIELDS)
        errors += [f"{name}: spec.{f}: required" for f in sorted(CERTIFICATE_REQUIRED - set(spec))]
        key = spec.get("privateKey") or {}
        errors += _unknown(f"{name}: spec.privateKey", key, PRIVATE_KEY_FIELDS)
        if key.get("algorithm", "RSA") not in ALGORITHMS:
            errors.append(f"{name}: spec.privateKey.algorithm {key['algorithm']!r}")
        if key.get("rotationPolicy", "Always") not in ROTATION_POLICIES:
            errors.append(f"{name}: spec.privateKey.rotationPolicy {key['rotationPolicy']!r}")
        errors += [f"{name}: spec.usages: {u!r} is not a usage" for u in spec.get("usages") or [] if u not in USAGES]
        ref = spec.get("issuerRef") or {}
        errors += _unknown(f"{name}: spec.issuerRef", ref, ISSUER_REF_FIELDS)
        if "name" not in ref:
            errors.append(f"{name}: spec.issuerRef.name: required")
        for field in ("duration", "renewBefore"):
            if field in spec and not DURATION.match(str(spec[field])):
                errors.append(f"{name}: spec.{field} {spec[field]!r} is no Go duration")
        for field in ("dnsNames", "ipAddresses", "usages"):
            if not isinstance(spec.get(field, []), list):
                errors.append(f"{name}: spec.{field}: must be a list")
    elif doc["kind"] == "Issuer":
        errors += _unknown(f"{name}: spec", spec, ISSUER_KINDS)
        if len(spec) != 1:
            errors.append(f"{name}: spec must name exactly one kind of issuer")
        errors += _unknown(f"{name}: spec.ca", spec.get("ca") or {}, CA_FIELDS)
        if "ca" in spec and "secretName" not in spec["ca"]:
            errors.append(f"{name}: spec.ca.secretName: required")
        errors += _unknown(f"{name}: spec.selfSigned", spec.get("selfSigned") or {}, SELF_SIGNED_FIELDS)
    else:
        errors.append(f"{name}: no rules for {doc['kind']} here (tests/deploy/crds.py)")
    return errors
