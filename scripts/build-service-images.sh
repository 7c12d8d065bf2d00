#!/usr/bin/env bash
# Build the add-on service images on the stack image, without any registry: Debian's own
# packages installed in a container of the stack, then `docker commit`.
#
#   ${DOCKYARD_POSTGRES_IMAGE:-dockyard/postgres:bookworm}  postgresql (Debian bookworm's: 15)
#   ${DOCKYARD_REDIS_IMAGE:-dockyard/redis:bookworm}        redis-server (Debian bookworm's: 7.0)
#
# Each image carries its entrypoint from scripts/services/ and a label with the package version
# (`dockyard.service.version`), which `addons:info` shows, and the hash of its recipe (this script
# and its files, `dockyard.service.recipe`): an image of the same recipe is kept, another is
# rebuilt (--force rebuilds anyway). Needs a running Docker engine and the stack image; logs to
# /var/log/dockyard-build-stack.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${DOCKYARD_STACK_IMAGE:-dockyard/stack:bookworm}"
PG_IMAGE="${DOCKYARD_POSTGRES_IMAGE:-dockyard/postgres:bookworm}"
REDIS_IMAGE="${DOCKYARD_REDIS_IMAGE:-dockyard/redis:bookworm}"
LOG=/var/log/dockyard-build-stack.log
FORCE="${1:-}"

say() { printf 'build-service-images: %s\n' "$*"; }
die() { printf 'build-service-images: ERROR: %s\n' "$*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "the Docker engine is not answering (scripts/install.sh starts it)"
docker image inspect "$STACK" >/dev/null 2>&1 || die "the stack image $STACK is missing (scripts/build-stack.sh builds it)"

mounts=()
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    mounts+=(-v /etc/apt/sources.list.d/debian.sources:/etc/apt/sources.list.d/debian.sources:ro)
    mounts+=(-v /dev/null:/etc/apt/sources.list:ro)
elif [ -r /etc/apt/sources.list ]; then
    mounts+=(-v /etc/apt/sources.list:/etc/apt/sources.list:ro)
fi

# build IMAGE SERVICE PACKAGE USER ENTRYPOINT PORT [EXTRA_FILE]
build() {
    local image="$1" service="$2" package="$3" user="$4" entry="$5" port="$6" extra="${7:-}"
    # the recipe: this script and the image's files; an image made from another is rebuilt
    local recipe have
    recipe="$(cat "${BASH_SOURCE[0]}" "$ROOT/scripts/services/$entry" ${extra:+"$ROOT/scripts/services/$extra"} \
              | sha256sum | cut -c1-16)"
    have="$(docker image inspect -f '{{ index .Config.Labels "dockyard.service.recipe" }}' "$image" 2>/dev/null || true)"
    if [ "$FORCE" != "--force" ] && [ "$have" = "$recipe" ]; then
        say "$service: image $image already present (recipe $recipe)"
        return
    fi
    local name="dockyard-build-$service-$$"
    trap "docker rm -f $name >/dev/null 2>&1 || true" RETURN
    SECONDS=0
    say "$service: building $image from $STACK (+ $package)"
    printf '\n==== %s build-service-images %s\n' "$(date -Is)" "$image" >> "$LOG"
    local out
    if ! out="$(docker run --name "$name" "${mounts[@]}" -e DEBIAN_FRONTEND=noninteractive "$STACK" /bin/sh -ec "
            apt-get -o Acquire::Check-Valid-Until=false -o Acquire::Languages=none update -q
            apt-get install -y -q --no-install-recommends $package
            apt-get clean
            rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /tmp/* /var/tmp/*
            install -d -o $user -g $user -m 700 /data
            echo version=\$(dpkg-query -W -f='\${Version}' $package)
        " 2>&1)"; then
        printf '%s\n' "$out" >> "$LOG"
        tail -n 25 "$LOG" >&2 || true
        die "$service: installing $package failed; full log in $LOG"
    fi
    printf '%s\n' "$out" >> "$LOG"
    local version
    version="$(printf '%s\n' "$out" | sed -n 's/^version=//p' | tail -n 1)"
    [ -n "$version" ] || die "$service: could not read the version of $package; see $LOG"
    docker cp "$ROOT/scripts/services/$entry" "$name:/usr/local/bin/dockyard-$service" >/dev/null
    if [ -n "$extra" ]; then
        docker cp "$ROOT/scripts/services/$extra" "$name:/usr/local/bin/dockyard-${extra%.sh}" >/dev/null
    fi
    docker commit \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "USER $user" \
        --change "EXPOSE $port" \
        --change 'VOLUME /data' \
        --change "LABEL dockyard.service=$service dockyard.service.version=$version dockyard.service.recipe=$recipe" \
        --change "CMD [\"/usr/local/bin/dockyard-$service\"]" \
        "$name" "$image" >/dev/null || die "$service: docker commit failed"
    local size
    size="$(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
    say "$service: built $image ($package $version) in ${SECONDS}s ($size)"
}

build "$PG_IMAGE" postgres postgresql postgres postgres-entrypoint.sh 5432
build "$REDIS_IMAGE" redis redis-server redis redis-entrypoint.sh 6379 redis-admin.sh
