"""Prometheus series: the pure deltas, the store's cumulative series (a real SQLite file) and
the exposition text GET /metrics renders from them (parsed back, and checked by `promtool`)."""
import json
import subprocess
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.observe import prometheus, sampler
from controller.services import reload_recorder
from controller.store import Store
from core import prom
from core.models import Instance, InstanceStats
from router import accesslog


def _store(tmp_path):
    store = Store(tmp_path / "db")
    store.migrate()
    owner = store.create_user("o")
    store.create_app("shop", owner.id)
    return store


def _reqs():
    line = lambda status, up, t, size: json.dumps({"msec": "120.5", "app": "shop", "status": status, "bytes": size,
                                                     "upstream_time": t, "upstream": up})
    return accesslog.requests([line("200", "127.0.0.1:1", "0.003", "100"), line("200", "127.0.0.1:1", "0.070", "50"),
                               line("503", "", "-", "10"), line("404", "127.0.0.1:2", "2.000", "0")])


def test_requests_become_counters_and_a_histogram_in_seconds():
    deltas = prom.request_deltas(_reqs(), lambda app, up: {"127.0.0.1:2": "api"}.get(up, "web"))
    by = {(d.family, d.key): d for d in deltas}
    two = by[("dockyard_http_requests", prom.labels_key({"app": "shop", "process": "web", "status_class": "2xx"}))]
    assert two.value == 2 and two.app == "shop"
    assert by[("dockyard_http_requests", prom.labels_key({"app": "shop", "process": "web", "status_class": "5xx"}))].value == 1
    assert by[("dockyard_http_requests", prom.labels_key({"app": "shop", "process": "api", "status_class": "4xx"}))].value == 1
    hist = by[("dockyard_http_request_duration_seconds", prom.labels_key({"app": "shop", "process": "web"}))]
    assert hist.count == 3 and abs(hist.value - 0.073) < 1e-9    # the 503 had no upstream: its request_time (0)
    assert hist.buckets == {"0.005": 2, "0.1": 1}
    assert by[("dockyard_http_response_bytes", prom.labels_key({"app": "shop", "process": "web"}))].value == 160
    assert prom.cumulative(prom.HTTP_BUCKETS, hist.buckets, 3)[:4] == [("0.005", 2), ("0.01", 2), ("0.025", 2),
                                                                       ("0.05", 2)]
    assert prom.cumulative(prom.HTTP_BUCKETS, hist.buckets, 3)[-1] == ("+Inf", 3)
    assert prom.bucket_of(prom.HTTP_BUCKETS, 61) == "+Inf" and prom.bucket_of(prom.HTTP_BUCKETS, 0.005) == "0.005"
    assert prom.status_class("499") == "4xx" and prom.status_class("") is None and prom.status_class("600") is None


def test_counters_keep_counting_across_processes_and_go_with_their_app(tmp_path):
    store = _store(tmp_path)
    deltas = prom.request_deltas(_reqs(), lambda app, up: "web")
    store.add_prom(deltas)
    Store(tmp_path / "db").add_prom(deltas)     # another process (or the same one restarted)
    rows = {(r["family"], json.dumps(r["labels"], sort_keys=True)): r for r in Store(tmp_path / "db").prom_series()}
    two = rows[("dockyard_http_requests", json.dumps({"app": "shop", "process": "web", "status_class": "2xx"}))]
    assert two["value"] == 4
    hist = rows[("dockyard_http_request_duration_seconds", json.dumps({"app": "shop", "process": "web"}))]
    assert hist["count"] == 8 and hist["buckets"] == {"0.005": 4, "0.1": 2, "2.5": 2}
    store.add_prom([prom.Delta("dockyard_reconcile_last_success_timestamp_seconds", {}, 5.0)])
    store.add_prom([prom.Delta("dockyard_reconcile_last_success_timestamp_seconds", {}, 7.0)])   # a gauge: set
    assert [r["value"] for r in store.prom_series() if r["family"].endswith("timestamp_seconds")] == [7.0]
    store.delete_app(store.get_app("shop"))
    assert {r["family"] for r in store.prom_series()} == {"dockyard_reconcile_last_success_timestamp_seconds"}
    store.add_prom(deltas)            # the router's last lines of a destroyed app: dropped
    assert len(store.prom_series()) == 1


