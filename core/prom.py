"""Prometheus metric families of the platform (pure): their names, types, labels and help,
histogram buckets, and the deltas each process adds to the store's cumulative series.

Every process records what it measures as a `Delta` in the store (counters and histograms
are added to, gauges are set); `GET /metrics` reads them back. A counter therefore keeps
counting across restarts of the process that feeds it and of the API: it starts again from
zero only when its app is destroyed (its series go with it) or, for the instance counters
mirrored from the engine (CPU seconds, restarts), when the instance's container is replaced."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# Seconds; from a static file (5 ms) to nginx's default proxy timeout (60 s).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Seconds a platform step takes: a router reload (~0.1 s) to a reconciler pass over many apps.
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Seconds a build takes: an image deploy (~0 s) to a cold buildpack build (minutes).
BUILD_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0)

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


@dataclass(frozen=True)
class Family:
    name: str            # without a counter's `_total`: prometheus_client adds it
    kind: str            # counter | gauge | histogram
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


_F = [
    Family("dockyard_http_requests", "counter", "Requests the router answered for the app, by status class "
           "(5xx includes nginx's own 502/503/504 when no instance answered)", ("app", "process", "status_class")),
    Family("dockyard_http_request_duration_seconds", "histogram", "Time the app took to answer (the whole "
           "request's time when no instance answered)", ("app", "process"), HTTP_BUCKETS),
    Family("dockyard_http_response_bytes", "counter", "Response bytes sent to clients", ("app", "process")),
    Family("dockyard_instance_cpu_seconds", "counter", "CPU time the instance's container used (resets when "
           "the container is replaced or restarted)", ("app", "process", "dyno")),
    Family("dockyard_instance_memory_bytes", "gauge", "Memory the instance uses, page cache excluded",
           ("app", "process", "dyno")),
    Family("dockyard_instance_memory_limit_bytes", "gauge", "The instance's memory limit", ("app", "process", "dyno")),
    Family("dockyard_instance_restarts", "counter", "Restarts of the instance by the engine after its process "
           "exited (a crash loop)", ("app", "process", "dyno")),
    Family("dockyard_instance_start_time_seconds", "gauge", "Unix time the instance's process started",
           ("app", "process", "dyno")),
    Family("dockyard_reconcile_duration_seconds", "histogram", "Time of one reconciler pass over every app",
           (), STEP_BUCKETS),
    Family("dockyard_reconcile_failures", "counter", "Reconciler steps that failed (see the reconciler's log)",
           ("step",)),
    Family("dockyard_reconcile_last_success_timestamp_seconds", "gauge", "Unix time of the last reconciler "
           "pass in which every step succeeded", ()),
    Family("dockyard_router_reloads", "counter", "Router config applies: ok (reloaded), rejected (nginx "
           "refused the config; the old one keeps serving), failed (the reload itself failed)", ("result",)),
    Family("dockyard_router_reload_duration_seconds", "histogram", "Time nginx took to reload (until its new "
           "workers serve)", (), STEP_BUCKETS),
    Family("dockyard_build_duration_seconds", "histogram", "Time from a build's start to its end, by result",
           ("result",), BUILD_BUCKETS),
    Family("dockyard_builds_pending", "gauge", "Builds started and not finished", ()),
    Family("dockyard_addon_state", "gauge", "1 for the add-on's current state, 0 for the others",
           ("addon", "service", "app", "state")),
    Family("dockyard_drain_lines_sent", "counter", "Log lines delivered to the drain", ("app", "drain")),
    Family("dockyard_drain_lines_dropped", "counter", "Log lines dropped (oldest first) because the drain's "
           "buffer was full", ("app", "drain")),
    Family("dockyard_app_sleeps", "counter", "Times a process type went to sleep after its autosleep window "
           "without a request", ("app", "process")),
    Family("dockyard_app_wakes", "counter", "Wakes of a sleeping app on a request, by result (failed: an "
           "instance did not start or pass its checks; the requests got a 503 naming why)", ("app", "result")),
    Family("dockyard_app_wake_duration_seconds", "histogram", "Time from a request for a sleeping app to its "
           "first instance passing its health check", ("app",), HTTP_BUCKETS),
    Family("dockyard_disk_free_bytes", "gauge", "Free bytes on the filesystem (volume=home: DOCKYARD_HOME; "
           "engine: the engine's data root)", ("volume", "path")),
    Family("dockyard_disk_size_bytes", "gauge", "Size of the filesystem", ("volume", "path")),
]
FAMILIES: dict[str, Family] = {f.name: f for f in _F}
INSTANCE_FAMILIES = ("dockyard_instance_cpu_seconds", "dockyard_instance_memory_bytes",
                     "dockyard_instance_memory_limit_bytes", "dockyard_instance_restarts",
                     "dockyard_instance_start_time_seconds")   # the metrics process's latest readings
ADDON_STATES = ("available", "starting", "crashed", "missing")
RELOAD_RESULTS = ("ok", "rejected", "failed")
BUILD_RESULTS = ("succeeded", "failed")
RECONCILE_STEPS = ("reconcile", "addon_health", "crash_watch", "autosleep", "sweep")


@dataclass
class Delta:
    """What to add to (counter, histogram) or set on (gauge) one series. `app` ties the series
    to an app: it goes when the app goes."""
    family: str
    labels: dict[str, str]
    value: float = 0.0                          # counter: added; gauge: set; histogram: added to _sum
    count: int = 0                              # histogram: observations added
    buckets: dict[str, int] = field(default_factory=dict)   # histogram: upper bound -> observations
    app: str | None = None

    @property
    def key(self) -> str:
        return labels_key(self.labels)


def labels_key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def bucket_of(bounds: tuple[float, ...], value: float) -> str:
    """The smallest bound >= value, as stored ("+Inf" above the last)."""
    for b in bounds:
        if value <= b:
            return repr(b)
    return "+Inf"


def observe(family: str, labels: dict[str, str], seconds: float, app: str | None = None) -> Delta:
    f = FAMILIES[family]
    return Delta(family, labels, max(0.0, seconds), 1, {bucket_of(f.buckets, seconds): 1}, app)


def cumulative(bounds: tuple[float, ...], stored: dict[str, int], count: int) -> list[tuple[str, int]]:
    """Stored per-bucket counts -> Prometheus' cumulative (le, count) pairs ending with +Inf."""
    out, seen = [], 0
    for b in bounds:
        seen += int(stored.get(repr(b), 0))
        out.append((_le(b), seen))
    out.append(("+Inf", count))
    return out


