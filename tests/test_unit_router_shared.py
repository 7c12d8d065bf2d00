"""router.shared through router.render (pure): every app's default hostname is served by a few
shared server blocks, however many apps there are; what differs between apps comes from
`map $host` tables; custom domains, own certificates and own settings keep their own blocks."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from router import render
from router.errors import RenderError
from router.table import Route, RouteOptions, Tls, Upstream, Wake

PORT, TLS_PORT, DOMAIN = 8080, 8443, "apps.test"
PLATFORM = Tls("/srv/tls/platform.crt", "/srv/tls/platform.key")


def app(name: str, *ups: int, **kw) -> Route:
    host = f"{name}.{DOMAIN}"
    return Route(name, (host, *kw.pop("extra", ())), tuple(Upstream("127.0.0.1", p) for p in ups),
                 platform_tls=PLATFORM, platform_hosts=(host,), **kw)


def rendered(routes, **kw) -> str:
    return render.render_routes(routes, PORT, tls_port=TLS_PORT, domain=DOMAIN, **kw)


def blocks(text: str) -> list[str]:
    """Each server block's text (up to its closing brace at column 0)."""
    return re.findall(r"^server \{\n.*?^\}\n", text, flags=re.M | re.S)


def block_for(text: str, host: str) -> str:
    [found] = [b for b in blocks(text) if re.search(rf"server_name [^;]*(?<![\w.-]){re.escape(host)}[ ;]", b)]
    return found


def map_of(text: str, var: str) -> dict[str, str]:
    m = re.search(rf"^map \$host \${var} \{{\n(.*?)^\}}", text, flags=re.M | re.S)
    return dict(line.strip().rstrip(";").split(" ", 1) for line in m.group(1).splitlines()) if m else {}


def test_the_number_of_blocks_and_tls_contexts_does_not_grow_with_the_apps():
    def counts(n):
        text = rendered([app(f"a{i:03d}", 5000 + i) for i in range(n)])
        return len(blocks(text)), text.count("ssl_certificate "), text.count("\nupstream ")
    assert counts(10)[:2] == counts(200)[:2] == (3, 1)     # shared HTTP+HTTPS, the 404 and the TLS refusal
    assert counts(200)[2] == 200                           # upstreams stay one per app (no TLS, no server)


def test_each_default_hostname_maps_to_its_app_and_upstream():
    text = rendered([app("web", 5000), app("api-v2", 5001, 5002)])
    assert map_of(text, "dockyard_shared_app") == {'default': '""', f"web.{DOMAIN}": "web", f"api-v2.{DOMAIN}": "api-v2"}
    assert map_of(text, "dockyard_shared_upstream") == {'default': '""', f"web.{DOMAIN}": "app_web",
                                                        f"api-v2.{DOMAIN}": "app_api_v2"}
    block = block_for(text, f"web.{DOMAIN}")
    assert block == block_for(text, f"api-v2.{DOMAIN}")
    for line in (f"listen 127.0.0.1:{PORT};", f"listen 127.0.0.1:{TLS_PORT} ssl;", f'ssl_certificate "{PLATFORM.cert_path}";',
                 "set $dockyard_app $dockyard_shared_app;", "proxy_pass http://$dockyard_shared_upstream;",
                 "client_max_body_size 100m;", "proxy_read_timeout 60s;", "proxy_next_upstream_timeout 60s;",
                 f"proxy_redirect https://$host:{PORT}/ https://$host:{TLS_PORT}/;",
                 'return 502 "App $dockyard_app is not answering'):
        assert line in block, line
    assert "server 127.0.0.1:5001 max_fails=3" in text and "server 127.0.0.1:5002 max_fails=3" in text


def test_custom_domains_own_certificates_and_own_settings_keep_their_own_blocks():
    own = Tls("/srv/certs/shop.crt", "/srv/certs/shop.key")
    routes = [app("shop", 5000, extra=("www.shop.example",), tls=own), app("slow", 5001,
              options=RouteOptions(read_timeout=120)), app("web", 5002)]
    text = rendered(routes)
    custom = block_for(text, "www.shop.example")
    assert f'ssl_certificate "{own.cert_path}";' in custom and "proxy_pass http://app_shop;" in custom
    assert "set $dockyard_app \"shop\";" in custom
    assert block_for(text, f"shop.{DOMAIN}") == block_for(text, f"web.{DOMAIN}")   # its default name is shared
    slow = block_for(text, f"slow.{DOMAIN}")
    assert "proxy_read_timeout 120s;" in slow and "proxy_pass http://app_slow;" in slow
    assert f"slow.{DOMAIN}" not in map_of(text, "dockyard_shared_app")
    # The app's own certificate covering its default name: that name is served with it, not shared.
    mine = replace(app("mine", 5003, tls=own), platform_hosts=())
    assert f'ssl_certificate "{own.cert_path}";' in block_for(rendered([mine]), f"mine.{DOMAIN}")


