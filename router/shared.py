"""The server blocks every app's default hostname (``<app>.<domain>``) shares. Pure.

nginx builds a TLS context (certificate and key loaded, parsed) for every server block that
listens with ``ssl``, and its other per-block work too, at every config load: a block per app
makes each reload, hence each deploy's route switch, slower with every app. Here the apps'
default hostnames are served by one block per way of serving them (proxied, maintenance, a
page saying why there is nothing to proxy to, asleep behind the wake listener) and per
certificate (the platform's, or none), whatever the number of apps. What differs between
apps (their name in pages and logs, their upstream, their page, force-https) comes from
``map $host`` tables; the rest of each block is what ``router.render`` writes for one app.

Not shared, and rendered per app as before: custom domains, names served with the app's own
certificate, and apps with their own router settings (body size, timeouts), so that a
setting nginx refuses is still blamed on its app alone (``router.nginx``).
"""
from __future__ import annotations

from dataclasses import dataclass

from router import servers, wake
from router.errors import RenderError
from router.table import Route, RouteOptions

MARK = "# Shared"       # starts every line of the shared part that is no app's (router.render.app_at_line)
APP_VAR = "$dockyard_app"
_KINDS = ("proxy", "maintenance", "page", "wake")


@dataclass(frozen=True)
class Entry:
    """One app's default hostname in the shared blocks: ``kind`` (one of _KINDS), its upstream's
    name (proxy), its page's text (page), the wake listener's checked address (wake)."""

    route: Route
    host: str
    kind: str
    upstream: str = ""
    page: str = ""
    listener: str = ""


def shared_host(route: Route, domain: str | None, tls_listen: str | None) -> str | None:
    """The app's default hostname if the shared blocks serve it, else None (its own blocks do).
    Raises the RenderError (naming the app) its own block would have raised."""
    if domain is None:
        return None
    host = f"{route.app}.{domain}"
    if host not in route.hostnames or route.options != RouteOptions():
        return None
    if route.platform_tls is not None:
        if host not in route.platform_hosts:
            return None              # the app's own certificate serves it
    elif route.tls is not None:
        return None
    servers.tls_lines(route.app, route.platform_tls, tls_listen)
    servers.redirect_lines(route, route.platform_tls, tls_listen)
    return host


def _map(var: str, pairs: list[tuple[str, str]]) -> str:
    lines = "".join(f"    {host} {value};\n" for host, value in pairs)
    return f"map $host {var} {{\n    default \"\";\n{lines}}}\n"


def _quoted(text: str, app: str) -> str:
    if any(c in text for c in '"\\$\n'):
        raise RenderError(f"App {app}: its page text holds a quote, backslash, '$' or newline and cannot go "
                          "into the router's config: remove it from router/pages.py.", app=app)
    return f'"{text}\\n"'


def render(entries: list[Entry], listen: str, tls_listen: str | None) -> str:
    """The maps and the shared server blocks (empty text without entries)."""
    if not entries:
        return ""
    entries = sorted(entries, key=lambda e: e.host)
    forced = [e for e in entries if e.route.force_https and e.route.platform_tls is not None]
    out = [f"\n{MARK}: the apps' default hostnames ({len(entries)}), served by the blocks below.\n",
           _map("$dockyard_shared_app", [(e.host, e.route.app) for e in entries])]
    ups = [(e.host, e.upstream) for e in entries if e.kind == "proxy"]
    pages = [(e.host, _quoted(e.page, e.route.app)) for e in entries if e.kind == "page"]
    for var, pairs in (("$dockyard_shared_upstream", ups), ("$dockyard_shared_page", pages),
                       ("$dockyard_shared_force_https", [(e.host, "1") for e in forced])):
        if pairs:
            out.append(_map(var, pairs))
    if forced:
        # Redirected: a forced name asked over plain HTTP (like `if ($https = "")` in an app's block).
        out.append('map "$dockyard_shared_force_https:$https" $dockyard_shared_to_https {\n'
                   '    default "";\n    "1:" 1;\n}\n')
    groups: dict[tuple, list[Entry]] = {}
    for e in entries:
        tls = e.route.platform_tls
        key = (_KINDS.index(e.kind), e.listener, e.route.wake.wait if e.kind == "wake" else 0,
               (tls.cert_path, tls.key_path) if tls is not None else ("", ""))
        groups.setdefault(key, []).append(e)
    for key in sorted(groups):
        out.append(_block(groups[key], listen, tls_listen, bool(forced)))
    return "".join(out)


def _head(group: list[Entry], listen: str, tls_listen: str | None, any_forced: bool) -> str:
    first = group[0].route
    tls = first.platform_tls
    names = "".join(f"    server_name {e.host};\n" for e in group)
    redirect = ""
    if tls is not None and any_forced and any(e.route.force_https for e in group):
        port = servers.tls_port(tls_listen)
        suffix = "" if port == 443 else f":{port}"
        redirect = ("    if ($dockyard_shared_to_https) {\n"
                    f"        return 308 https://$host{suffix}$request_uri;\n"
                    "    }\n")
    return (f"    listen {listen};\n{servers.tls_lines(first.app, tls, tls_listen)}{names}"
            f"    set $dockyard_app $dockyard_shared_app;\n"
            "    default_type text/plain;\n"
            f"    client_max_body_size {RouteOptions().client_max_body_size};\n{redirect}")


def _block(group: list[Entry], listen: str, tls_listen: str | None, any_forced: bool) -> str:
    head = _head(group, listen, tls_listen, any_forced)
    kind, opts = group[0].kind, RouteOptions()
    comment = f"{MARK}: {len(group)} app(s), {kind}" + (", HTTPS" if group[0].route.platform_tls else "") + "."
    if kind == "maintenance":
        return servers.maintenance_server(APP_VAR, head, comment[2:])
    if kind == "wake":
        return wake.sleeping_server(APP_VAR, group[0].route.wake.wait, head, opts, group[0].listener, comment)
    if kind == "page":
        return f"""
{comment}
server {{
{head}    add_header X-Content-Type-Options nosniff always;
    return 503 "$dockyard_shared_page";
}}
"""
    redirects = servers.proxy_redirects(listen, tls_listen) if group[0].route.platform_tls else ""
    return servers.proxy_server(APP_VAR, head, "$dockyard_shared_upstream", opts, redirects, "\n" + comment)
