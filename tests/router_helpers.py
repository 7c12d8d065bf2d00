"""Helpers shared by the router tests: self-signed certificates (cryptography)."""
from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(names: list[str], days: int = 30, start_days_ago: int = 1) -> tuple[str, str]:
    """(cert PEM, key PEM) for ``names`` (SAN DNS entries; the first is the CN)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=start_days_ago))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def write_pair(directory: Path, stem: str, names: list[str], **kw) -> tuple[Path, Path]:
    cert, key = self_signed(names, **kw)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.crt").write_text(cert)
    (directory / f"{stem}.key").write_text(key)
    return directory / f"{stem}.crt", directory / f"{stem}.key"
