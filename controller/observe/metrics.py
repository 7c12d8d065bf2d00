"""Metrics read side: an app's series (instances and requests, with its release lines), the
platform view for admins, and the Prometheus collector. Views call these and render."""
from __future__ import annotations

import os
import re
import shutil
import time
from datetime import datetime, timezone

from core import latency
from core.errors import BadRequest
from core.numbers import whole_number
from core.models import App

from controller.services import Services

_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SINCE = 7 * 86400


def parse_since(text: str | None, default: str = "1h") -> int:
    """`30m`, `1h`, `2d` -> seconds (at most 7 days), or BadRequest naming the form."""
    m = _SINCE.match((text or default).strip())
    message = f"since={str(text)[:20]!r} is not a duration: use e.g. 30m, 1h, 24h or 7d."
    if not m:
        raise BadRequest(message)
    return min(MAX_SINCE, whole_number(m.group(1), "since", 1, message=message) * _UNIT[m.group(2)])


def request_rows(minutes: list[dict]) -> list[dict]:
    """Pure: stored request minutes -> one row per minute and release with percentiles."""
    return [{"minute": m["minute"], "version": m["version"], "requests": m["requests"],
             "s2xx": m["s2xx"], "s3xx": m["s3xx"], "s4xx": m["s4xx"], "s5xx": m["s5xx"], "bytes": m["bytes"],
             "p50_ms": latency.percentile(m["hist"], 0.50), "p95_ms": latency.percentile(m["hist"], 0.95),
             "p99_ms": latency.percentile(m["hist"], 0.99)} for m in minutes]


def summary(samples: list[dict], reqs: list[dict], minutes: list[dict], since: int) -> dict:
    """Pure: the latest reading per instance and request totals over the window."""
    latest: dict[str, dict] = {}
    for s in samples:
        latest[f"{s['process']}.{s['idx']}"] = s
    hist: dict[str, int] = {}
    for m in minutes:
        latency.merge(hist, m["hist"])
    total = sum(r["requests"] for r in reqs)
    return {
        "instances": [{"instance": k, "cpu_percent": v["cpu"], "memory_bytes": v["mem"],
                       "memory_limit_bytes": v["mem_limit"], "restarts": v["restarts"], "uptime_s": v["uptime"]}
                      for k, v in sorted(latest.items())],
        "requests": total, "requests_per_minute": round(total / max(1, since / 60), 2),
        **{k: sum(r[k] for r in reqs) for k in ("s2xx", "s3xx", "s4xx", "s5xx", "bytes")},
        "p50_ms": latency.percentile(hist, 0.5), "p95_ms": latency.percentile(hist, 0.95),
        "p99_ms": latency.percentile(hist, 0.99),
    }


def request_minutes(svc: Services, app: App, since: int) -> list[dict]:
    """The app's per-minute request counts since the Unix time `since`, oldest first."""
    return svc.store.request_minutes(app, since)


def app_metrics(svc: Services, app: App, since: int, process: str | None = None) -> dict:
    start = int(time.time()) - since
    samples = svc.store.samples(app, start, process)
    minutes = svc.store.request_minutes(app, start)
    reqs = request_rows(minutes)
    releases = [{"version": r.version, "created_at": r.created_at, "description": r.description}
                for r in svc.store.list_releases(app) if r.created_at >= _iso(start)]
    return {"app": app.name, "since_s": since, "process": process,
            "summary": summary(samples, reqs, minutes, since),
            "samples": [dict(s, instance=f"{s['process']}.{s['idx']}") for s in samples],
            "requests": reqs, "releases": releases}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds")


def host_usage(path) -> dict:
    """The host's CPU load, memory and the platform disk's use (from /proc and statvfs)."""
    mem = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, v = line.split(":", 1)
                mem[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    disk = shutil.disk_usage(path)
    return {"cpus": os.cpu_count(), "load_1m": os.getloadavg()[0],
            "memory_total_bytes": mem.get("MemTotal", 0),
            "memory_used_bytes": mem.get("MemTotal", 0) - mem.get("MemAvailable", 0),
            "disk_total_bytes": disk.total, "disk_used_bytes": disk.used}


def platform_metrics(svc: Services) -> dict:
    """Admin view: the host, the engine's disk use, each app's share of CPU and memory now."""
    now = int(time.time())
    apps = []
    for app in svc.store.list_apps():
        s = summary(svc.store.samples(app, now - 60), [], [], 60)
        apps.append({"app": app.name, "instances": len(s["instances"]),
                     "cpu_percent": round(sum(i["cpu_percent"] for i in s["instances"]), 2),
                     "memory_bytes": sum(i["memory_bytes"] for i in s["instances"])})
    host = host_usage(svc.settings.home)
    engine = svc.scheduler.disk_usage()
    for a in apps:
        a["image_bytes"] = (engine.get("images_by_app") or {}).get(a["app"], 0)
        a["memory_share"] = round(a["memory_bytes"] / host["memory_total_bytes"], 4) if host["memory_total_bytes"] else 0
        a["cpu_share"] = round(a["cpu_percent"] / (100 * (host["cpus"] or 1)), 4)
    return {"host": host, "engine": engine, "apps": apps,
            "samples_stored": svc.store.sample_count()}
