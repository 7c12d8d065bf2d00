"""The head of an app's server blocks: which names listen where, with which certificate
(the app's own, or the platform's for the names under the platform domain), and the redirects
to HTTPS. Pure functions, used by ``router.render``."""
from __future__ import annotations

from router.errors import RenderError
from router.table import Route, RouteOptions, Tls

# Characters that would end or alter a token in nginx config, or start a
# variable: refuse them in paths instead of trying to escape them.
_UNSAFE_PATH_CHARS = set(" \t\r\n\"';{}$#\\") | {chr(c) for c in range(32)} | {"\x7f"}


def check_path(path: object, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or any(c in _UNSAFE_PATH_CHARS for c in path):
        raise RenderError(
            f"{what} {path!r} cannot be used in nginx config: it must be an absolute path without spaces, "
            "quotes, ';', '{', '}', '$', '#' or backslashes. Set DOCKYARD_HOME to a plain path."
        )
    return path.rstrip("/") or "/"


def tls_lines(app: str, tls: Tls | None, tls_listen: str | None) -> str:
    if tls is None:
        return ""
    if tls_listen is None:
        raise RenderError(
            f"App {app} has a certificate but the router has no HTTPS port: set DOCKYARD_ROUTER_TLS_PORT.", app=app)
    try:
        cert = check_path(getattr(tls, "cert_path", None), f"App {app}: certificate file")
        key = check_path(getattr(tls, "key_path", None), f"App {app}: key file")
    except RenderError as exc:
        raise RenderError(exc.message, app=app) from None
    return (f"    listen {tls_listen} ssl;\n"
            f'    ssl_certificate "{cert}";\n'
            f'    ssl_certificate_key "{key}";\n')


def tls_port(tls_listen: str) -> int:
    return int(tls_listen.rsplit(":", 1)[1])


def redirect_lines(route: Route, tls: Tls | None, tls_listen: str | None) -> str:
    if not route.force_https:
        return ""
    app = route.app
    if (route.tls is None and route.platform_tls is None) or tls_listen is None:
        raise RenderError(
            f"App {app} asks for force-https but has no certificate: add one with "
            f"`dockyard certs:add CERT KEY -a {app}`, or `dockyard router:set force-https=false -a {app}`.", app=app)
    if tls is None:
        return ""   # these names have no certificate: they stay on HTTP
    suffix = "" if tls_port(tls_listen) == 443 else f":{tls_port(tls_listen)}"
    return ('    if ($https = "") {\n'
            f"        return 308 https://$host{suffix}$request_uri;\n"
            "    }\n")


def proxy_redirects(listen: str, tls_listen: str | None) -> str:
    """An app that redirects to https builds the URL from the Host header, whose port is the HTTP
    port: such a Location answers nothing (HTTPS is on the TLS port), so it is pointed there. A
    URL with no port is left alone: behind a TLS proxy on 443 it is right."""
    if tls_listen is None:
        return ""
    http_port, https_port = int(listen.rsplit(":", 1)[1]), tls_port(tls_listen)
    if http_port in (80, https_port):
        return ""
    return f"        proxy_redirect https://$host:{http_port}/ https://$host:{https_port}/;\n"


def heads(route: Route, listen: str, tls_listen: str | None, opts: RouteOptions) -> list[tuple[str, bool]]:
    """A server block's head per group of the app's names, and whether it serves HTTPS: the names
    the platform's certificate serves, then the others (with the app's own certificate, if any)."""
    app = route.app
    platform = [h for h in route.hostnames if h in route.platform_hosts] if route.platform_tls else []
    own = [h for h in route.hostnames if h not in platform]
    heads = []
    for names, tls in ((platform, route.platform_tls), (own, route.tls)):
        if not names:
            continue
        heads.append((f"    listen {listen};\n{tls_lines(app, tls, tls_listen)}"
                      f"    server_name {' '.join(names)};\n"
                      f'    set $dockyard_app "{app}";\n'
                      "    default_type text/plain;\n"
                      f"    client_max_body_size {opts.client_max_body_size};\n"
                      f"{redirect_lines(route, tls, tls_listen)}", tls is not None))
    return heads


def maintenance_server(app: str, head: str, comment: str) -> str:
    """A server block answering 503 for maintenance; ``app`` is a name or ``$dockyard_app``."""
    return f"""
# {comment}
server {{
{head}    add_header X-Content-Type-Options nosniff always;
    add_header Retry-After 60 always;
    return 503 "App {app} is down for maintenance. Please try again later.\\n(Its owner turns this off with: dockyard maintenance:off -a {app})\\n";
}}
"""


def proxy_server(app: str, head: str, name: str, opts: RouteOptions, redirects: str, comment: str = "") -> str:
    """A server block proxying to upstream ``name``; ``app`` (in the error pages) and ``name``
    are literal, or variables in the shared blocks."""
    size = opts.client_max_body_size
    return f"""{comment}
server {{
{head}    error_page 413 @too_large;
    error_page 502 @bad_gateway;
    error_page 504 @gateway_timeout;

    location / {{
        proxy_pass http://{name};
        proxy_connect_timeout {opts.connect_timeout}s;
        proxy_read_timeout {opts.read_timeout}s;
        proxy_send_timeout {opts.send_timeout}s;
        proxy_next_upstream_timeout {opts.read_timeout}s;
{redirects}    }}
    location @too_large {{
        add_header X-Content-Type-Options nosniff always;
        return 413 "The request body is larger than app {app} accepts (client-max-body-size={size}). Its owner can raise the limit with: dockyard router:set client-max-body-size=200m -a {app}\\n";
    }}
    location @bad_gateway {{
        add_header X-Content-Type-Options nosniff always;
        return 502 "App {app} is not answering: its web process may be crashing or restarting.\\n";
    }}
    location @gateway_timeout {{
        add_header X-Content-Type-Options nosniff always;
        return 504 "App {app} did not answer within read-timeout={opts.read_timeout}s. If it needs longer, its owner can raise it with: dockyard router:set read-timeout=120 -a {app}\\n";
    }}
}}
"""

