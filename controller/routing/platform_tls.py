"""HTTPS for every app's default hostname: the platform's certificate for `*.<domain>`.

It is the operator's (DOCKYARD_TLS_CERT / DOCKYARD_TLS_KEY), or, by default, one issued by a
local certificate authority that `make up` creates once under DOCKYARD_HOME/tls (its key 0600).
The CA is name-constrained to the platform domain: a user who trusts it (`dockyard certs:ca`)
trusts it for nothing else. Issuing is pure (`new_ca`, `new_leaf`); `ensure_local_ca` and
`serving_bundle` are the thin shells that read and write the files.
"""
from __future__ import annotations

import datetime
from pathlib import Path

from core.errors import BadRequest, NotFound
from core.fsutil import atomic_write

from controller.routing.certs import CertBundle, host_covered, inspect_bundle, inspect_kept

CA_DAYS = 3650
LEAF_DAYS = 825          # the longest validity clients accept from a CA users added themselves
RENEW_DAYS = 30          # `make up` issues a new leaf when the current one has fewer days left


def platform_names(domain: str, hosts: tuple[str, ...] = ()) -> list[str]:
    return [f"*.{domain}", domain, *sorted(set(hosts))]


def wildcard_works(domain: str) -> bool:
    """Clients (curl, OpenSSL, browsers) refuse a wildcard over a single label (`*.localhost`):
    for such a domain the certificate names every app's hostname instead."""
    return "." in domain


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _pem(cert, key) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def new_ca(domain: str, label: str, now: datetime.datetime) -> tuple[str, str]:
    """A CA certificate and key (PEM) that may issue for `domain` and its subdomains only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Dockyard local CA ({label})"[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dockyard")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.NameConstraints(permitted_subtrees=[x509.DNSName(domain)], excluded_subtrees=None),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _pem(cert, key)


def new_leaf(ca_cert_pem: str, ca_key_pem: str, domain: str, now: datetime.datetime,
             hosts: tuple[str, ...] = ()) -> tuple[str, str]:
    """A server certificate for `*.<domain>`, `<domain>` and `hosts`, signed by the CA; the chain
    is the leaf then the CA (PEM), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    key = _key()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{domain}"[:64])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(min(now + datetime.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in platform_names(domain, hosts)]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    leaf_pem, key_pem = _pem(cert, key)
    return leaf_pem + ca_cert_pem, key_pem


def ca_covers(ca_cert_pem: str, domain: str, now: datetime.datetime) -> bool:
    """The CA may issue for `domain` (its name constraint) and is valid past a leaf's lifetime."""
    from cryptography import x509
    ca = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    try:
        permitted = ca.extensions.get_extension_for_class(x509.NameConstraints).value.permitted_subtrees or []
    except x509.ExtensionNotFound:
        return False
    names = [p.value for p in permitted if isinstance(p, x509.DNSName)]
    return domain in names and ca.not_valid_after_utc > now + datetime.timedelta(days=RENEW_DAYS)


def leaf_is_current(chain_pem: str, key_pem: str, domain: str, now: datetime.datetime,
                    hosts: tuple[str, ...] = ()) -> bool:
    try:
        info = inspect_bundle(chain_pem, key_pem, [], now=now)
    except BadRequest:
        return False
    fresh = datetime.datetime.fromisoformat(info.not_after) > now + datetime.timedelta(days=RENEW_DAYS)
    return fresh and sorted(info.names) == sorted(platform_names(domain, hosts))


