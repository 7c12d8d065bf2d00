"""The official Heroku CLI (npm `heroku`, pinned and installed by scripts/install.sh), pointed at a
test platform: HEROKU_HOST makes it call Dockyard's API, HEROKU_API_KEY sends a user's token."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import Platform

CLI_DIR = Path(os.environ.get("DOCKYARD_HEROKU_CLI_DIR", "/var/cache/dockyard/heroku-cli"))
CLI = CLI_DIR / "node_modules/.bin/heroku"


def heroku_env(platform: Platform, token: str) -> dict:
    env = dict(platform.env)
    env.update(HEROKU_HOST=platform.api, HEROKU_API_KEY=token,
               # the CLI asks these too: Dockyard answers for both (shipped buildpack names; account
               # notices), so nothing leaves the machine and nothing waits for a lookup to fail
               HEROKU_BUILDPACK_REGISTRY_URL=platform.api, HEROKU_PARTICLEBOARD_URL=platform.api,
               # no update checks, analytics or plugin installs: the CLI talks only to the test platform
               HEROKU_SKIP_ANALYTICS="1", HEROKU_DISABLE_AUTOUPDATE="1", HEROKU_UPDATE_INSTRUCTIONS="none",
               DISABLE_TELEMETRY="true", CI="true", NO_COLOR="1", FORCE_COLOR="0",
               XDG_CACHE_HOME=str(platform.user_home / ".cache"), XDG_DATA_HOME=str(platform.user_home / ".local/share"),
               XDG_CONFIG_HOME=str(platform.user_home / ".config"))
    return env


def heroku(platform: Platform, token: str, *args: str, cwd=None, check: bool = True, timeout: float = 120,
           input: str | None = None) -> subprocess.CompletedProcess:
    """Run `heroku ARGS` as the user whose token is given; raise with both streams when it fails."""
    # in the user's home unless told: in the checkout, `apps:create` would add its git remote there
    proc = subprocess.run([str(CLI), *args], cwd=cwd or platform.user_home, env=heroku_env(platform, token), capture_output=True,
                          text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"heroku {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc
