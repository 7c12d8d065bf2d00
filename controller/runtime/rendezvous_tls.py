"""The rendezvous listener's TLS certificate. The Heroku CLI checks it (Node's default: the
chain must lead to a trusted CA and the name must match the attach URL's host), so either the
operator gives one a CA signed (DOCKYARD_RENDEZVOUS_CERT: key and chain in one PEM), or the
platform makes a self-signed one once, for the attach URLs' host, 127.0.0.1 and localhost, that
users add to Node's trust store with NODE_EXTRA_CA_CERTS (GET /rendezvous/certificate gives it).

cryptography is imported by the functions that make or read a certificate, not by the module: the
API serves the certificate with `bundle_path` and `certificates` alone, and the library costs
about 9 MB in every process that loads it."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import json
import re
from pathlib import Path

from core.fsutil import atomic_write

from controller.settings import Settings

_CERT_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)


def bundle_path(s: Settings) -> Path:
    """The PEM (key and certificate) the listener serves."""
    return Path(s.rendezvous_cert) if s.rendezvous_cert else s.home / "rendezvous" / "rendezvous.pem"


def certificates(pem: str) -> str:
    """Pure: only the certificate blocks of a PEM bundle (never its key)."""
    return "".join(m.group(0).rstrip("\n") + "\n" for m in _CERT_BLOCK.finditer(pem))


def _names(s: Settings) -> list:
    from cryptography import x509
    hosts = {"127.0.0.1", "localhost", s.rendezvous_address.rsplit(":", 1)[0].strip("[]")}
    names = []
    for host in sorted(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def self_signed(s: Settings) -> str:
    """A new key and a self-signed certificate (a CA of its own, so it can be trusted as is)
    for the names attach URLs use, as one PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Dockyard rendezvous ({s.name})")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(_names(s)), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem.decode() + cert.public_bytes(serialization.Encoding.PEM).decode()


def names(pem: str) -> list[str]:
    """Pure: the DNS names and IP addresses the PEM's (first) certificate names (empty when it
    has none or is not a certificate)."""
    from cryptography import x509
    blocks = certificates(pem)
    if not blocks:
        return []
    try:
        cert = x509.load_pem_x509_certificate(blocks.encode())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return []
    return sorted(set(sans.get_values_for_type(x509.DNSName)) | {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)})


def covers(pem: str, host: str) -> bool:
    """Pure: does the PEM's (first) certificate name `host` among its subject alternative names?"""
    return host in names(pem)


def covers_kept(path: Path, host: str) -> bool:
    """covers() for the bundle at `path`, with its names kept beside it (by the bundle's digest):
    the listener's start then reads two files instead of loading cryptography (about 9 MB held
    by the platform process for as long as it runs)."""
    pem = path.read_text()
    digest = hashlib.sha256(pem.encode()).hexdigest()
    kept_path = path.with_name(path.name + ".names.json")
    try:
        kept = json.loads(kept_path.read_text())
        if isinstance(kept, dict) and kept.get("digest") == digest and isinstance(kept.get("names"), list):
            return host in kept["names"]
    except (OSError, ValueError):
        pass
    found = names(pem)
    with contextlib.suppress(OSError):      # unkept, the next start parses it again
        atomic_write(kept_path, json.dumps({"digest": digest, "names": found}), mode=0o600)
    return host in found


def ensure_bundle(s: Settings) -> Path:
    """The listener's PEM, made when the operator gave none and again when the attach URLs' host
    changed. The listener calls this at its start, and `make up` before it starts or restarts
    the platform's processes (so a new platform's listener finds it made), never both at once."""
    path = bundle_path(s)
    if s.rendezvous_cert:
        if not path.is_file():
            raise FileNotFoundError(f"DOCKYARD_RENDEZVOUS_CERT={path} does not exist: give a PEM file with the "
                                    "private key and the certificate chain, or unset it for a self-signed one.")
        return path
    host = s.rendezvous_address.rsplit(":", 1)[0].strip("[]")
    if not path.is_file() or not covers_kept(path, host):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, self_signed(s), mode=0o600, durable=True)
        covers_kept(path, host)      # its names, for the next start
    return path
