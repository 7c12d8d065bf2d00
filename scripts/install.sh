#!/usr/bin/env bash
# Dockyard machine setup: everything the platform needs on a fresh Debian bookworm host.
#
#   1. system packages (apt, only the missing ones)
#   2. the Docker engine (started in the background when not answering)
#   3. the Python venv in .venv with the project installed editable (+ test extras)
#   4. the stack image ($DOCKYARD_STACK_IMAGE, built by scripts/build-stack.sh when absent)
#   5. the build image for buildpacks ($DOCKYARD_BUILD_IMAGE, scripts/build-build-stack.sh when absent)
#   6. the cluster node image (make cluster: Docker-in-Docker nodes), and the build sandbox image on it
#   7. more stacks, one per Debian suite in $DOCKYARD_EXTRA_STACKS (e.g. "trixie sid": Python 3.13,
#      3.14, 3.15); without it, a build whose app asks for such a Python builds its stack once
#   8. the machine-wide runtime cache directory ($DOCKYARD_RUNTIMES_DIR: Go and Node.js toolchains)
#   9. the add-on service images (Postgres, Redis: scripts/build-service-images.sh, when absent or stale)
#  10. the Ruby, PHP and Java stacks (scripts/build-lang-stacks.sh, when absent or stale)
#  11. test tools from npm: the official Heroku CLI, pinned ($DOCKYARD_HEROKU_CLI_DIR), which the
#      compatibility tests drive against a real instance
#
# Idempotent: every step prints one line saying what it did or that it was already done.
# Runs as root (apt, dockerd). Called by `make up` and by .ci/run; works from any directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STACK_IMAGE="${DOCKYARD_STACK_IMAGE:-dockyard/stack:bookworm}"
DOCKERD_LOG=/var/log/dockyard-dockerd.log
DOCKERD_WAIT="${DOCKYARD_DOCKERD_WAIT:-60}"
PYTHON="${DOCKYARD_PYTHON:-python3}"
# chromium + chromium-driver: the dashboard's browser tests (Selenium drives headless Chromium);
# docker-registry: the local image registry cluster nodes pull from;
# prometheus: the metrics tests scrape GET /metrics with the real server and check it with promtool;
# the rest: Debian's Ruby, PHP and Java libraries that scripts/mirrors/ turn into the local gem,
# Composer and Maven mirrors the language tests build with (this machine reaches no language
# registry but PyPI and npm)
PACKAGES=(docker.io nginx git debootstrap busybox-static openssh-server curl ca-certificates wrk chromium chromium-driver docker-registry prometheus
          ruby ruby-sinatra ruby-webrick php-slim maven libjetty9-java libmaven-shade-plugin-java libmaven-jar-plugin-java
          libmaven-compiler-plugin-java libmaven-resources-plugin-java libsurefire-java libmaven-install-plugin-java)

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get and dockerd need it)"

# One install at a time on a machine (two engines started at once would fight over
# /var/run/docker.pid). fd 9 is closed for dockerd so the engine does not keep the lock.
LOCK=/var/lock/dockyard-install.lock
exec 9>"$LOCK"
if ! flock -n 9; then
    say "waiting for another install.sh to finish (lock $LOCK)"
    flock -w 1800 9 || die "timed out waiting for $LOCK"
fi

# ---------------------------------------------------------------- 1. system packages
missing=()
for p in "${PACKAGES[@]}"; do
    # dpkg -s succeeds for removed-but-not-purged packages too: check the status word.
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    say "packages: already installed (${PACKAGES[*]})"
else
    say "packages: installing ${missing[*]}"
    # No systemd here; keep the packages' init scripts (nginx on :80, sshd, docker) from
    # starting services during the install: a policy-rc.d that says "no" (101) while apt runs.
    policy_made=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, from dockyard scripts/install.sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_made=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
    if [ -n "$policy_made" ]; then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    say "packages: installed ${missing[*]}"