def test_maintenance_pages_and_sleeping_apps_each_share_one_block():
    wake = Wake(Upstream("127.0.0.1", 7000), 31)
    routes = [app("m1", 5000, maintenance=True), app("m2", maintenance=True), app("new", deployed=False),
              app("down", scaled=True), app("z1", wake=wake), app("z2", wake=wake)]
    text = rendered(routes)
    maint = block_for(text, f"m1.{DOMAIN}")
    assert maint == block_for(text, f"m2.{DOMAIN}")
    assert 'return 503 "App $dockyard_app is down for maintenance.' in maint and "Retry-After 60" in maint
    pages = map_of(text, "dockyard_shared_page")
    assert set(pages) == {"default", f"new.{DOMAIN}", f"down.{DOMAIN}"}
    assert "has no release yet" in pages[f"new.{DOMAIN}"] and "-a down" in pages[f"down.{DOMAIN}"]
    assert 'return 503 "$dockyard_shared_page";' in block_for(text, f"new.{DOMAIN}")
    asleep = block_for(text, f"z1.{DOMAIN}")
    assert asleep == block_for(text, f"z2.{DOMAIN}")
    assert "proxy_pass http://127.0.0.1:7000;" in asleep and 'X-Dockyard-Wake "$dockyard_app";' in asleep
    assert "proxy_read_timeout 91s;" in asleep and "proxy_next_upstream off;" in asleep
    assert "upstream app_m1" not in text                   # maintenance proxies nothing
    assert len(blocks(text)) == 3 + 2                      # 3 ways of serving, the 404 and the TLS refusal


def test_force_https_redirects_only_the_apps_that_ask_for_it():
    text = rendered([app("secure", 5000, force_https=True), app("web", 5001)])
    assert map_of(text, "dockyard_shared_force_https") == {"default": '""', f"secure.{DOMAIN}": "1"}
    assert '"$dockyard_shared_force_https:$https" $dockyard_shared_to_https' in text
    assert f"return 308 https://$host:{TLS_PORT}$request_uri;" in block_for(text, f"web.{DOMAIN}")
    assert "dockyard_shared_to_https" not in rendered([app("web", 5001)])
    # Without any certificate the setting is refused for that app alone (the router serves it plain).
    no_tls = Route("secure", (f"secure.{DOMAIN}",), (Upstream("127.0.0.1", 5000),), force_https=True)
    with pytest.raises(RenderError) as err:
        rendered([no_tls])
    assert err.value.app == "secure" and "force-https" in err.value.message


def test_without_the_platform_certificate_the_shared_block_is_http_only():
    routes = [Route(n, (f"{n}.{DOMAIN}",), (Upstream("127.0.0.1", 5000),)) for n in ("a", "b")]
    text = rendered(routes)
    assert "ssl" not in block_for(text, f"a.{DOMAIN}") and len(blocks(text)) == 2


def test_without_a_domain_every_app_has_its_own_blocks():
    text = render.render_routes([app("a", 5000), app("b", 5001)], PORT, tls_port=TLS_PORT)
    assert "dockyard_shared" not in text
    assert block_for(text, f"a.{DOMAIN}") != block_for(text, f"b.{DOMAIN}")


def test_the_shared_part_is_blamed_on_no_app_but_upstreams_on_theirs():
    text = rendered([app("one", 5000), app("two", 5001)])
    lines = text.splitlines()
    upstream_line = next(i for i, line in enumerate(lines, 1) if "server 127.0.0.1:5001" in line)
    shared_line = next(i for i, line in enumerate(lines, 1) if "$dockyard_shared_upstream;" in line)
    assert render.app_at_line(text, upstream_line) == "two"
    assert render.app_at_line(text, shared_line) is None


def test_rendering_is_deterministic():
    routes = [app("b", 5001), app("a", 5000, maintenance=True), app("c")]
    assert rendered(routes) == rendered(list(reversed(routes)))
