"""Pure parts of `heroku run` and `heroku logs`: tickets (single use, expiry, concurrent claims),
the rendezvous input's end, one-off env, Heroku's log line names and the stream's events."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509

from controller.observe.heroku_logs import heroku_origin, redact_secrets, session_params, sse_event, wanted
from controller.runtime.heroku_run import one_off_env, terminal_for
from controller.runtime.rendezvous_tls import certificates, covers, ensure_bundle, self_signed
from controller.daemons.rendezvousd import split_eot
from controller.settings import from_env
from controller.accounts.tickets import Tickets, is_live, ticket_key
from core.errors import BadRequest


def test_a_ticket_is_claimed_once_and_its_secret_is_not_stored(tmp_path):
    t = Tickets(tmp_path, "rendezvous")
    secret, _ = t.issue({"app": "a"}, ttl=60)
    assert secret not in "".join(p.name + p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert t.peek(secret)["app"] == "a"          # peeking leaves it
    assert t.claim(secret)["app"] == "a"
    assert t.claim(secret) is None and t.peek(secret) is None
    assert t.claim("guessed") is None and t.claim("") is None


def test_concurrent_claims_have_one_winner(tmp_path):
    t = Tickets(tmp_path, "rendezvous")
    secret, _ = t.issue({"app": "a"}, ttl=60)
    results, start = [], threading.Barrier(8)

    def claim():
        start.wait()
        results.append(t.claim(secret))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(r is not None for r in results) == 1


def test_expired_tickets_are_refused_and_swept(tmp_path):
    t = Tickets(tmp_path, "log-session")
    secret, _ = t.issue({"app": "a"}, ttl=60)
    path = t.dir / f"{ticket_key(secret)}.json"
    path.write_text(json.dumps({"app": "a", "expires_at": time.time() - 1}))
    assert t.peek(secret) is None and t.claim(secret) is None
    secret2, _ = t.issue({"app": "b"}, ttl=60)
    (t.dir / f"{ticket_key(secret2)}.json").write_text(json.dumps({"app": "b", "expires_at": time.time() - 1}))
    assert t.sweep() == 1 and not list(t.dir.glob("*.json"))
    assert not is_live({}, time.time()) and not is_live({"expires_at": "never"}, 0)


def test_ctrl_d_ends_the_rendezvous_input():
    assert split_eot(b"data\n") == (b"data\n", False)
    assert split_eot(b"data\n\x04") == (b"data\n", True)
    assert split_eot(b"\x04after") == (b"", True)


def test_one_off_env_keeps_the_platforms_variables():
    assert one_off_env({"TERM": "xterm", "COLUMNS": 80, "EMPTY": "", "NONE": None}) == {"TERM": "xterm", "COLUMNS": "80"}
    assert one_off_env(None) == {}
    for bad in ({"PORT": "1"}, {"DYNO": "x"}, {"DOCKYARD_APP": "x"}, {"A-B": "1"}, {"A": "x\x00"}, {"A": ["x"]}, ["A=1"]):
        with pytest.raises(BadRequest):
            one_off_env(bad)


def test_lines_carry_herokus_names_and_sources():
    rows = [{"at": "2026-12-06T20:00:00.000001+00:00", "source": "app", "process": "web.1", "message": "hi"},
            {"at": "t", "source": "router", "process": "router", "message": "at=info"},
            {"at": "t", "source": "dockyard", "process": "api", "message": "Release v2"},
            {"at": "t", "source": "dockyard", "process": "reconciler", "message": "web.1 crashed"}]
    assert [heroku_origin(r) for r in rows] == [("app", "web.1"), ("heroku", "router"), ("app", "api"),
                                                ("heroku", "reconciler")]
    assert [wanted(r, "app") for r in rows] == [True, False, True, False]
    assert [wanted(r, "heroku") for r in rows] == [False, True, False, True]
    assert [wanted(r, "router") for r in rows] == [False, True, False, False]
    assert [wanted(r, "dockyard") for r in rows] == [False, False, True, True]
    assert all(wanted(r, "") for r in rows)
    assert sse_event(rows[0]) == (b"id: 2026-12-06T20:00:00.000001+00:00\n"
                                  b"data: 2026-12-06T20:00:00.000001+00:00 app[web.1]: hi\n\n")
    # a line break in a message cannot end the event early or forge another one
    two = sse_event({**rows[0], "message": "a\r\n\nid: x\rdata: y"}).decode()
    assert two.count("\n\n") == 1 and all(line.startswith(("id: ", "data: ")) for line in two.strip().split("\n"))


def test_session_params():
    assert session_params({}) == {"source": "", "dyno": "", "lines": 100, "tail": False}
    assert session_params({"source": "app", "dyno": "web", "lines": 5000, "tail": True}) == \
        {"source": "app", "dyno": "web", "lines": 1500, "tail": True}
    for bad in ({"source": "kernel"}, {"lines": "many"}, {"dyno": ["web"]}):
        with pytest.raises(BadRequest):
            session_params(bad)


def test_the_self_signed_certificate_names_the_attach_host_and_the_endpoint_gives_no_key(tmp_path: Path):
    s = from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_RENDEZVOUS_PUBLIC_HOST": "run.example.com"})
    pem = self_signed(s)
    public = certificates(pem)
    assert "PRIVATE KEY" in pem and "PRIVATE KEY" not in public and public.count("BEGIN CERTIFICATE") == 1
    cert = x509.load_pem_x509_certificate(public.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"run.example.com", "localhost"} <= set(sans.get_values_for_type(x509.DNSName))
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert s.rendezvous_address == "run.example.com:5002"
    assert from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_RENDEZVOUS_HOST": "0.0.0.0"}).rendezvous_address \
        == "127.0.0.1:5002"


def test_the_certificate_is_made_again_when_the_attach_host_changes(tmp_path: Path):
    first = ensure_bundle(from_env({"DOCKYARD_HOME": str(tmp_path)}))
    pem = first.read_text()
    assert covers(pem, "127.0.0.1") and not covers(pem, "run.example.com") and not covers("", "127.0.0.1")
    assert ensure_bundle(from_env({"DOCKYARD_HOME": str(tmp_path)})).read_text() == pem     # kept
    moved = ensure_bundle(from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_RENDEZVOUS_PUBLIC_HOST": "run.example.com"}))
    assert moved == first and covers(moved.read_text(), "run.example.com") and (first.stat().st_mode & 0o777) == 0o600


def test_a_terminal_only_when_the_clis_output_is_one():
    assert terminal_for({}, {"TERM": "xterm", "COLUMNS": "120", "LINES": "40"}) == (120, 40)
    assert terminal_for({}, {"TERM": "xterm"}) is None                       # piped: no COLUMNS/LINES
    assert terminal_for({"force_no_tty": True}, {"COLUMNS": "120", "LINES": "40"}) is None
    assert terminal_for({}, {"COLUMNS": "wide", "LINES": "40"}) is None
    assert terminal_for({}, {"COLUMNS": "99999", "LINES": "0"}) == (1000, 1)


def test_the_access_log_hides_log_stream_secrets():
    assert redact_secrets("GET /log-streams/abc_DEF-123 HTTP/1.1") == "GET /log-streams/[secret] HTTP/1.1"
    assert redact_secrets("/log-streams/abc?x=1") == "/log-streams/[secret]?x=1"
    assert redact_secrets("GET /apps/x/logs HTTP/1.1") == "GET /apps/x/logs HTTP/1.1"


def test_the_listeners_certificate_names_are_kept_beside_it_and_read_at_the_next_start(tmp_path: Path, monkeypatch):
    """The listener's start reads the kept names instead of parsing the certificate; a bundle
    changed on disk (an operator replaced it) is parsed again."""
    from controller.runtime import rendezvous_tls
    s = from_env({"DOCKYARD_HOME": str(tmp_path)})
    path = ensure_bundle(s)
    kept = path.with_name(path.name + ".names.json")
    assert "127.0.0.1" in json.loads(kept.read_text())["names"] and kept.stat().st_mode & 0o777 == 0o600
    real, parsed = rendezvous_tls.names, []
    monkeypatch.setattr(rendezvous_tls, "names", lambda pem: parsed.append(1) or real(pem))
    pem = path.read_text()
    assert ensure_bundle(s) == path and path.read_text() == pem and parsed == []
    path.write_text(self_signed(from_env({"DOCKYARD_HOME": str(tmp_path),
                                          "DOCKYARD_RENDEZVOUS_PUBLIC_HOST": "run.example.com"})))
    assert rendezvous_tls.covers_kept(path, "run.example.com") and parsed == [1]
    assert not rendezvous_tls.covers_kept(path, "other.example.com") and parsed == [1]