def test_a_finished_build_is_observed_by_result(tmp_path):
    store = _store(tmp_path)
    app = store.get_app("shop")
    store.finish_build(store.create_build(app, "abc", "dockerfile", "img").id, "succeeded", "")
    store.finish_build(store.create_build(app, "abd", "dockerfile", "img").id, "failed", "", "boom")
    store.create_build(app, "abe", "dockerfile", "img")
    assert store.builds_pending() == 1
    rows = {r["labels"]["result"]: r for r in store.prom_series() if r["family"] == "dockyard_build_duration_seconds"}
    assert rows["succeeded"]["count"] == 1 and rows["failed"]["buckets"] == {"1.0": 1}
    store.delete_app(app)             # build counts are the platform's: they stay
    assert len([r for r in store.prom_series() if r["family"] == "dockyard_build_duration_seconds"]) == 2


def _inst(cid, idx=1, process="web"):
    return Instance(cid, cid, "shop", 1, process, idx, "running", None, 5000, "img")


def _reading(cid, started, cpu_ns, running=True):
    return InstanceStats(cid, 1000.0, cpu_ns, 300, 1 << 20, 2, started, running)


def test_instance_series_mirror_the_engine_one_container_per_dyno(tmp_path):
    store = _store(tmp_path)
    instances = [_inst("old"), _inst("new"), _inst("w", 1, "worker")]
    readings = {"old": _reading("old", "2026-01-01T00:00:00+00:00", 9_000_000_000),
                "new": _reading("new", "2026-01-01T00:05:00+00:00", 500_000_000),
                "w": _reading("w", "2026-01-01T00:00:00+00:00", 0, running=False)}
    store.replace_prom(prom.INSTANCE_FAMILIES, sampler.prom_readings(instances, readings))
    rows = {(r["family"], r["labels"]["dyno"]): r["value"] for r in store.prom_series()}
    assert rows[("dockyard_instance_cpu_seconds", "web.1")] == 0.5          # the newer container of web.1
    assert rows[("dockyard_instance_restarts", "worker.1")] == 2
    assert rows[("dockyard_instance_memory_bytes", "worker.1")] == 0         # not running
    assert ("dockyard_instance_start_time_seconds", "worker.1") not in rows
    assert rows[("dockyard_instance_start_time_seconds", "web.1")] == 1767225900.0
    store.replace_prom(prom.INSTANCE_FAMILIES, sampler.prom_readings([_inst("w", 1, "worker")], readings))
    assert {dyno for _, dyno in ((r["family"], r["labels"]["dyno"]) for r in store.prom_series())} == {"worker.1"}


def _exposition(store) -> str:
    class Fixed:
        def collect(self):
            out = prometheus.stored_families(store.prom_series(), time.time(), 60)
            out["dockyard_addon_state"].add_metric(["postgres-a-1", "postgres", "shop", "available"], 1)
            out["dockyard_drain_lines_sent"].add_metric(["shop", "1"], 12)
            out["dockyard_disk_free_bytes"].add_metric(["home", "/var/lib/dockyard"], 1e9)
            yield from out.values()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    return generate_latest(registry).decode()


def _filled_store(tmp_path):
    store = _store(tmp_path)
    store.add_prom(prom.request_deltas(_reqs(), lambda app, up: "web"))
    prometheus.reconciler_started(store)
    prometheus.record_pass(store, 0.3, ["crash_watch"])
    prometheus.record_pass(store, 0.2, [])
    reload_recorder(store)("ok", 0.12)
    store.finish_build(store.create_build(store.get_app("shop"), "abc", "dockerfile", "img").id, "succeeded", "")
    store.replace_prom(prom.INSTANCE_FAMILIES, sampler.prom_readings(
        [_inst("c")], {"c": _reading("c", "2026-01-01T00:00:00+00:00", 2_500_000_000)}))
    return store


