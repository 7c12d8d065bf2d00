"""How a sleeping app is served (pure): its requests go to a wake listener, which holds them
until the app is up and then passes them on; bodies and WebSockets stream through it."""
from __future__ import annotations

from router.errors import RenderError
from router.table import Route, RouteOptions, Upstream, Wake

# The headers every proxied request gets (render.MAIN_TEMPLATE sets them for the whole http
# block; a location that adds one header must repeat them all, as nginx then inherits none).
PROXY_HEADERS = (("Host", "$http_host"), ("Upgrade", "$http_upgrade"), ("Connection", "$connection_upgrade"),
                 ("X-Forwarded-For", "$proxy_add_x_forwarded_for"), ("X-Forwarded-Proto", "$scheme"),
                 ("X-Forwarded-Host", "$host"), ("X-Forwarded-Port", "$server_port"),
                 ("X-Request-Id", "$dockyard_request_id"))
APP_HEADER = "X-Dockyard-Wake"   # names the app to the listener (set by the router, never the client's)


def check(route: Route) -> Upstream:
    """The listener's address of a route with `wake`, checked."""
    w = route.wake
    if not isinstance(w, Wake) or isinstance(w.wait, bool) or not isinstance(w.wait, int) or w.wait < 1:
        raise RenderError(f"App {route.app}: its wake listener must be a Wake with a wait of at least 1 s.",
                          app=route.app)
    return w.upstream


def render_sleeping(route: Route, head: str, opts: RouteOptions, address: str) -> str:
    """The server block of a sleeping app; `head` is its listen/server_name lines, `address` the
    listener's checked address. No retry to another upstream: the listener started the wake."""
    return sleeping_server(route.app, route.wake.wait, head, opts, address,
                           f"# App {route.app}: sleeping; a request wakes it.")


def sleeping_server(app: str, wait: int, head: str, opts: RouteOptions, address: str, comment: str) -> str:
    """`app` is the app's name, or `$dockyard_app` in the block sleeping apps share."""
    headers = "".join(f"        proxy_set_header {k} {v};\n" for k, v in PROXY_HEADERS)
    return f"""
{comment}
server {{
{head}    location / {{
        proxy_pass http://{address};
{headers}        proxy_set_header {APP_HEADER} "{app}";
        proxy_next_upstream off;
        proxy_connect_timeout 5s;
        proxy_read_timeout {opts.read_timeout + wait}s;
        proxy_send_timeout {opts.send_timeout + wait}s;
    }}
}}
"""
