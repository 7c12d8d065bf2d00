"""TLS certificates for apps: checking PEM bundles (pure), where certificates come from, and
the files nginx reads them from.

``inspect_bundle`` is pure: it parses a certificate chain and private key and says, with a
message that tells how to fix it, why they cannot be used (not PEM, encrypted key, key does
not match, expired, covers none of the app's hosts).

``CertSource`` is the seam for where an app's certificate comes from. Today there is one
source, ``StoredCerts`` (what the user uploaded with ``certs:add``). An ACME client would be
another ``CertSource`` (it would obtain certificates for the app's domains, store them the
same way, and answer ``/.well-known/acme-challenge/``); routing asks the sources in order.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from router.table import Tls

from core.errors import BadRequest
from core.fsutil import atomic_write

MAX_PEM = 64 * 1024


@dataclass(frozen=True)
class CertInfo:
    names: tuple[str, ...]       # DNS names the certificate covers (SAN, else CN), lowercase
    subject: str
    issuer: str
    not_before: str              # ISO 8601, UTC
    not_after: str
    fingerprint: str             # SHA-256 of the leaf certificate (DER), hex
    self_signed: bool


@dataclass(frozen=True)
class CertBundle:
    cert_pem: str                # leaf first, then intermediates
    key_pem: str
    info: CertInfo
    source: str = "manual"       # "manual" (certs:add); an ACME source would say "acme"


def host_covered(names: tuple[str, ...], host: str) -> bool:
    """RFC 6125 matching: exact, or a leftmost wildcard standing for exactly one label.
    A wildcard host (``*.example.com``) is covered only by the same wildcard."""
    host = host.lower()
    for name in names:
        if name == host:
            return True
        if name.startswith("*.") and not host.startswith("*.") and "." in host:
            if host.split(".", 1)[1] == name[2:]:
                return True
    return False


def uncovered_hosts(info: CertInfo, hosts: list[str]) -> list[str]:
    return [h for h in hosts if not host_covered(info.names, h)]


KEPT_ENTRIES = 4     # bundles whose inspection a cache file keeps (the platform's leaf and its hosts' leaf)


def inspect_kept(cache: Path, cert_pem: str, key_pem: str, now: datetime | None = None) -> CertInfo:
    """inspect_bundle's answer for this exact chain and key, kept in `cache` (JSON, by the
    digest of both) so that a router render of an unchanged certificate does not parse it: the
    parser (cryptography) then stays out of the API and the platform process, about 9 MB each.
    Expiry is checked against the kept date at every call. A cache that cannot be read is
    rebuilt, one that cannot be written only costs the next call a parse."""
    now = now or datetime.now(timezone.utc)
    digest = hashlib.sha256(f"{cert_pem}\0{key_pem}".encode()).hexdigest()
    try:
        kept = json.loads(cache.read_text())
    except (OSError, ValueError):
        kept = {}
    kept = kept if isinstance(kept, dict) else {}
    try:
        fields = kept[digest]
        info = CertInfo(**{**fields, "names": tuple(fields["names"])})
        if datetime.fromisoformat(info.not_after) > now:
            return info
    except (KeyError, TypeError, ValueError):
        pass
    info = inspect_bundle(cert_pem, key_pem, [], now=now)
    kept = dict(list(kept.items())[-(KEPT_ENTRIES - 1):])
    kept[digest] = asdict(info)
    with contextlib.suppress(OSError):
        atomic_write(cache, json.dumps(kept), 0o600)
    return info


def inspect_bundle(cert_pem: str, key_pem: str, hosts: list[str], now: datetime | None = None) -> CertInfo:
    """Check a PEM chain + key for an app answering on ``hosts``. Raises BadRequest."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import ExtensionOID, NameOID

    now = now or datetime.now(timezone.utc)
    for what, text in (("certificate", cert_pem), ("private key", key_pem)):
        if not isinstance(text, str) or not text.strip():
            raise BadRequest(f"The {what} is empty: pass the PEM file (-----BEGIN ...-----).")
        if len(text) > MAX_PEM:
            raise BadRequest(f"The {what} is larger than {MAX_PEM // 1024} KB: pass only the PEM chain and key.")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        raise BadRequest("The certificate is not a PEM certificate (expected -----BEGIN CERTIFICATE-----). "
                         "Convert DER with: openssl x509 -inform der -in CERT -out cert.pem") from None
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        raise BadRequest("The private key is encrypted: remove its passphrase first with "
                         "`openssl pkey -in KEY -out key.pem`.") from None
    except ValueError:
        raise BadRequest("The private key is not a PEM private key (expected -----BEGIN PRIVATE KEY----- or "
                         "-----BEGIN RSA/EC PRIVATE KEY-----). Did you swap CERT and KEY?") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise BadRequest("The private key type is not supported: use an RSA or ECDSA key.")
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != leaf.public_key().public_bytes(enc, pub):
        raise BadRequest("The private key does not match the certificate (the first certificate in the file "
                         "must be the one issued for this key). Pass the key the certificate was issued for.")
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if not_after <= now:
        raise BadRequest(f"The certificate expired on {not_after:%Y-%m-%d %H:%M} UTC: renew it and add the new one.")
    try:
        san = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = [a.value.lower() for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                 if isinstance(a.value, str)]
    names_t = tuple(sorted(set(names)))
    if not names_t:
        raise BadRequest("The certificate names no host (no subjectAltName DNS entry or CN): reissue it for "
                         "the app's domains.")
    if hosts and not any(host_covered(names_t, h) for h in hosts):
        raise BadRequest(f"The certificate covers {', '.join(names_t)}, but none of the app's hosts "
                         f"({', '.join(hosts)}). Add the domain first with `dockyard domains:add HOST`, "
                         "or use a certificate issued for one of these hosts.")
    return CertInfo(
        names=names_t,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_before=not_before.isoformat(),
        not_after=not_after.isoformat(),
        fingerprint=hashlib.sha256(leaf.public_bytes(enc)).hexdigest(),
        self_signed=leaf.issuer == leaf.subject,
    )


