"""TLS files from a throwaway CA (trustme) for the tests: one party's certificate, key and CA."""

from __future__ import annotations

import dataclasses
import pathlib

import trustme

from gatehouse.infra.tls import TlsSettings


@dataclasses.dataclass
class Identity:
    """One party's files: its certificate chain and key, and the CA it trusts."""

    dir: pathlib.Path

    def write(self, ca: trustme.CA, *names: str) -> Identity:
        self.dir.mkdir(parents=True, exist_ok=True)
        issued = ca.issue_cert(*names)
        issued.private_key_pem.write_to_path(str(self.dir / "tls.key"))
        issued.cert_chain_pems[0].write_to_path(str(self.dir / "tls.crt"))
        ca.cert_pem.write_to_path(str(self.dir / "ca.crt"))
        return self

    def tls(self, prefix: str, **options: object) -> TlsSettings:
        return TlsSettings(prefix=prefix, cert_file=str(self.dir / "tls.crt"), key_file=str(self.dir / "tls.key"),
                           ca_file=str(self.dir / "ca.crt"), **options)  # type: ignore[arg-type]

    def env(self, prefix: str) -> dict[str, str]:
        """The `<prefix>_TLS_*` variables that point at these files."""
        return {f"{prefix}_TLS_CERT": str(self.dir / "tls.crt"), f"{prefix}_TLS_KEY": str(self.dir / "tls.key"),
                f"{prefix}_TLS_CA": str(self.dir / "ca.crt")}