def test_the_exposition_has_base_units_and_no_instance_label(tmp_path):
    text = _exposition(_filled_store(tmp_path))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["dockyard_http_requests"].type == "counter"
    assert families["dockyard_http_request_duration_seconds"].type == "histogram"
    assert 'dockyard_http_requests_total{app="shop",process="web",status_class="2xx"} 2.0' in text
    assert 'dockyard_http_request_duration_seconds_bucket{app="shop",le="0.1",process="web"} 3.0' in text
    assert 'dockyard_http_request_duration_seconds_count{app="shop",process="web"} 4.0' in text
    assert 'dockyard_instance_cpu_seconds_total{app="shop",dyno="web.1",process="web"} 2.5' in text
    assert 'dockyard_reconcile_failures_total{step="crash_watch"} 1.0' in text
    assert 'dockyard_reconcile_failures_total{step="sweep"} 0.0' in text
    assert 'dockyard_router_reloads_total{result="ok"} 1.0' in text
    assert 'dockyard_build_duration_seconds_count{result="succeeded"} 1.0' in text
    assert 'dockyard_build_duration_seconds_count{result="failed"} 0.0' in text
    last = [s.value for s in families["dockyard_reconcile_last_success_timestamp_seconds"].samples]
    assert last and abs(last[0] - time.time()) < 60
    for f in families.values():
        for s in f.samples:
            assert "instance" not in s.labels, s
            assert not s.name.endswith(("_ms", "_percent", "_per_minute")), s


def test_promtool_finds_the_exposition_clean(tmp_path):
    text = _exposition(_filled_store(tmp_path))
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check.stdout + check.stderr


def test_the_example_alerts_are_valid_and_fire_on_dockyards_series():
    from tests.conftest import ROOT
    checked = subprocess.run(["promtool", "check", "rules", str(ROOT / "docs/alerts.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", str(ROOT / "tests/alerts_test.yml")],
                            capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_instance_readings_the_metrics_process_stopped_refreshing_are_left_out(tmp_path):
    store = _filled_store(tmp_path)
    rows = store.prom_series()
    fresh = prometheus.stored_families(rows, time.time(), 60)
    later = prometheus.stored_families(rows, time.time() + 61, 60)
    assert [s.value for s in fresh["dockyard_instance_cpu_seconds"].samples] == [2.5]
    assert later["dockyard_instance_cpu_seconds"].samples == []
    assert later["dockyard_http_requests"].samples == fresh["dockyard_http_requests"].samples   # counts stay


def test_get_metrics_serves_the_store_to_the_scraper_and_admins_only(tmp_path):
    from controller.daemons.webapp import create_app
    from controller.scheduler.memory import MemoryScheduler
    from controller.services import Services
    from controller.settings import Settings
    settings = Settings(home=tmp_path / "home", metrics_token="scrape-me")
    settings.ensure_dirs()
    svc = Services(settings, scheduler=MemoryScheduler())
    svc.store.migrate()
    owner = svc.store.create_user("olga")
    svc.store.create_app("shop", owner.id)
    svc.store.add_token(owner.id, "olgas-token")
    svc.store.add_prom(prom.request_deltas(_reqs(), lambda app, up: "web"))
    client = create_app(settings, svc).test_client()
    assert client.get("/metrics").status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert r.status_code == 200 and r.mimetype == "text/plain", r.data[:500]
    text = r.data.decode()
    assert 'dockyard_http_requests_total{app="shop",process="web",status_class="2xx"} 2.0' in text
    assert f'dockyard_disk_free_bytes{{path="{settings.home}",volume="home"}}' in text
    assert "dockyard_builds_pending 0.0" in text
    assert client.get("/metrics", headers={"Authorization": "Bearer olgas-token"}).status_code == 403   # not an admin
