"""The rendezvous listener's TLS certificate. The Heroku CLI checks it (Node's default: the
chain must lead to a trusted CA and the name must match the attach URL's host), so either the
operator gives one a CA signed (DOCKYARD_RENDEZVOUS_CERT: key and chain in one PEM), or the
platform makes a self-signed one once, for the attach URLs' host, 127.0.0.1 and localhost, that
users add to Node's trust store with NODE_EXTRA_CA_CERTS (GET /rendezvous/certificate gives it)."""
from __future__ import annotations

import datetime
import ipaddress
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.fsutil import atomic_write

from controller.settings import Settings

_CERT_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)


def bundle_path(s: Settings) -> Path:
    """The PEM (key and certificate) the listener serves."""
    return Path(s.rendezvous_cert) if s.rendezvous_cert else s.home / "rendezvous" / "rendezvous.pem"


def certificates(pem: str) -> str:
    """Pure: only the certificate blocks of a PEM bundle (never its key)."""
    return "".join(m.group(0).rstrip("\n") + "\n" for m in _CERT_BLOCK.finditer(pem))


def _names(s: Settings) -> list[x509.GeneralName]:
    hosts = {"127.0.0.1", "localhost", s.rendezvous_address.rsplit(":", 1)[0].strip("[]")}
    names: list[x509.GeneralName] = []
    for host in sorted(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def self_signed(s: Settings) -> str:
    """A new key and a self-signed certificate (a CA of its own, so it can be trusted as is)
    for the names attach URLs use, as one PEM."""
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


def covers(pem: str, host: str) -> bool:
    """Pure: does the PEM's (first) certificate name `host` among its subject alternative names?"""
    blocks = certificates(pem)
    if not blocks:
        return False
    try:
        cert = x509.load_pem_x509_certificate(blocks.encode())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    names = set(sans.get_values_for_type(x509.DNSName)) | {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    return host in names


def ensure_bundle(s: Settings) -> Path:
    """The listener's PEM, made when the operator gave none and again when the attach URLs' host
    changed (only the listener calls this, so no two processes make different ones)."""
    path = bundle_path(s)
    if s.rendezvous_cert:
        if not path.is_file():
            raise FileNotFoundError(f"DOCKYARD_RENDEZVOUS_CERT={path} does not exist: give a PEM file with the "
                                    "private key and the certificate chain, or unset it for a self-signed one.")
        return path
    host = s.rendezvous_address.rsplit(":", 1)[0].strip("[]")
    if not path.is_file() or not covers(path.read_text(), host):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, self_signed(s), mode=0o600, durable=True)
    return path
