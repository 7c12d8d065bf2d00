"""What the router does for an app: domains, TLS certificates, router settings (`router`,
also named `router:report`, and `router:set`) and maintenance mode."""
from __future__ import annotations

from pathlib import Path

import click

from .client import app_option, call, resolve_app


# ---- domains -----------------------------------------------------------------------------
@click.command()
@app_option
def domains(app):
    """List an app's hostnames (the default one and custom ones)."""
    name = resolve_app(app)
    rows = call("GET", f"/apps/{name}/domains")
    click.echo(f"=== {name} Domains")
    for d in rows:
        click.echo(f"{d['hostname']:<50} {d['kind']}")


@click.command("domains:add")
@click.argument("hostname")
@app_option
def domains_add(hostname, app):
    """Route HOSTNAME (or *.example.com) to the app. Point its DNS at this machine."""
    name = resolve_app(app)
    d = call("POST", f"/apps/{name}/domains", {"hostname": hostname})
    click.echo(f"Adding {d['hostname']} to {name}... done")
    click.echo(f"Point the DNS of {d['hostname']} (A/AAAA or CNAME) at this router.")


@click.command("domains:remove")
@click.argument("hostname")
@app_option
def domains_remove(hostname, app):
    """Stop routing HOSTNAME to the app."""
    name = resolve_app(app)
    call("DELETE", f"/apps/{name}/domains/{hostname}")
    click.echo(f"Removing {hostname} from {name}... done")


# ---- certificates ------------------------------------------------------------------------
def _print_cert(c: dict) -> None:
    click.echo(f"Names:      {', '.join(c['names'])}")
    click.echo(f"Issuer:     {c['issuer']}{' (self-signed)' if c['self_signed'] else ''}")
    click.echo(f"Expires:    {c['not_after']} ({c['expires_in_days']} days)")
    click.echo(f"SHA-256:    {c['fingerprint']}")
    click.echo(f"HTTPS port: {c['tls_port']}   force-https: {str(c['force_https']).lower()}")
    if c["uncovered_hosts"]:
        click.echo(f"Warning: not covered by this certificate: {', '.join(c['uncovered_hosts'])}")


@click.command()
@app_option
def certs(app):
    """Show the app's TLS certificate."""
    name = resolve_app(app)
    rows = call("GET", f"/apps/{name}/sni-endpoints")
    if not rows:
        click.echo(f"{name} has no certificate. Add one with: dockyard certs:add CERT KEY -a {name}")
        return
    click.echo(f"=== {name} Certificate")
    _print_cert(rows[0])


@click.command("certs:ca")
def certs_ca():
    """Print the platform's local CA certificate (PEM): trust it to reach https://<app>.<domain>."""
    ca = call("GET", "/certs/ca")
    click.echo(ca["certificate"], nl=False)
    click.echo(f"Trust it for https://<app>.{ca['domain']}:{ca['tls_port']}/, e.g. curl --cacert FILE "
               "(it can only vouch for that domain).", err=True)


@click.command("certs:add")
@click.argument("cert", type=click.Path(exists=True, dir_okay=False))
@click.argument("key", type=click.Path(exists=True, dir_okay=False))
@app_option
def certs_add(cert, key, app):
    """Add (or replace) the app's certificate: CERT is the PEM chain, KEY its private key."""
    name = resolve_app(app)
    c = call("POST", f"/apps/{name}/sni-endpoints",
             {"certificate_chain": Path(cert).read_text(), "private_key": Path(key).read_text()})
    click.echo(f"Adding certificate to {name}... done")
    _print_cert(c)


@click.command("certs:remove")
@app_option
def certs_remove(app):
    """Remove the app's certificate (its custom domains' HTTPS stops; force-https is turned off
    unless the platform's certificate serves the app's default hostname)."""
    name = resolve_app(app)
    call("DELETE", f"/apps/{name}/sni-endpoints")
    click.echo(f"Removing certificate from {name}... done")


# ---- router settings ---------------------------------------------------------------------
def _print_router(r: dict) -> None:
    click.echo(f"=== {r['app']} Router")
    for key, value in sorted(r["settings"].items()):
        value = str(value).lower() if isinstance(value, bool) else value
        mark = "" if key in r["customized"] else "  (default)"
        click.echo(f"{key + ':':<24}{value}{mark}")
    if r["refused"]:
        click.echo(f"Refused by the router (not in use): {r['refused']}")


@click.command("router")
@app_option
def router_report(app):
    """Show the app's router settings."""
    _print_router(call("GET", f"/apps/{resolve_app(app)}/router"))


# The same command under Dokku's name: one implementation, its own help line.
router_report_alias = click.Command("router:report", callback=router_report.callback, params=router_report.params,
                                    help="Show the app's router settings (same as `router`).")


@click.command("router:set")
@click.argument("pairs", nargs=-1, required=True)
@app_option
def router_set(pairs, app):
    """Set router settings: client-max-body-size=50m read-timeout=120 send-timeout=60
    connect-timeout=5 force-https=true. NAME= (empty) resets one to its default."""
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.ClickException(f"{pair[:40]!r} is not NAME=VALUE (e.g. read-timeout=120).")
        changes[key] = value if value != "" else None
    name = resolve_app(app)
    _print_router(call("PATCH", f"/apps/{name}/router", {"settings": changes}))


# ---- maintenance -------------------------------------------------------------------------
@click.command("maintenance")
@app_option
def maintenance_show(app):
    """Show whether the app is in maintenance mode."""
    r = call("GET", f"/apps/{resolve_app(app)}/router")
    click.echo("on" if r["settings"]["maintenance"] else "off")


def _maintenance(app: str | None, on: bool) -> None:
    name = resolve_app(app)
    call("PATCH", f"/apps/{name}/router", {"settings": {"maintenance": on}})
    click.echo(f"{'Enabling' if on else 'Disabling'} maintenance mode for {name}... done")


@click.command("maintenance:on")
@app_option
def maintenance_on(app):
    """Answer every request with a 503 maintenance page; the app keeps running."""
    _maintenance(app, True)


@click.command("maintenance:off")
@app_option
def maintenance_off(app):
    """Serve the app again."""
    _maintenance(app, False)


COMMANDS = [domains, domains_add, domains_remove, certs, certs_ca, certs_add, certs_remove,
            router_report, router_report_alias, router_set, maintenance_show, maintenance_on, maintenance_off]
