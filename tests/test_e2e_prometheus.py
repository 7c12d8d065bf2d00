"""GET /metrics as Prometheus users see it: Debian's real `prometheus` scrapes a test platform
with the scraper's bearer token every second, an app takes a small bounded load through the
router, and PromQL over Prometheus' HTTP API computes request rates and a p99 from our counters
and histogram; `promtool check metrics` finds the scraped text clean, and no series carries
`exported_instance` (our labels never clash with the target's). The request counter keeps
counting across restarts of the API and of the router that feeds it."""
import os
import signal
import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .conftest import free_port, httpd_app, make_app_repo, start_platform, stop_platform, unique_app, wait_until

pytestmark = pytest.mark.e2e

TOKEN = "prom-" + os.urandom(8).hex()
LOAD_REQUESTS = 400          # bounded: at most this many, within LOAD_SECONDS
LOAD_SECONDS = 25


@pytest.fixture(scope="module")
def plat(tmp_path_factory, busybox_base):
    p = start_platform(tmp_path_factory.mktemp("prom"), DOCKYARD_METRICS_TOKEN=TOKEN, DOCKYARD_METRICS_INTERVAL="1")
    try:
        yield p
    finally:
        stop_platform(p)


@pytest.fixture(scope="module")
def prometheus(plat, tmp_path_factory):
    """The real Prometheus on loopback, scraping the platform's /metrics every second."""
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "token").write_text(TOKEN)
    (tmp / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: dockyard
    authorization:
      credentials_file: {tmp / 'token'}
    static_configs:
      - targets: ['127.0.0.1:{plat.api_port}']
""")
    port = free_port()
    with open(tmp / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), 60, "prometheus to be ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/-/ready", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def query(url: str, promql: str) -> list[dict]:
    r = requests.get(url + "/api/v1/query", params={"query": promql}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "success", r.text
    return r.json()["data"]["result"]


def value(url: str, promql: str) -> float | None:
    found = query(url, promql)
    return float(found[0]["value"][1]) if found else None


def load(plat, app: str) -> int:
    """At most LOAD_REQUESTS requests through the router within LOAD_SECONDS; a few 404s too."""
    sent, deadline = 0, time.monotonic() + LOAD_SECONDS
    with requests.Session() as s:
        while sent < LOAD_REQUESTS and time.monotonic() < deadline:
            path = "/" if sent % 10 else "/missing"
            s.get(f"http://127.0.0.1:{plat.router_port}{path}", headers={"Host": f"{app}.{plat.domain}"}, timeout=10)
            sent += 1
            time.sleep(LOAD_SECONDS / LOAD_REQUESTS / 2)
    return sent


def test_prometheus_computes_rates_and_quantiles_from_our_counters(plat, prometheus, tmp_path):
    app = unique_app("prom")
    repo = make_app_repo(tmp_path / app, httpd_app("hello"), plat)
    plat.cli("apps:create", app, cwd=repo)
    plat.git("push", "dockyard", "main", cwd=repo)
    assert plat.curl(app)[0] == 200
    wait_until(lambda: value(prometheus, 'up{job="dockyard"}') == 1, 60, "Prometheus to scrape /metrics")

    sent = load(plat, app)
    assert sent >= 100
    rate = wait_until(lambda: value(prometheus, f'sum(rate(dockyard_http_requests_total{{app="{app}"}}[1m]))'),
                      30, "a request rate")
    assert rate > 0.5, rate
    by_class = {r["metric"]["status_class"]: float(r["value"][1]) for r in query(
        prometheus, f'sum by (status_class) (increase(dockyard_http_requests_total{{app="{app}"}}[1m]))')}
    assert by_class.get("2xx", 0) > 0 and by_class.get("4xx", 0) > 0, by_class
    p99 = value(prometheus, "histogram_quantile(0.99, sum by (le) "
                            f'(rate(dockyard_http_request_duration_seconds_bucket{{app="{app}"}}[1m])))')
    assert p99 is not None and 0 < p99 <= 1.0, p99      # busybox answers a small page in milliseconds
    assert value(prometheus, f'sum(rate(dockyard_http_response_bytes_total{{app="{app}"}}[1m]))') > 0
    assert value(prometheus, f'sum(dockyard_instance_cpu_seconds_total{{app="{app}",dyno="web.1"}})') is not None
    assert value(prometheus, f'dockyard_instance_memory_bytes{{app="{app}",dyno="web.1"}}') > 0
    assert value(prometheus, 'count(dockyard_reconcile_duration_seconds_count)') == 1
    assert value(prometheus, 'sum(dockyard_build_duration_seconds_count{result="succeeded"})') >= 1
    assert value(prometheus, 'dockyard_disk_free_bytes{volume="home"}') > 0
    assert value(prometheus, 'dockyard_disk_free_bytes{volume="engine"}') > 0
    assert value(prometheus, 'sum(dockyard_router_reloads_total{result="ok"})') >= 1
    assert value(prometheus, 'count({__name__=~"dockyard_.+"})') > 20
    assert query(prometheus, '{__name__=~".+", exported_instance!=""}') == []
    assert query(prometheus, '{__name__=~"dockyard_.+", instance!~"127.0.0.1:[0-9]+"}') == []

    scraped = requests.get(plat.api + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert scraped.status_code == 200
    check = subprocess.run(["promtool", "check", "metrics"], input=scraped.text, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout + check.stderr


def _requests_total(plat, app: str) -> float:
    """The app's request counter summed over its series, as GET /metrics serves it now."""
    text = requests.get(plat.api + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "dockyard_http_requests_total" and s.labels.get("app") == app)


def test_counters_keep_counting_across_a_restart_of_every_process(plat, prometheus, tmp_path):
    app = unique_app("again")
    repo = make_app_repo(tmp_path / app, httpd_app("again"), plat)
    plat.cli("apps:create", app, cwd=repo)
    plat.git("push", "dockyard", "main", cwd=repo)
    for _ in range(20):
        assert plat.curl(app)[0] == 200
    before = wait_until(lambda: _requests_total(plat, app) >= 20 and _requests_total(plat, app), 30, "20 requests")
    version = plat.home / "run" / "supervisor.version"
    stamp = version.stat().st_mtime
    pid = int((plat.home / "run" / "supervisor.pid").read_text().split()[0])
    os.kill(pid, signal.SIGHUP)        # the supervisor restarts every process, one at a time
    wait_until(lambda: version.stat().st_mtime > stamp, 180, "the platform's processes to restart")
    wait_until(lambda: plat.curl(app)[0] == 200, 60, "the app to answer after the restart")
    for _ in range(9):
        assert plat.curl(app)[0] == 200
    after = wait_until(lambda: _requests_total(plat, app) >= before + 10 and _requests_total(plat, app), 30,
                       "the requests after the restart to be counted on top")
    assert after >= before + 10
    # Prometheus, scraping throughout, saw no counter reset across the restart
    wait_until(lambda: (value(prometheus, f'sum(dockyard_http_requests_total{{app="{app}"}})') or 0) >= after, 30,
               "Prometheus to scrape the count after the restart")
    assert value(prometheus, f'sum(resets(dockyard_http_requests_total{{app="{app}"}}[10m]))') == 0