fi
[ -x /bin/busybox ] || die "/bin/busybox missing although busybox-static is installed"
# The Debian nginx service is never started by us: the router runs its own nginx with its
# own prefix. A stock master someone else started is left alone, only reported.
if pgrep -f '^nginx: master process /usr/sbin/nginx( -g .*)?$' >/dev/null 2>&1; then
    say "note: a stock Debian nginx master is running (left alone; Dockyard runs its own nginx)"
fi

# The unprivileged user that git-over-SSH sessions run as (controller/sshd.py): no password,
# no shell login (its keys are forced commands only), no access to the platform's state.
if id -u git >/dev/null 2>&1; then
    say "ssh: system user git already exists"
else
    useradd --system --user-group --shell /bin/sh --home-dir /var/lib/dockyard-git --create-home \
        --comment "Dockyard git over SSH" git || die "useradd git failed"
    # '*' (no password can match) rather than '!' (locked): sshd refuses locked accounts
    # even for public keys when it runs without PAM.
    usermod -p '*' git || die "usermod -p '*' git failed"
    say "ssh: created the system user git (git over SSH sessions run as it)"
fi

# ---------------------------------------------------------------- 2. Docker engine
if docker info >/dev/null 2>&1; then
    say "docker: engine already running ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
else
    pid=""
    if [ -f /var/run/docker.pid ]; then
        pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
            say "docker: removing stale /var/run/docker.pid (pid '${pid}' is gone)"
            rm -f /var/run/docker.pid
            pid=""
        fi
    fi
    start_dockerd() {
        command -v dockerd >/dev/null 2>&1 || die "dockerd not found (package docker.io)"
        # a dockerd that was stopping leaves its containerd to finish; a new one must not race it
        local cpid
        cpid="$(cat /var/run/docker/containerd/containerd.pid 2>/dev/null || true)"
        if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then
            say "docker: waiting for the previous engine's containerd (pid $cpid) to exit"
            for _ in $(seq 1 120); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.5; done
        fi
        # An engine this script starts is the platform's: its default bridge carries no traffic
        # between containers, so app containers can join it instead of a network of their own,
        # whose per-container DNS resolver costs each start 0.1 s (core/isolation.py). An
        # operator's own daemon.json is left as it is.
        if [ ! -e /etc/docker/daemon.json ]; then
            mkdir -p /etc/docker
            printf '{"icc": false}\n' > /etc/docker/daemon.json.tmp && mv /etc/docker/daemon.json.tmp /etc/docker/daemon.json \
                || die "could not write /etc/docker/daemon.json"
            say "docker: wrote /etc/docker/daemon.json (icc off on the default bridge)"
        fi
        printf '\n==== %s dockerd started by dockyard install.sh\n' "$(date -Is)" >> "$DOCKERD_LOG"
        setsid nohup dockerd >> "$DOCKERD_LOG" 2>&1 < /dev/null 9>&- &
        pid=$!
        started_by_us=1
        say "docker: started dockerd (pid $pid, log $DOCKERD_LOG)"
    }
    started_by_us=0
    if [ -n "$pid" ]; then
        say "docker: dockerd (pid $pid) is running but not answering; waiting for it (it may be stopping)"
    else
        start_dockerd
    fi
    t0=$SECONDS
    until docker info >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            if [ "$started_by_us" = 0 ]; then   # it was shutting down, not starting: start a new one
                say "docker: dockerd (pid $pid) exited; starting a new one"
                start_dockerd
                t0=$SECONDS
                continue
            fi
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            die "dockerd exited; see $DOCKERD_LOG"
        fi
        if [ $((SECONDS - t0)) -ge "$DOCKERD_WAIT" ]; then
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            die "docker engine did not answer within ${DOCKERD_WAIT}s; see $DOCKERD_LOG"
        fi
        sleep 0.5
    done
    say "docker: engine up after $((SECONDS - t0))s ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