# ---------------------------------------------------------------- files
def _paths(tls_dir: Path) -> dict[str, Path]:
    return {k: tls_dir / n for k, n in (("ca", "ca.crt"), ("ca_key", "ca.key"), ("cert", "platform.crt"),
                                         ("key", "platform.key"), ("hosts_cert", "hosts.crt"),
                                         ("hosts_key", "hosts.key"), ("inspected", "inspected.json"))}


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def ensure_local_ca(tls_dir: Path, domain: str, label: str, now: datetime.datetime | None = None) -> list[str]:
    """Create the CA once, and a leaf for the domain when there is none, it is for another
    domain or it expires within RENEW_DAYS. Returns what was done, a line each."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    p = _paths(tls_dir)
    tls_dir.mkdir(parents=True, exist_ok=True)
    tls_dir.chmod(0o700)
    said = []
    ca, ca_key = _read(p["ca"]), _read(p["ca_key"])
    if ca is None or ca_key is None or not ca_covers(ca, domain, now):
        ca, ca_key = new_ca(domain, label, now)
        atomic_write(p["ca_key"], ca_key, 0o600, durable=True)
        atomic_write(p["ca"], ca, 0o644, durable=True)
        said.append(f"created the platform's local certificate authority {p['ca']} (for {domain} only); "
                    "trust it with `dockyard certs:ca > dockyard-ca.pem`")
    cert, key = _read(p["cert"]), _read(p["key"])
    if said or cert is None or key is None or not leaf_is_current(cert, key, domain, now):
        cert, key = new_leaf(ca, ca_key, domain, now)
        atomic_write(p["key"], key, 0o600, durable=True)
        atomic_write(p["cert"], cert, 0o644, durable=True)
        said.append(f"issued the certificate for *.{domain} ({p['cert']}, {LEAF_DAYS} days)")
    inspect_kept(p["inspected"], cert, key, now)    # the router's renders then find it inspected
    return said


def operator_bundle(cert_path: str, key_path: str, domain: str, kept: Path | None = None) -> CertBundle:
    """The operator's certificate, checked: readable PEM, key matches, not expired, covers the
    apps' hostnames (`*.<domain>`). Raises BadRequest naming the setting to fix. With `kept`,
    an inspection of the same files is read from there (inspect_kept)."""
    try:
        cert, key = Path(cert_path).read_text(), Path(key_path).read_text()
    except OSError as e:
        raise BadRequest(f"DOCKYARD_TLS_CERT / DOCKYARD_TLS_KEY: cannot read {e.filename}: {e.strerror}. "
                         "Point them at the PEM chain and key of a certificate for *." + domain) from None
    try:
        info = inspect_kept(kept, cert, key) if kept else inspect_bundle(cert, key, [])
    except BadRequest as e:
        raise BadRequest(f"DOCKYARD_TLS_CERT ({cert_path}): {e.message}") from None
    if not host_covered(info.names, f"app.{domain}"):
        raise BadRequest(f"DOCKYARD_TLS_CERT ({cert_path}) covers {', '.join(info.names)}, not the apps' "
                         f"hostnames: use a certificate for *.{domain} (DOCKYARD_DOMAIN).")
    return CertBundle(cert_pem=cert, key_pem=key, info=info, source="operator")


def serving_bundle(tls_dir: Path, cert_path: str, key_path: str, domain: str,
                   hosts: tuple[str, ...] = ()) -> CertBundle | None:
    """The certificate the router serves for the platform's hostnames: the operator's when set,
    else the local CA's leaf (None before `make up` made one). For a single-label domain the
    local CA issues one naming `hosts` too (a new one when they change: a new app). Raises
    BadRequest if unusable."""
    p = _paths(tls_dir)
    if cert_path or key_path:
        return operator_bundle(cert_path, key_path, domain, p["inspected"])
    cert, key = _read(p["cert"]), _read(p["key"])
    if cert is None or key is None:
        return None
    if not wildcard_works(domain):
        cert, key = _hosts_leaf(p, domain, hosts)
    return CertBundle(cert_pem=cert, key_pem=key, info=inspect_kept(p["inspected"], cert, key), source="local-ca")


def _hosts_leaf(p: dict[str, Path], domain: str, hosts: tuple[str, ...]) -> tuple[str, str]:
    now = datetime.datetime.now(datetime.timezone.utc)
    cert, key = _read(p["hosts_cert"]), _read(p["hosts_key"])
    if cert is None or key is None or not leaf_is_current(cert, key, domain, now, hosts):
        ca, ca_key = _read(p["ca"]), _read(p["ca_key"])
        if ca is None or ca_key is None:
            raise NotFound(f"The local certificate authority in {p['ca'].parent} is missing: run `make up`.")
        cert, key = new_leaf(ca, ca_key, domain, now, hosts)
        atomic_write(p["hosts_key"], key, 0o600, durable=True)
        atomic_write(p["hosts_cert"], cert, 0o644, durable=True)
    return cert, key


def available(tls_dir: Path, cert_path: str) -> bool:
    """The platform has a certificate for the apps' default hostnames (the operator's, or the
    local CA's once `make up` issued it)."""
    return bool(cert_path) or _paths(tls_dir)["cert"].is_file()


def ca_pem(tls_dir: Path, operator_cert: str) -> str:
    """The local CA's certificate, for users to trust."""
    if operator_cert:
        raise NotFound("This platform serves the operator's own certificate (DOCKYARD_TLS_CERT), not one of a "
                       "local CA: clients that trust its issuer need nothing more; ask the operator otherwise.")
    pem = _read(_paths(tls_dir)["ca"])
    if pem is None:
        raise NotFound("The platform has no local certificate authority yet: the operator creates it with "
                       "`make up`.")
    return pem


def trust(svc) -> dict:
    """What `dockyard certs:ca` shows a user: the local CA's certificate, its domain and the TLS port."""
    s = svc.settings
    return {"certificate": ca_pem(s.tls_dir, s.tls_cert), "domain": s.domain, "tls_port": s.router_tls_port}


def default_hosts(hostnames: tuple[str, ...], platform: tuple[str, ...], own: tuple[str, ...] | None) -> tuple[str, ...]:
    """Pure: the app's hostnames the platform certificate serves: those it covers that the
    app's own certificate (its names `own`, None without one) does not."""
    return tuple(h for h in hostnames if host_covered(platform, h) and not (own and host_covered(own, h)))
