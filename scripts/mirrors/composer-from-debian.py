#!/usr/bin/env python3
"""Make a Composer artifact repository (a directory of package zips, usable as
DOCKYARD_COMPOSER_REPO) from PHP libraries Debian installed on this machine (php-* packages,
under /usr/share/php), for machines that cannot reach Packagist. Each library becomes
`vendor-name-VERSION.zip` holding a composer.json (name, version, requires, PSR-4 autoload)
and Debian's files (without Debian's own autoload.php: Composer writes the autoloader).

    python3 scripts/mirrors/composer-from-debian.py OUT_DIR

Packages: Slim 3 and what it requires (php-slim php-pimple php-psr-container
php-psr-http-message php-nikic-fast-route)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

SHARE = "/usr/share/php"
# composer name, Debian package, directory under /usr/share/php, namespace, requires, extra autoload files
LIBRARIES = [
    ("slim/slim", "php-slim", "Slim", "Slim\\",
     {"php": ">=5.5.0", "pimple/pimple": "^3.0", "psr/http-message": "^1.0", "nikic/fast-route": "^1.0",
      "psr/container": "^1.0"}, []),
    ("pimple/pimple", "php-pimple", "Pimple", "Pimple\\", {"php": ">=7.2.5", "psr/container": "^1.1 || ^2.0"}, []),
    ("psr/container", "php-psr-container", "Psr/Container", "Psr\\Container\\", {"php": ">=7.4.0"}, []),
    ("psr/http-message", "php-psr-http-message", "Psr/Http/Message", "Psr\\Http\\Message\\", {"php": ">=5.3.0"}, []),
    ("nikic/fast-route", "php-nikic-fast-route", "FastRoute", "FastRoute\\", {"php": ">=5.4.0"}, ["functions.php"]),
]


def debian_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout:
        sys.exit(f"composer-from-debian: {package} is not installed (apt-get install {package})")
    return out.stdout.split(":")[-1].split("-")[0].split("+")[0]


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for name, package, subdir, namespace, requires, files in LIBRARIES:
        version = debian_version(package)
        src = os.path.join(SHARE, subdir)
        meta = {"name": name, "version": version, "type": "library", "require": requires,
                "autoload": {"psr-4": {namespace: "src/"}, **({"files": [f"src/{f}" for f in files]} if files else {})}}
        target = os.path.join(out_dir, f"{name.replace('/', '-')}-{version}.zip")
        with zipfile.ZipFile(target + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("composer.json", json.dumps(meta, indent=2) + "\n")
            for parent, _dirs, names in os.walk(src):
                for n in sorted(names):
                    path = os.path.join(parent, n)
                    rel = os.path.relpath(path, src)
                    if rel == "autoload.php":
                        continue
                    z.write(path, "src/" + rel)
        os.replace(target + ".tmp", target)
        print(f"composer-from-debian: {name} {version}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: composer-from-debian.py OUT_DIR")
    main(sys.argv[1])
