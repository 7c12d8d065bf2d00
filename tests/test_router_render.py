"""Unit tests of router.table and router.render: no sockets, no subprocesses."""

from __future__ import annotations

import re

import pytest

from router.errors import ConfigRejected, RenderError, RouterError
from router.render import render_main, render_routes, upstream_name
from router.table import Route, Upstream, build_table

PORT = 18080


def server_blocks(text: str) -> list[str]:
    """Top-level `server { ... }` blocks of a routes file (they contain nested blocks)."""
    blocks, depth, start = [], 0, None
    for m in re.finditer(r"^server \{|\{|\}", text, re.M):
        tok = m.group(0)
        if tok.startswith("server") and depth == 0:
            start, depth = m.start(), 1
        elif tok.endswith("{"):
            depth += 1 if depth else 0
        elif depth:
            depth -= 1
            if depth == 0:
                blocks.append(text[start : m.end()])
    return blocks


def block_for(text: str, hostname: str) -> str:
    found = [b for b in server_blocks(text) if re.search(rf"server_name [^;]*\b{re.escape(hostname)}\b", b)]
    assert len(found) == 1, f"expected one server block for {hostname}, got {len(found)}"
    return found[0]


def default_block(text: str) -> str:
    found = [b for b in server_blocks(text) if "default_server" in b]
    assert len(found) == 1
    return found[0]


# ---------------------------------------------------------------- table
def test_build_table_hostnames_sorting_and_merging():
    table = build_table(
        [
            ("web", [Upstream("127.0.0.1", 5002), ("127.0.0.1", 5001)]),
            ("api", []),
            ("web", [Upstream("127.0.0.1", 5001), Upstream("10.0.0.1", 80)]),
        ],
        "apps.example.com",
    )
    assert table == (
        Route("api", ("api.apps.example.com",), ()),
        Route(
            "web",
            ("web.apps.example.com",),
            (Upstream("10.0.0.1", 80), Upstream("127.0.0.1", 5001), Upstream("127.0.0.1", 5002)),
        ),
    )
    # Deterministic: input order does not matter.
    shuffled = build_table(
        [("api", []), ("web", [("10.0.0.1", 80), ("127.0.0.1", 5002), ("127.0.0.1", 5001)])], "apps.example.com"
    )
    assert shuffled == table


def test_route_is_immutable_and_hashable():
    route = Route("a", ["a.localhost"], [("127.0.0.1", 1)])
    assert route.hostnames == ("a.localhost",)
    assert route.upstreams == (Upstream("127.0.0.1", 1),)
    hash(route)
    with pytest.raises(AttributeError):
        route.app = "b"  # type: ignore[misc]


# ---------------------------------------------------------------- routes
def test_render_routes_is_deterministic():
    a = build_table(
        [("myapp", [("127.0.0.1", 5001), ("127.0.0.1", 5000)]), ("other", [("127.0.0.1", 6000)])], "localhost"
    )
    b = build_table(
        [("other", [("127.0.0.1", 6000)]), ("myapp", [("127.0.0.1", 5000), ("127.0.0.1", 5001)])], "localhost"
    )
    text = render_routes(a, PORT)
    assert text == render_routes(b, PORT)
    assert text == render_routes(tuple(reversed(a)), PORT)  # render sorts too
    assert text.index("server_name myapp.localhost;") < text.index("server_name other.localhost;")


def test_each_app_gets_its_hostnames_and_its_upstreams():
    routes = (
        Route(
            "myapp", ("myapp.localhost", "www.example.com"), (Upstream("127.0.0.1", 5000), Upstream("::1", 5001))
        ),
        Route("other", ("other.localhost",), (Upstream("127.0.0.1", 6000),)),
    )
    text = render_routes(routes, PORT)
    block = block_for(text, "myapp.localhost")
    assert "server_name myapp.localhost www.example.com;" in block
    assert f"listen 127.0.0.1:{PORT};" in block
    assert f"proxy_pass http://{upstream_name('myapp')};" in block
    upstream = re.search(r"upstream app_myapp \{(.*?)\}", text, re.S).group(1)
    assert "server 127.0.0.1:5000 max_fails=" in upstream
    assert "server [::1]:5001 max_fails=" in upstream
    assert "keepalive 32;" in upstream
    assert "6000" not in upstream
    assert "proxy_pass http://app_other;" in block_for(text, "other.localhost")


