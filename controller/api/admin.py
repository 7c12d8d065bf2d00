"""Platform administration: a backup of the whole platform's state (admins only)."""
import os
import tempfile
from pathlib import Path

from flask import Blueprint, g, send_file

from core.errors import AdminOnly

from controller.admin import backup
from controller.web.common import svc

bp = Blueprint("admin", __name__)


@bp.get("/admin/backup")
def get_backup():
    """The platform's state as one tar.gz (see controller/admin/backup.py), made now, while it runs."""
    if not g.user.is_admin:
        raise AdminOnly("Only an admin may back up the platform: ask one to run `dockyard admin:backup FILE`.")
    s = svc()
    fd, name = tempfile.mkstemp(prefix="backup-", suffix=".tar.gz", dir=s.settings.run_dir)
    os.close(fd)
    path = Path(name)
    try:
        backup.create(s, path)
        handle = open(path, "rb")
    finally:
        path.unlink(missing_ok=True)    # the open handle keeps the data until it is sent
    response = send_file(handle, mimetype="application/gzip", as_attachment=True,
                         download_name=f"dockyard-{s.settings.name}.tar.gz")
    response.call_on_close(handle.close)
    return response
