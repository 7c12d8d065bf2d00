# Sourced by the scripts that make an image out of Debian packages without a registry or a
# Dockerfile (build-lang-stacks.sh, build-service-images.sh): a container of a base image installs
# the packages from the host's own apt sources, then `docker commit`. Each image carries the hash
# of its recipe in a label: an image of the same recipe is kept, another is rebuilt.
#
# The sourcing script sets SAY_AS (the prefix of its messages) before sourcing this file.

LOG=/var/log/dockyard-build-stack.log

say() { printf '%s: %s\n' "$SAY_AS" "$*"; }
die() { printf '%s: ERROR: %s\n' "$SAY_AS" "$*" >&2; exit 1; }

# require_images IMAGE...: the engine answers and each base image is there
require_images() {
    docker info >/dev/null 2>&1 || die "the Docker engine is not answering (scripts/install.sh starts it)"
    local image
    for image in "$@"; do
        docker image inspect "$image" >/dev/null 2>&1 || die "$image is missing (scripts/install.sh builds it)"
    done
}

# The host's apt sources, read-only: a container installs from the mirror the host uses.
APT_MOUNTS=()
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    APT_MOUNTS+=(-v /etc/apt/sources.list.d/debian.sources:/etc/apt/sources.list.d/debian.sources:ro)
    APT_MOUNTS+=(-v /dev/null:/etc/apt/sources.list:ro)
elif [ -r /etc/apt/sources.list ]; then
    APT_MOUNTS+=(-v /etc/apt/sources.list:/etc/apt/sources.list:ro)
fi

# recipe_of FILE... [-- IMAGE...]: 16 hex digits of the sha256 of this file, the FILEs (the calling
# script and what it copies in) and the ids of the IMAGEs it starts from (a rebuilt base rebuilds it)
recipe_of() {
    local files=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do files+=("$1"); shift; done
    [ $# -eq 0 ] || shift
    { cat "${BASH_SOURCE[0]}" "${files[@]}"; [ $# -eq 0 ] || docker image inspect -f '{{.Id}}' "$@"; } \
        | sha256sum | cut -c1-16
}

# recipe_label IMAGE LABEL: the recipe the image was made from (empty when there is no such image)
recipe_label() {
    docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# log_header IMAGE: a line in the log before a build's output
log_header() { printf '\n==== %s %s %s\n' "$(date -Is)" "$SAY_AS" "$1" >> "$LOG"; }

# The shell lines that install packages in a container, and those that leave no apt cache behind.
apt_install() {
    printf '%s\n' "apt-get -o Acquire::Check-Valid-Until=false -o Acquire::Languages=none update -q" \
        "apt-get install -y -q --no-install-recommends $*"
}
APT_CLEAN='apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /tmp/* /var/tmp/*'

# run_install NAME FROM SCRIPT: SCRIPT (sh -e) in a new container NAME of FROM, with the apt sources
run_install() {
    docker run --name "$1" "${APT_MOUNTS[@]}" -e DEBIAN_FRONTEND=noninteractive "$2" /bin/sh -ec "$3"
}

# commit_image NAME IMAGE [--change ...]: the container as IMAGE, with the stack's PATH and locale
commit_image() {
    local name="$1" image="$2"
    shift 2
    docker commit \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        "$@" "$name" "$image" >/dev/null
}

# image_size IMAGE: its size, for the closing message
image_size() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'; }
