"""Add-on benchmark: a Postgres add-on with a database of about --mb MB (rows of random hex
made inside the database), then: the time to capture a backup (pg_dump custom format,
streamed out and written atomically), the time to restore it into a fresh add-on, the
backup's size, whether the restored rows match byte for byte, and the idle memory of a
Postgres and a Redis add-on. Runs the platform's own use cases on a throwaway
DOCKYARD_HOME and instance name (no API, no router); never asserts.

    .venv/bin/python bench/addons.py [--mb 100]
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.addons import backups
from controller.addons import ops as addon_ops
from controller.addons import lifecycle as addons
from controller.services import Services  # noqa: E402
from controller.settings import from_env  # noqa: E402
from tests.conftest import run  # noqa: E402

ROW_BYTES = 1000


def _copy_digest(svc, addon) -> tuple[str, int]:
    from io import BytesIO
    out = BytesIO()
    att = addon_ops.owner_attachment(svc, addon)
    code, _ = svc.scheduler.service_exec(
        addon.name, ["psql", "-h", "/tmp", "-U", att.user, "-d", addon.credentials["database"], "-X", "-q", "-c",
                     "COPY (SELECT id, payload FROM items ORDER BY id) TO STDOUT"], stdout=out)
    data = out.getvalue()
    return hashlib.sha256(data).hexdigest(), len(data)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="dockyard-bench-addons-"))
    name = f"dyb{int(time.time()) % 100000}"
    s = from_env({"DOCKYARD_HOME": str(home), "DOCKYARD_NAME": name})
    s.ensure_dirs()
    svc = Services(s)
    svc.store.migrate()
    app = svc.store.create_app("benchapp", None)
    say = lambda line: None  # noqa: E731
    try:
        t = time.monotonic()
        pg = addons.create(svc, app, "postgres", None, "bench", say)
        print(f"create postgres add-on: {time.monotonic() - t:.1f} s")
        time.sleep(5)
        print(f"idle memory, postgres: {svc.scheduler.service_memory(pg.name) / 2**20:.1f} MiB "
              f"(limit {pg.memory_mb} MB)")
        rows = args.mb * 2**20 // ROW_BYTES
        owner = addon_ops.owner_attachment(svc, pg).user
        t = time.monotonic()
        addon_ops.run_sql(svc, pg, f"SET ROLE {owner};\n"
                          "CREATE TABLE items (id bigserial PRIMARY KEY, payload text NOT NULL);\n"
                          f"INSERT INTO items (payload) SELECT string_agg(md5(random()::text || g || k), '') "
                          f"FROM generate_series(1, {rows}) g, generate_series(1, {ROW_BYTES // 32}) k GROUP BY g;\n",
                          pg.credentials["database"])
        addon_ops.run_sql(svc, pg, "VACUUM ANALYZE items;\n", pg.credentials["database"])   # as autovacuum would
        size = addon_ops.usage(svc, pg)["size_bytes"]
        print(f"filled: {rows} rows of {ROW_BYTES} B, database size {size / 2**20:.0f} MiB "
              f"in {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        backup = backups.capture(svc, pg, "bench", say)
        print(f"backup (pg_dump -Fc): {time.monotonic() - t:.1f} s, file {backup.size / 2**20:.1f} MiB")
        t = time.monotonic()
        new = addons.restore(svc, app, backup.name, app.name, "RESTORED", "bench", say)
        print(f"restore into a fresh add-on (incl. its creation): {time.monotonic() - t:.1f} s")
        a, b = _copy_digest(svc, pg), _copy_digest(svc, new)
        print(f"byte for byte: {'same' if a == b else 'DIFFERENT'} ({a[1] / 2**20:.1f} MiB of COPY output)")
        rd = addons.create(svc, app, "redis", None, "bench", say)
        time.sleep(5)
        print(f"idle memory, redis: {svc.scheduler.service_memory(rd.name) / 2**20:.1f} MiB (limit {rd.memory_mb} MB)")
    finally:
        for addon in svc.store.list_addons():
            svc.scheduler.remove_service(addon.name)
        run(["rm", "-rf", str(home)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