fi
icc="$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.enable_icc"}}' 2>/dev/null || true)"
if [ "$icc" != "false" ]; then
    say "docker: the default bridge lets containers reach each other, so app containers join a bridge of the" \
        "platform's own (each start about 0.1 s slower); to use the default bridge, set \"icc\": false in" \
        "/etc/docker/daemon.json and restart the engine (containers on it then no longer reach each other)"
fi

# ---------------------------------------------------------------- 3. Python venv
venv_ok() { [ -x .venv/bin/python ] && .venv/bin/python -c 'import sys' >/dev/null 2>&1; }
if venv_ok; then
    say "venv: .venv already exists"
else
    if [ -e .venv ]; then
        say "venv: .venv is broken (its python does not run); recreating it"
        rm -rf .venv
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    "$PYTHON" -m venv .venv || die "'$PYTHON -m venv .venv' failed (Debian: apt-get install python3-venv)"
    say "venv: created .venv with $("$PYTHON" --version 2>&1)"
fi
# pip's host-wide configuration (pip config list) is used as it is.
if [ ! -e .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
    say "venv: pip install -e '.[test]'"
    t0=$SECONDS
    .venv/bin/python -m pip install -q -e '.[test]' || die "pip install -e '.[test]' failed"
    touch .venv/.installed
    say "venv: installed the project in $((SECONDS - t0))s (CLI: .venv/bin/dockyard)"
else
    say "venv: project already installed (.venv/.installed newer than pyproject.toml)"
fi

# ---------------------------------------------------------------- 4. stack image
if docker image inspect "$STACK_IMAGE" >/dev/null 2>&1; then
    say "stack: image $STACK_IMAGE already present"
else
    say "stack: image $STACK_IMAGE missing; building it with scripts/build-stack.sh"
    DOCKYARD_STACK_IMAGE="$STACK_IMAGE" bash scripts/build-stack.sh 9>&- || die "scripts/build-stack.sh failed"
    say "stack: built $STACK_IMAGE"
fi

# ---------------------------------------------------------------- 5. build image (buildpacks)
BUILD_IMAGE="${DOCKYARD_BUILD_IMAGE:-dockyard/build-stack:bookworm}"
if docker image inspect "$BUILD_IMAGE" >/dev/null 2>&1; then
    say "build image: $BUILD_IMAGE already present"
else
    say "build image: $BUILD_IMAGE missing; building it with scripts/build-build-stack.sh"
    DOCKYARD_STACK_IMAGE="$STACK_IMAGE" DOCKYARD_BUILD_IMAGE="$BUILD_IMAGE" bash scripts/build-build-stack.sh 9>&- \
        || die "scripts/build-build-stack.sh failed"
    say "build image: built $BUILD_IMAGE"
fi

# ---------------------------------------------------------------- 6. cluster node image (make cluster)
NODE_IMAGE="${DOCKYARD_NODE_IMAGE:-dockyard/node:bookworm}"
if docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
    say "node image: $NODE_IMAGE already present"
else
    say "node image: $NODE_IMAGE missing; building it with scripts/cluster.sh image"
    DOCKYARD_STACK_IMAGE="$STACK_IMAGE" DOCKYARD_NODE_IMAGE="$NODE_IMAGE" bash scripts/cluster.sh image 9>&- \
        || die "scripts/cluster.sh image failed"
    say "node image: built $NODE_IMAGE"
fi

# ---------------------------------------------------------------- 6b. build sandbox image
# Tenants' Dockerfiles build in a sandbox of this image (controller/scheduler/docker_sandbox.py);
# the script keeps an image of the same recipe.
DOCKYARD_NODE_IMAGE="$NODE_IMAGE" bash scripts/build-sandbox-image.sh 9>&- | sed 's/^build-sandbox-image: /install: sandbox image: /' \
    || die "scripts/build-sandbox-image.sh failed"

# ---------------------------------------------------------------- 7. more stacks
for suite in ${DOCKYARD_EXTRA_STACKS:-}; do
    if docker image inspect "dockyard/stack:$suite" "dockyard/build-stack:$suite" >/dev/null 2>&1; then
        say "stack $suite: dockyard/stack:$suite and dockyard/build-stack:$suite already present"
        continue
    fi
    say "stack $suite: building dockyard/stack:$suite and dockyard/build-stack:$suite"
    if ! docker image inspect "dockyard/stack:$suite" >/dev/null 2>&1; then
        DOCKYARD_STACK_SUITE="$suite" DOCKYARD_STACK_IMAGE="dockyard/stack:$suite" bash scripts/build-stack.sh 9>&- \
            || die "scripts/build-stack.sh ($suite) failed"
    fi
    DOCKYARD_STACK_SUITE="$suite" DOCKYARD_STACK_IMAGE="dockyard/stack:$suite" DOCKYARD_BUILD_IMAGE="dockyard/build-stack:$suite" \
        bash scripts/build-build-stack.sh 9>&- || die "scripts/build-build-stack.sh ($suite) failed"
    say "stack $suite: built"
done

# ---------------------------------------------------------------- 8. runtime cache
RUNTIMES_DIR="${DOCKYARD_RUNTIMES_DIR:-/var/cache/dockyard/runtimes}"
if [ -d "$RUNTIMES_DIR" ]; then
    say "runtimes: $RUNTIMES_DIR already exists ($(ls "$RUNTIMES_DIR"/go "$RUNTIMES_DIR"/node 2>/dev/null | grep -c '^[0-9]') toolchains installed)"
else
    install -d -m 755 "$RUNTIMES_DIR" || die "mkdir $RUNTIMES_DIR failed"
    say "runtimes: created $RUNTIMES_DIR (Go and Node.js toolchains are installed there on first use)"
fi

# ---------------------------------------------------------------- 9. add-on service images
# Each line it prints says whether an image was already there (same recipe) or was built.
DOCKYARD_STACK_IMAGE="$STACK_IMAGE" bash scripts/build-service-images.sh 9>&- | sed 's/^build-service-images: /install: add-on image: /' \
    || die "scripts/build-service-images.sh failed"

# ---------------------------------------------------------------- 10. language stacks
DOCKYARD_STACK_IMAGE="$STACK_IMAGE" DOCKYARD_BUILD_IMAGE="$BUILD_IMAGE" bash scripts/build-lang-stacks.sh 9>&- \
    | sed 's/^build-lang-stacks: /install: language stack: /' || die "scripts/build-lang-stacks.sh failed"

# ---------------------------------------------------------------- 11. test tools (npm)
HEROKU_CLI_VERSION=11.10.0
HEROKU_CLI_DIR="${DOCKYARD_HEROKU_CLI_DIR:-/var/cache/dockyard/heroku-cli}"
if [ "$(cat "$HEROKU_CLI_DIR/.version" 2>/dev/null)" = "$HEROKU_CLI_VERSION" ] && [ -x "$HEROKU_CLI_DIR/node_modules/.bin/heroku" ]; then
    say "heroku CLI: $HEROKU_CLI_VERSION already installed in $HEROKU_CLI_DIR"
else
    command -v npm >/dev/null 2>&1 || { apt-get install -y -q nodejs npm >/dev/null || die "apt-get install nodejs npm failed"; }
    say "heroku CLI: installing heroku@$HEROKU_CLI_VERSION from npm into $HEROKU_CLI_DIR"
    t0=$SECONDS
    install -d -m 755 "$HEROKU_CLI_DIR"
    npm install --silent --no-audit --no-fund --prefix "$HEROKU_CLI_DIR" "heroku@$HEROKU_CLI_VERSION" >/dev/null 9>&- \
        || die "npm install heroku@$HEROKU_CLI_VERSION failed (the npm registry must be reachable)"
    echo "$HEROKU_CLI_VERSION" > "$HEROKU_CLI_DIR/.version"
    say "heroku CLI: installed in $((SECONDS - t0))s"
fi

say "done"
