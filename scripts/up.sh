#!/usr/bin/env bash
# Start the platform in the background (after scripts/install.sh), create the admin
# credentials once, log the CLI in, and print where everything is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY -m controller.daemons.manage bootstrap
$PY -m controller.daemons.supervisor start
# one interpreter for the five settings (each start of Python with the settings costs ~0.2 s)
SETTINGS=$($PY -c 'from controller.settings import from_env; s = from_env(); print(s.home, s.api_url, s.router_port, s.domain, s.router_tls_port, sep="\n")')
{ read -r HOME_DIR; read -r API; read -r ROUTER_PORT; read -r DOMAIN; read -r TLS_PORT; } <<< "$SETTINGS"
.venv/bin/dockyard login --api "$API" --token-file "$HOME_DIR/admin.token"
CLI="$(pwd)/.venv/bin/dockyard"
cat <<MSG

Dockyard is serving.
  API + git:  $API
  Dashboard:  $API/dashboard/   (log in with your token: $CLI auth:token)
  Router:     http://<app>.$DOMAIN:$ROUTER_PORT/
              https://<app>.$DOMAIN:$TLS_PORT/   (trust the platform's CA: $CLI certs:ca > dockyard-ca.pem)
  CLI:        $CLI
  State:      $HOME_DIR (logs in $HOME_DIR/logs)

Deploy an app (any git repo with a Dockerfile at its root):
  cd ~/src/myapp
  $CLI apps:create myapp
  $CLI git:remote -a myapp        # adds the git remote "dockyard" ($API/myapp.git)
  git push dockyard main
  curl http://myapp.$DOMAIN:$ROUTER_PORT/
MSG