def _le(b: float) -> str:
    return repr(float(b))


def status_class(status: str) -> str | None:
    cls = f"{status[:1]}xx" if len(status) == 3 and status.isdigit() else ""
    return cls if cls in STATUS_CLASSES else None


def request_deltas(reqs: Iterable[dict], process_of: Callable[[str, str], str]) -> list[Delta]:
    """Router requests (accesslog.requests) -> counter and histogram deltas per app and
    process. `process_of(app, upstream)` names the process type that answered."""
    out: dict[tuple[str, str, str], Delta] = {}

    def get(family: str, labels: dict[str, str], app: str) -> Delta:
        k = (family, app, labels_key(labels))
        if k not in out:
            out[k] = Delta(family, labels, app=app)
        return out[k]

    for r in reqs:
        app, proc = r["app"], process_of(r["app"], r["upstream"])
        cls = status_class(r["status"])
        if cls is not None:
            get("dockyard_http_requests", {"app": app, "process": proc, "status_class": cls}, app).value += 1
        get("dockyard_http_response_bytes", {"app": app, "process": proc}, app).value += r["bytes"]
        h = get("dockyard_http_request_duration_seconds", {"app": app, "process": proc}, app)
        seconds = r["ms"] / 1000
        h.value += seconds
        h.count += 1
        b = bucket_of(HTTP_BUCKETS, seconds)
        h.buckets[b] = h.buckets.get(b, 0) + 1
    return list(out.values())


def addon_state(engine_state: str | None) -> str:
    """The engine's container state (None: no container) -> one of ADDON_STATES."""
    if engine_state is None:
        return "missing"
    if engine_state == "running":
        return "available"
    return "starting" if engine_state == "created" else "crashed"


def zero_series(family: str, values: Iterable[str], label: str) -> list[Delta]:
    """Adds nothing but makes each labelled series exist (at 0), so `increase()` sees its first
    event: Prometheus cannot tell how a series that appears at 1 got there."""
    return [Delta(family, {label: v}) for v in values]


def instance_deltas(readings: Iterable[tuple]) -> list[Delta]:
    """(app, process, index, started Unix s, cpu ns, mem, mem limit, restarts, running), one per
    container -> the instance gauges and engine-mirrored counters, one set per dyno: when two
    containers share a dyno name (a rolling restart), the newest one's."""
    newest: dict[tuple, tuple] = {}
    for r in readings:
        k = (r[0], r[1], r[2])
        if k not in newest or r[3] > newest[k][3]:
            newest[k] = r
    out = []
    for (app, proc, idx), r in sorted(newest.items()):
        labels = {"app": app, "process": proc, "dyno": f"{proc}.{idx}"}
        values = [("dockyard_instance_cpu_seconds", r[4] / 1e9), ("dockyard_instance_memory_bytes", r[5]),
                  ("dockyard_instance_memory_limit_bytes", r[6]), ("dockyard_instance_restarts", r[7])]
        if r[8] and r[3]:
            values.append(("dockyard_instance_start_time_seconds", r[3]))
        out += [Delta(family, labels, float(value), app=app) for family, value in values]
    return out