def test_upstream_names_are_safe_identifiers():
    assert upstream_name("my-app") == "app_my_app"
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", upstream_name("a1-b2-c3"))


def test_app_without_upstreams_gets_a_503_page():
    text = render_routes(build_table([("idle", []), ("busy", [("127.0.0.1", 5000)])], "localhost"), PORT)
    block = block_for(text, "idle.localhost")
    assert (
        'return 503 "App idle has no running web process. Scale it with: dockyard ps:scale web=1 -a idle\\n";'
        in block
    )
    assert "default_type text/plain;" in block
    assert "proxy_pass" not in block
    assert "upstream app_idle" not in text  # no empty upstream block (nginx would refuse it)
    assert "upstream app_busy" in text


def test_default_server_returns_404_and_never_lists_apps():
    text = render_routes(build_table([("secret-app", [("127.0.0.1", 5000)]), ("idle", [])], "localhost"), PORT)
    block = default_block(text)
    assert f"listen 127.0.0.1:{PORT} default_server;" in block
    assert (
        'return 404 "No app is configured for host \\"$host\\". Create one with: dockyard apps:create NAME'
        in block
    )
    assert "default_type text/plain;" in block
    assert "secret-app" not in block and "idle" not in block
    assert text.count("default_server") == 1


def test_empty_table_still_has_the_default_server():
    text = render_routes((), PORT)
    assert len(server_blocks(text)) == 1
    assert "default_server" in text and "upstream" not in text


@pytest.mark.parametrize(
    "app", ["a;b", "x\n}", "../x", "MyApp", "", "-x", "x-", "a b", "a.b", "a$b", "a{b", "1abc", "x" * 64, None]
)
def test_injection_in_app_name_is_refused(app):
    with pytest.raises(RenderError) as err:
        render_routes((Route(app, ("ok.localhost",), (Upstream("127.0.0.1", 5000),)),), PORT)
    assert err.value.status == 400


@pytest.mark.parametrize(
    "hostname",
    [
        "a;b.localhost",
        "x\n}.localhost",
        "../x",
        "MyApp.localhost",
        "a b.localhost",
        "a..localhost",
        ".localhost",
        "localhost.",
        "*.localhost",
        'a"b.localhost',
        "$host",
        "a.localhost;\nserver{",
        ("a" * 63 + ".") * 4 + "a",  # 256 chars
        "",
    ],
)
def test_injection_in_hostname_is_refused(hostname):
    with pytest.raises(RenderError):
        render_routes((Route("ok", (hostname,), ()),), PORT)


def test_injection_via_domain_is_refused():
    table = build_table([("ok", [])], "localhost; return 200 pwned")
    with pytest.raises(RenderError):
        render_routes(table, PORT)


@pytest.mark.parametrize(
    "upstream",
    [
        Upstream("127.0.0.1;", 5000),
        Upstream("127.0.0.1 down", 5000),
        Upstream("host\n}", 5000),
        Upstream("fe80::1%eth0", 5000),
        Upstream("127.0.0.1", 0),
        Upstream("127.0.0.1", 65536),
        Upstream("127.0.0.1", "5000"),  # type: ignore[arg-type]
        Upstream("127.0.0.1", True),  # type: ignore[arg-type]
    ],
)
def test_bad_upstreams_are_refused(upstream):
    with pytest.raises(RenderError):
        render_routes((Route("ok", ("ok.localhost",), (upstream,)),), PORT)


