"""HTTPS on the platform domain, out of the box: `make up` created a local CA, the router serves
every app's `<app>.<domain>` on the TLS port with the CA's certificate, `dockyard certs:ca`
prints the CA to trust, and an app written for Heroku that redirects to https when DYNO is set
(tests/samples/heroku-https) works unchanged through https://APP.<domain>:<tls port>/. A custom
domain keeps its own certificate beside it. One platform, one app, two pushes (timed)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from .conftest import make_app_repo, run, start_platform, stop_platform, unique_app
from .router_helpers import write_pair

pytestmark = pytest.mark.e2e
SAMPLE = Path(__file__).resolve().parent / "samples" / "heroku-https"


@pytest.fixture(scope="module")
def pf(tmp_path_factory):
    p = start_platform(tmp_path_factory.mktemp("https"))
    try:
        yield p
    finally:
        stop_platform(p)


def fetch(url: str, host: str, port: int, *extra) -> tuple[int, str, str, str]:
    """curl: (status, body, redirect URL, stderr), the host resolved to loopback."""
    proc = run(["curl", "-sS", "--max-time", "10", "--resolve", f"{host}:{port}:127.0.0.1", "-o", "-",
                "-w", "\n%{http_code} %{redirect_url}", *extra, url], check=False)
    body, _, tail = proc.stdout.rpartition("\n")
    code, _, location = tail.partition(" ")
    return int(code or 0), body, location.strip(), proc.stderr


def timed_push(pf, repo: Path, label: str) -> str:
    started = time.monotonic()
    proc = pf.git("push", "dockyard", "main", cwd=repo, timeout=600)
    print(f"\npush time {label}: {time.monotonic() - started:.1f} s")
    return proc.stderr


def test_every_app_answers_https_with_the_platform_ca_and_a_heroku_app_redirects_to_it(pf, tmp_path):
    assert "created the platform's local certificate authority" in pf.up_output[0], pf.up_output[0]
    assert (pf.home / "tls/ca.key").stat().st_mode & 0o777 == 0o600
    ca = tmp_path / "dockyard-ca.pem"
    ca.write_text(pf.cli("certs:ca").stdout)
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    # The CA is for signed-in users (any of them), not for anyone who can reach the API.
    anonymous = requests.get(f"http://127.0.0.1:{pf.api_port}/certs/ca", timeout=10)
    assert anonymous.status_code == 401

    name = unique_app("https")
    repo = make_app_repo(tmp_path / name, {p.name: p.read_bytes() for p in SAMPLE.iterdir()}, pf)
    pf.cli("apps:create", name, cwd=repo)
    timed_push(pf, repo, "Heroku https-redirecting app (Procfile + stdlib) cold")
    host, port, tls = f"{name}.{pf.domain}", pf.router_port, pf.router_tls_port
    # Plain HTTP: the app redirects (DYNO is set), and its https://HOST:<http port>/ is pointed at the TLS port.
    code, _, location, _ = fetch(f"http://{host}:{port}/hello?x=1", host, port)
    assert (code, location) == (301, f"https://{host}:{tls}/hello?x=1")
    # HTTPS, verified against the CA `certs:ca` printed (no -k): the app sees X-Forwarded-Proto https.
    code, body, _, err = fetch(f"https://{host}:{tls}/", host, tls, "--cacert", str(ca))
    assert (code, body) == (200, "getting started, over https, on dyno web.1\n"), err
    # Following the redirect from the plain URL ends on the page.
    code, body, _, err = fetch(f"http://{host}:{port}/", host, port, "-L", "--cacert", str(ca),
                               "--resolve", f"{host}:{tls}:127.0.0.1")
    assert (code, body) == (200, "getting started, over https, on dyno web.1\n"), err

    # A custom domain with its own certificate: served with it, while the default hostname keeps
    # the platform's (two certificates, one app).
    custom = f"shop.{name}.example.com"
    pf.cli("domains:add", custom, "-a", name)
    crt, key = write_pair(tmp_path / "tls", "shop", [custom])
    pf.cli("certs:add", str(crt), str(key), "-a", name)
    code, body, _, err = fetch(f"https://{custom}:{tls}/", custom, tls, "--cacert", str(crt))
    assert (code, body) == (200, "getting started, over https, on dyno web.1\n"), err
    code, body, _, err = fetch(f"https://{host}:{tls}/", host, tls, "--cacert", str(ca))
    assert code == 200, err
    # The platform's CA vouches for nothing outside its domain (its name constraint).
    assert fetch(f"https://{custom}:{tls}/", custom, tls, "--cacert", str(ca))[0] == 0

    make_app_repo(repo, {"app.py": (SAMPLE / "app.py").read_bytes() + b"# again\n"}, pf)
    timed_push(pf, repo, "Heroku https-redirecting app (Procfile + stdlib) warm")
    code, body, _, err = fetch(f"https://{host}:{tls}/", host, tls, "--cacert", str(ca))
    assert (code, body) == (200, "getting started, over https, on dyno web.1\n"), err
