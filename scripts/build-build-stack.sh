#!/usr/bin/env bash
# Build the Dockyard BUILD image (like Heroku's heroku-22-build): the run stack plus the
# compilers buildpacks need. Buildpacks' bin/detect, bin/compile and bin/release run in a
# container of this image; the app itself runs on the (smaller) run stack.
#
#   suite:   ${DOCKYARD_STACK_SUITE:-bookworm} (bookworm, trixie or sid: see build-stack.sh)
#   image:   ${DOCKYARD_BUILD_IMAGE:-dockyard/build-stack:<suite>}
#   from:    ${DOCKYARD_STACK_IMAGE:-dockyard/stack:<suite>} (left as it is)
#   adds:    build-essential python3-dev busybox-static git (+ golang-go nodejs npm on bookworm;
#            python3.14-dev python3.15-dev on sid)
#   apt:     inside a container of the stack (bookworm: with the host's apt sources bind-mounted
#            read-only; other suites: the stack's own sources.list from debootstrap), then
#            `docker commit`. Nothing is pulled from an image registry.
#
# Needs a running Docker engine and the stack image. Logs to /var/log/dockyard-build-stack.log.
set -euo pipefail

SUITE="${DOCKYARD_STACK_SUITE:-bookworm}"
STACK="${DOCKYARD_STACK_IMAGE:-dockyard/stack:$SUITE}"
IMAGE="${DOCKYARD_BUILD_IMAGE:-dockyard/build-stack:$SUITE}"
PACKAGES="build-essential python3-dev busybox-static git"
case "$SUITE" in
    bookworm) PACKAGES="$PACKAGES golang-go nodejs npm" ;;
    sid) PACKAGES="$PACKAGES python3.14-dev python3.15-dev" ;;
esac
LOG=/var/log/dockyard-build-stack.log

say() { printf 'build-build-stack: %s\n' "$*"; }
die() { printf 'build-build-stack: ERROR: %s\n' "$*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "the Docker engine is not answering (scripts/install.sh starts it)"
docker image inspect "$STACK" >/dev/null 2>&1 || die "the stack image $STACK is missing (scripts/build-stack.sh builds it)"

mounts=()
if [ "$SUITE" != bookworm ]; then
    :   # the stack's sources.list (written by debootstrap) names its suite and the mirror
elif [ -r /etc/apt/sources.list.d/debian.sources ]; then
    mounts+=(-v /etc/apt/sources.list.d/debian.sources:/etc/apt/sources.list.d/debian.sources:ro)
    # the stack's own sources.list (from debootstrap) names the same mirror: keep one list
    mounts+=(-v /dev/null:/etc/apt/sources.list:ro)
elif [ -r /etc/apt/sources.list ]; then
    mounts+=(-v /etc/apt/sources.list:/etc/apt/sources.list:ro)
fi

name="dockyard-build-stack-$$"
cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
SECONDS=0
say "building $IMAGE from $STACK (+ $PACKAGES)"
printf '\n==== %s build-build-stack %s\n' "$(date -Is)" "$IMAGE" >> "$LOG"
if ! docker run --name "$name" "${mounts[@]}" -e DEBIAN_FRONTEND=noninteractive "$STACK" /bin/sh -ec "
        apt-get -o Acquire::Check-Valid-Until=false -o Acquire::Languages=none update -q
        apt-get install -y -q --no-install-recommends $PACKAGES
        apt-get clean
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /tmp/* /var/tmp/*
        busybox true; python3 --version
    " >> "$LOG" 2>&1; then
    tail -n 25 "$LOG" >&2 || true
    die "installing the build packages failed; full log in $LOG"
fi
docker commit \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL dockyard.stack=$SUITE-build" \
    --change 'CMD ["/bin/bash"]' \
    "$name" "$IMAGE" >/dev/null || die "docker commit failed"
size="$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
say "done: $IMAGE in ${SECONDS}s ($size)"
