#!/usr/bin/env bash
# Build the add-on service images on the stack image, without any registry: Debian's own
# packages installed in a container of the stack, then `docker commit`.
#
#   ${DOCKYARD_POSTGRES_IMAGE:-dockyard/postgres:bookworm}  postgresql (Debian bookworm's: 15)
#   ${DOCKYARD_REDIS_IMAGE:-dockyard/redis:bookworm}        redis-server (Debian bookworm's: 7.0)
#
# Each image carries its entrypoint from scripts/services/ and a label with the package version
# (`dockyard.service.version`), which `addons:info` shows, and the hash of its recipe (this script,
# scripts/lib/debian-image.sh and its files, `dockyard.service.recipe`): an image of the same
# recipe is kept, another is rebuilt (--force rebuilds anyway). Needs a running Docker engine and
# the stack image; logs to /var/log/dockyard-build-stack.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${DOCKYARD_STACK_IMAGE:-dockyard/stack:bookworm}"
PG_IMAGE="${DOCKYARD_POSTGRES_IMAGE:-dockyard/postgres:bookworm}"
REDIS_IMAGE="${DOCKYARD_REDIS_IMAGE:-dockyard/redis:bookworm}"
FORCE="${1:-}"

SAY_AS=build-service-images
# shellcheck source=lib/debian-image.sh
. "$ROOT/scripts/lib/debian-image.sh"

require_images "$STACK"

# build IMAGE SERVICE PACKAGE USER ENTRYPOINT PORT [EXTRA_FILE]
build() {
    local image="$1" service="$2" package="$3" user="$4" entry="$5" port="$6" extra="${7:-}"
    # the recipe: this script and the image's files; an image made from another is rebuilt
    local recipe
    recipe="$(recipe_of "${BASH_SOURCE[0]}" "$ROOT/scripts/services/$entry" ${extra:+"$ROOT/scripts/services/$extra"})"
    if [ "$FORCE" != "--force" ] && [ "$(recipe_label "$image" dockyard.service.recipe)" = "$recipe" ]; then
        say "$service: image $image already present (recipe $recipe)"
        return
    fi
    local name="dockyard-build-$service-$$"
    trap "docker rm -f $name >/dev/null 2>&1 || true" RETURN
    SECONDS=0
    say "$service: building $image from $STACK (+ $package)"
    log_header "$image"
    local out
    if ! out="$(run_install "$name" "$STACK" "
            $(apt_install "$package")
            $APT_CLEAN
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
    commit_image "$name" "$image" \
        --change "USER $user" \
        --change "EXPOSE $port" \
        --change 'VOLUME /data' \
        --change "LABEL dockyard.service=$service dockyard.service.version=$version dockyard.service.recipe=$recipe" \
        --change "CMD [\"/usr/local/bin/dockyard-$service\"]" \
        || die "$service: docker commit failed"
    say "$service: built $image ($package $version) in ${SECONDS}s ($(image_size "$image"))"
}

build "$PG_IMAGE" postgres postgresql postgres postgres-entrypoint.sh 5432
build "$REDIS_IMAGE" redis redis-server redis redis-entrypoint.sh 6379 redis-admin.sh