def test_duplicate_apps_and_hostnames_are_refused():
    with pytest.raises(RenderError, match="twice"):
        render_routes((Route("a", ("a.localhost",)), Route("a", ("b.localhost",))), PORT)
    with pytest.raises(RenderError, match="claimed by both"):
        render_routes((Route("a", ("x.localhost",)), Route("b", ("x.localhost",))), PORT)
    with pytest.raises(RenderError, match="no hostname"):
        render_routes((Route("a", ()),), PORT)


def test_render_error_is_a_router_error_with_a_helpful_message():
    with pytest.raises(RouterError) as err:
        render_routes((Route("Bad", ("bad.localhost",)),), PORT)
    assert "'Bad'" in str(err.value) and "lowercase" in str(err.value)
    # What the API's error handler reads.
    assert (err.value.status, err.value.code) == (400, "invalid_route")
    assert err.value.message == str(err.value)


def test_error_classes_carry_status_and_code():
    assert (RouterError("x").status, RouterError("x").code) == (500, "router_error")
    rejected = ConfigRejected("nginx said no", output="[emerg] boom")
    assert (rejected.status, rejected.code, rejected.output, rejected.message) == (
        500,
        "config_rejected",
        "[emerg] boom",
        "nginx said no",
    )
    assert isinstance(rejected, RouterError) and issubclass(RenderError, RouterError)


def test_app_name_with_trailing_newline_is_refused():
    # re.match(r"^...$") accepts "myapp\n"; the renderer must not.
    with pytest.raises(RenderError):
        render_routes((Route("myapp\n", ("myapp.localhost",)),), PORT)
    with pytest.raises(RenderError):
        render_routes((Route("myapp", ("myapp.localhost\n",)),), PORT)


# ---------------------------------------------------------------- main conf
def test_render_main_keeps_everything_inside_the_prefix():
    text = render_main("/srv/dockyard/router", PORT)
    assert 'pid "/srv/dockyard/router/logs/nginx.pid";' in text
    assert 'error_log "/srv/dockyard/router/logs/error.log"' in text
    assert 'access_log "/srv/dockyard/router/logs/access.log"' in text
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert f'{temp}_temp_path "/srv/dockyard/router/tmp/{temp}";' in text
    assert 'include "/srv/dockyard/router/conf/routes.conf";' in text
    # Every absolute path in the config is under the prefix.
    for path in re.findall(r'"(/[^"]*)"', text):
        assert path.startswith("/srv/dockyard/router/"), path
    assert "user www-data;" in text
    assert "worker_processes auto;" in text


def test_render_main_proxy_defaults():
    text = render_main("/srv/r", PORT, user=None, proxy_read_timeout=90)
    assert "user " not in text.split("events")[0].replace("# ", "")
    for line in (
        "proxy_http_version 1.1;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        "proxy_set_header X-Request-Id $dockyard_request_id;",
        "client_max_body_size 100m;",
        "proxy_read_timeout 90s;",
        "proxy_next_upstream error timeout;",
    ):
        assert line in text
    assert re.search(r'map \$http_upgrade \$connection_upgrade \{\s*default upgrade;\s*"" "";\s*\}', text)


def test_render_main_candidate_routes_file():
    text = render_main("/srv/r", PORT, routes_file="/srv/r/conf/.routes.conf.abc.tmp")
    assert 'include "/srv/r/conf/.routes.conf.abc.tmp";' in text
    assert "conf/routes.conf" not in text.split("include")[-1]


@pytest.mark.parametrize(
    "prefix", ["relative/dir", "/tmp/a b", "/tmp/a;b", '/tmp/a"b', "/tmp/$x", "/tmp/a\nb", "/tmp/{a}"]
)
def test_render_main_refuses_unsafe_prefix(prefix):
    with pytest.raises(RenderError):
        render_main(prefix, PORT)


@pytest.mark.parametrize("kwargs", [{"port": 0}, {"port": 70000}, {"user": "www data"}, {"user": "x;y"}])
def test_render_main_refuses_bad_values(kwargs):
    args = {"prefix": "/srv/r", "port": PORT, **kwargs}
    with pytest.raises(RenderError):
        render_main(**args)