class CertSource(Protocol):
    """Where an app's certificate comes from (the seam for an ACME client)."""

    name: str

    def bundle_for(self, app_name: str, hosts: tuple[str, ...]) -> CertBundle | None:
        """The certificate to serve for the app, or None if this source has none."""


class StoredCerts:
    """Certificates users uploaded with ``certs:add`` (kept in the store)."""

    name = "manual"

    def __init__(self, store) -> None:
        self.store = store
        self._records: dict[str, dict] | None = None    # read once per route table, not once per app

    def bundle_for(self, app_name: str, hosts: tuple[str, ...]) -> CertBundle | None:
        if self._records is None:
            self._records = self.store.cert_records()
        record = self._records.get(app_name)
        return _bundle(record) if record is not None else None


def store_bundle(store, app, bundle: CertBundle) -> None:
    store.put_cert(app, bundle.cert_pem, bundle.key_pem, asdict(bundle.info), bundle.source)


def stored_bundle(store, app_name: str) -> CertBundle | None:
    record = store.cert_record(app_name)
    return _bundle(record) if record is not None else None


def _bundle(record: dict) -> CertBundle:
    info = record["info"]
    return CertBundle(cert_pem=record["cert_pem"], key_pem=record["key_pem"],
                      info=CertInfo(**{**info, "names": tuple(info["names"])}), source=record["source"])


def cert_files(certs_dir: Path, app_id: str, bundle: CertBundle) -> Tls:
    """Write the bundle where nginx reads it: mode 0600, atomically, named by fingerprint (a new
    certificate is a new path, so the rendered config changes and nginx reloads it)."""
    certs_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(certs_dir, 0o700)
    stem = f"{app_id}-{bundle.info.fingerprint[:16]}"
    paths = []
    for suffix, text in ((".crt", bundle.cert_pem), (".key", bundle.key_pem)):
        path = certs_dir / (stem + suffix)
        if not path.exists() or path.read_text() != text:
            atomic_write(path, text, durable=True)
        paths.append(str(path))
    return Tls(cert_path=paths[0], key_path=paths[1])


def prune_cert_files(certs_dir: Path, keep: set[str], live_config: str = "", prefix: str = "") -> None:
    """Remove certificate files (whose names start with `prefix`) neither in `keep` nor named
    by the live nginx config."""
    if not certs_dir.is_dir():
        return
    for path in certs_dir.glob(f"{prefix}*"):
        if path.suffix in (".crt", ".key") and str(path) not in keep and f'"{path}"' not in live_config:
            path.unlink(missing_ok=True)
