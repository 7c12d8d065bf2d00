"""Single-host backend: resource readings of app instances.

The engine runs on this host, so CPU time and memory are read from the container's cgroup
files (microseconds, no load on the engine); restarts and start time from one inspect. Where
the cgroup is not found (another cgroup layout), the engine's one-shot stats stand in: they
cost the engine more and answer some containers only after a second."""
from __future__ import annotations

import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import docker
import docker.errors
import requests

from core.models import InstanceStats

from controller.scheduler.docker_engine import DockerEngine
from controller.scheduler.docker_parse import iso
from controller.scheduler.labels import LABEL_APP, LABEL_INSTANCE

# The engine answers each container's stats separately; a few at once hides its latency
# without loading it (the sampler calls this every few seconds).
PARALLEL = 4


def parse_stats(container_id: str, attrs: dict, stats: dict, at: float) -> InstanceStats:
    """Pure: the engine's inspect + one-shot stats documents -> a reading. Memory used is
    the cgroup's usage less its page cache (what `docker stats` shows)."""
    state = attrs.get("State") or {}
    mem = stats.get("memory_stats") or {}
    detail = mem.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", detail.get("cache", 0))) or 0
    usage = max(0, int(mem.get("usage") or 0) - int(cache))
    limit = int((attrs.get("HostConfig") or {}).get("Memory") or mem.get("limit") or 0)
    cpu = int(((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0)
    started = state.get("StartedAt") or ""
    return InstanceStats(container_id=container_id, at=at, cpu_ns=cpu, mem_bytes=usage, mem_limit=limit,
                         restarts=int(attrs.get("RestartCount") or 0),
                         started_at=iso(started) if started and not started.startswith("0001") else "",
                         running=bool(state.get("Running")))


CGROUP = Path("/sys/fs/cgroup")


def _cpu(raw: dict) -> int:
    return int(((raw.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _stat_value(text: str | None, key: str) -> int:
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v)
    return 0


def cgroup_stats(cid: str, parent: str = "", root: Path = CGROUP) -> dict | None:
    """The container's CPU time and memory from its cgroup (v1 cgroupfs, or v2 under the
    systemd or cgroupfs driver), shaped like the engine's stats document; None if not found."""
    parent = (parent or "docker").strip("/")
    usage = _read(root / "cpuacct" / parent / cid / "cpuacct.usage")
    if usage is not None:      # cgroup v1
        mem = root / "memory" / parent / cid
        stat = _read(mem / "memory.stat")
        return {"cpu_stats": {"cpu_usage": {"total_usage": int(usage)}},
                "memory_stats": {"usage": int(_read(mem / "memory.usage_in_bytes") or 0),
                                 "stats": {"total_inactive_file": _stat_value(stat, "total_inactive_file")}}}
    for d in (root / "system.slice" / f"docker-{cid}.scope", root / parent / cid):
        cpu = _read(d / "cpu.stat")
        if cpu is not None:    # cgroup v2
            return {"cpu_stats": {"cpu_usage": {"total_usage": _stat_value(cpu, "usage_usec") * 1000}},
                    "memory_stats": {"usage": int(_read(d / "memory.current") or 0),
                                     "stats": {"inactive_file": _stat_value(_read(d / "memory.stat"), "inactive_file")}}}
    return None


# An instance's restart count and start time change only when it restarts, which also resets
# its cgroup's CPU counter: the inspect behind them is reused until then, or for about this long.
INSPECT_EVERY = 30.0
DATA_ROOT_EVERY = 60.0   # seconds the engine's data root, once read, is reused


def inspect_every(container_id: str) -> float:
    """INSPECT_EVERY spread from half to one and a half times by the container's id: instances
    started together (a platform's start, many apps at once) are not all inspected again in the
    same pass (200 inspections in one pass load the engine while a deploy waits on it)."""
    try:
        share = int(container_id[:4], 16) / 0xFFFF
    except ValueError:
        share = 0.5
    return INSPECT_EVERY * (0.5 + share)


class DockerStats(DockerEngine):
    @property
    def _inspected(self) -> dict[str, tuple[float, dict, int]]:
        """id -> (when inspected, the inspect document, CPU counter at the last reading)."""
        return self.__dict__.setdefault("_inspect_cache", {})

    def _attrs(self, cid: str, fresh: bool) -> dict:
        hit = self._inspected.get(cid)
        if fresh or hit is None or time.monotonic() - hit[0] > inspect_every(cid):
            hit = (time.monotonic(), self.client.api.inspect_container(cid), hit[2] if hit else 0)
            self._inspected[cid] = hit
        return hit[1]

    @staticmethod
    def _cgroup(attrs: dict) -> dict | None:
        if not (attrs.get("State") or {}).get("Running"):
            return None
        return cgroup_stats(attrs.get("Id") or "", (attrs.get("HostConfig") or {}).get("CgroupParent") or "")

    def _one_stats(self, cid: str) -> InstanceStats | None:
        try:
            attrs = self._attrs(cid, fresh=False)
            raw = self._cgroup(attrs)
            if raw is None or _cpu(raw) < self._inspected[cid][2]:   # stopped, restarted, other layout
                attrs = self._attrs(cid, fresh=True)
                if not (attrs.get("State") or {}).get("Running"):
                    return parse_stats(cid, attrs, {}, time.time())
                raw = self._cgroup(attrs)
            if raw is None:
                raw = self.client.api.stats(cid, decode=False, stream=False, one_shot=True)
        except (docker.errors.NotFound, requests.exceptions.RequestException):
            return None
        except docker.errors.APIError:
            return None   # removed between two calls, or the engine is busy: skip this reading
        hit = self._inspected.get(cid)
        if hit is not None:
            self._inspected[cid] = (hit[0], hit[1], _cpu(raw))
        return parse_stats(cid, attrs, raw, time.time())

    def stats(self, container_ids: Iterable[str]) -> dict[str, InstanceStats]:
        ids = list(container_ids)
        for gone in set(self._inspected) - set(ids):
            self._inspected.pop(gone, None)
        if not ids:
            return {}
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(ids)), thread_name_prefix="stats") as pool:
            found = pool.map(self._one_stats, ids)
        return {r.container_id: r for r in found if r is not None}

    def data_root(self) -> str:
        # `info` is one of the engine's slowest answers (it gathers everything it knows), and every
        # build's disk check asks: the root changes only with the engine's configuration, so an
        # answer is reused for a while
        said, root = self.__dict__.get("_data_root", (-DATA_ROOT_EVERY, ""))
        if time.monotonic() - said < DATA_ROOT_EVERY:
            return root
        try:
            root = self.client.info().get("DockerRootDir") or ""
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return ""
        self.__dict__["_data_root"] = (time.monotonic(), root)
        return root

    def disk_usage(self) -> dict:
        try:
            df = self.client.api.df()
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            return {"error": f"the engine did not report disk use ({e.__class__.__name__})"}
        mine = f"{self.config.name}"
        ours = lambda labels: (labels or {}).get(LABEL_INSTANCE) == mine  # noqa: E731
        images = [i for i in df.get("Images") or [] if ours(i.get("Labels"))
                  or self.config.stack_image in (i.get("RepoTags") or [])]
        by_app: dict[str, int] = {}
        for i in images:
            app = (i.get("Labels") or {}).get(LABEL_APP)
            if app:   # an image's own layers (SharedSize counts layers it shares with others once)
                by_app[app] = by_app.get(app, 0) + max(0, int(i.get("Size") or 0) - max(0, int(i.get("SharedSize") or 0)))
        return {"images": sum(int(i.get("Size") or 0) for i in images), "image_count": len(images),
                "images_by_app": by_app,
                "volumes": sum(int((v.get("UsageData") or {}).get("Size") or 0)
                               for v in df.get("Volumes") or [] if ours(v.get("Labels"))),
                "containers": sum(int(c.get("SizeRw") or 0) for c in df.get("Containers") or []
                                  if ours(c.get("Labels")))}
