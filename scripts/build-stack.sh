#!/usr/bin/env bash
# Build a Dockyard stack image (the base of every build and app container) without any
# image registry: debootstrap a minimal Debian suite from the host's own apt mirror and
# `docker import` it. Like Heroku's numbered stacks, each suite is a stack with its own
# Python: bullseye 3.9, bookworm 3.11 (the default), trixie 3.13, sid 3.14 and 3.15.
#
#   suite:   ${DOCKYARD_STACK_SUITE:-bookworm} (bookworm, trixie or sid)
#   image:   ${DOCKYARD_STACK_IMAGE:-dockyard/stack:<suite>}
#   content: Debian <suite> minbase + its Pythons (python3, python3-venv, python3-pip; sid also
#            python3.14 and python3.15 with venv), ca-certificates, curl; user `app`
#            (uid/gid 1000) with home /home/app; /app owned by app.
#   mirror:  ${DOCKYARD_DEBIAN_MIRROR}, else the host's apt sources (the URI listed for bookworm
#            in /etc/apt/sources.list.d/debian.sources, else /etc/apt/sources.list: one Debian
#            mirror carries every suite), else http://deb.debian.org/debian.
#
# DOCKYARD_STACK_CA_BUNDLE (optional): a CA bundle file, e.g. /etc/ssl/certs/ca-certificates.crt,
#   copied over the image's /etc/ssl/certs/ca-certificates.crt. On hosts whose traffic to
#   the package registries passes through a TLS proxy with its own CA (as on the machines
#   this project is developed on), pip and npm inside containers reach PyPI / the npm
#   registry only with the host's bundle. Note: running update-ca-certificates inside a
#   container (e.g. apt installing a package that triggers it) regenerates the file from
#   the image's own certificates and drops the host's additions.
#
# Needs root, debootstrap and a running Docker engine. Logs debootstrap to
# /var/log/dockyard-build-stack.log.
set -euo pipefail

SUITE="${DOCKYARD_STACK_SUITE:-bookworm}"
IMAGE="${DOCKYARD_STACK_IMAGE:-dockyard/stack:$SUITE}"
INCLUDE=python3,python3-venv,python3-pip,ca-certificates,curl
case "$SUITE" in
    bookworm|trixie|bullseye) ;;
    sid) INCLUDE="$INCLUDE,python3.14,python3.14-venv,python3.15,python3.15-venv" ;;
    *) printf 'build-stack: ERROR: unknown suite %s (bullseye, bookworm, trixie or sid)\n' "$SUITE" >&2; exit 1 ;;
esac
MIRROR_SUITE=bookworm   # the host's own suite: its mirror URI serves the others too
LOG=/var/log/dockyard-build-stack.log
DEFAULT_MIRROR=http://deb.debian.org/debian

say() { printf 'build-stack: %s\n' "$*"; }
die() { printf 'build-stack: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found (apt-get install debootstrap)"
docker info >/dev/null 2>&1 || die "the Docker engine is not answering (scripts/install.sh starts it)"

# ---------------------------------------------------------------- mirror
mirror_from_deb822() {   # first URI of a "deb" stanza whose Suites has the suite
    awk -v suite="$MIRROR_SUITE" '
        BEGIN { RS = ""; FS = "\n" }
        {
            uris = ""; suites = ""; types = ""; enabled = "yes"
            for (i = 1; i <= NF; i++) {
                line = $i
                if (line ~ /^[ \t]*#/) continue
                key = tolower(line); sub(/:.*/, "", key)
                val = line; sub(/^[^:]*:[ \t]*/, "", val)
                if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "types") types = val
                else if (key == "enabled") enabled = tolower(val)
            }
            if (enabled != "no" && uris != "" && (" " types " ") ~ (" deb ") \
                && (" " suites " ") ~ (" " suite " ")) {
                split(uris, u, /[ \t]+/); print u[1]; exit
            }
        }' "$1"
}
mirror_from_list() {     # one-line style: deb [opts] URI suite components
    awk -v suite="$MIRROR_SUITE" '
        $1 == "deb" {
            i = 2
            if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) { print $i; exit }
        }' "$1"
}
MIRROR="${DOCKYARD_DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ] && [ -r /etc/apt/sources.list.d/debian.sources ]; then
    MIRROR="$(mirror_from_deb822 /etc/apt/sources.list.d/debian.sources || true)"
fi
if [ -z "$MIRROR" ] && [ -r /etc/apt/sources.list ]; then
    MIRROR="$(mirror_from_list /etc/apt/sources.list || true)"
fi
case "$MIRROR" in
    http://*|https://*|file:/*) ;;
    "") MIRROR="$DEFAULT_MIRROR" ;;
    *) say "mirror '$MIRROR' is not http(s)/file; using $DEFAULT_MIRROR"; MIRROR="$DEFAULT_MIRROR" ;;
esac

CA_BUNDLE="${DOCKYARD_STACK_CA_BUNDLE:-}"
if [ -n "$CA_BUNDLE" ] && [ ! -f "$CA_BUNDLE" ]; then
    die "DOCKYARD_STACK_CA_BUNDLE=$CA_BUNDLE is not a file"
fi

# ---------------------------------------------------------------- work dir
DIR="$(mktemp -d "${TMPDIR:-/var/tmp}/dockyard-stack.XXXXXX")"
cleanup() {
    # debootstrap may leave /proc, /sys or /dev mounted in the target when it fails:
    # unmount anything below DIR first, and never let rm cross into another filesystem.
    local m
    awk -v d="$DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo 2>/dev/null \
        | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$DIR"
}
trap cleanup EXIT
T_ALL="$(now)"
say "building $IMAGE from $MIRROR ($SUITE, minbase + $INCLUDE) in $DIR"

# ---------------------------------------------------------------- debootstrap
t="$(now)"
printf '\n==== %s debootstrap %s %s %s\n' "$(date -Is)" "$SUITE" "$DIR" "$MIRROR" >> "$LOG"
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$DIR" "$MIRROR" >> "$LOG" 2>&1; then
    tail -n 25 "$LOG" >&2 || true
    die "debootstrap failed; full log in $LOG"
fi
say "debootstrap: done in $(since "$t") ($(du -sh --one-file-system "$DIR" | cut -f1))"

# ---------------------------------------------------------------- customise
t="$(now)"
chroot "$DIR" /usr/sbin/useradd --create-home --uid 1000 --user-group --shell /bin/bash app \
    || die "useradd app failed"
install -d -o 1000 -g 1000 -m 755 "$DIR/app" || die "mkdir /app failed"
[ "$(chroot "$DIR" id -u app)" = 1000 ] || die "user app does not have uid 1000"
if [ -n "$CA_BUNDLE" ]; then
    install -D -m 644 "$CA_BUNDLE" "$DIR/etc/ssl/certs/ca-certificates.crt" || die "copying $CA_BUNDLE failed"
    say "ca bundle: $CA_BUNDLE copied to /etc/ssl/certs/ca-certificates.crt"
fi
chroot "$DIR" apt-get clean || die "apt-get clean in the rootfs failed"
rm -rf "$DIR"/var/lib/apt/lists/* "$DIR"/var/cache/apt/*.bin "$DIR"/var/cache/apt/archives/*.deb \
       "$DIR"/var/cache/apt/archives/partial/* "$DIR"/var/log/apt/* "$DIR"/tmp/* "$DIR"/var/tmp/* \
    || die "cleaning the rootfs failed"
: > "$DIR/etc/resolv.conf"   # the host's resolvers are no part of the image; docker provides its own
say "customise: user app (uid 1000), /app, caches cleaned in $(since "$t") ($(du -sh --one-file-system "$DIR" | cut -f1))"

# ---------------------------------------------------------------- import
t="$(now)"
tar --numeric-owner -C "$DIR" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL dockyard.stack=$SUITE" \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE" >/dev/null || die "docker import failed"
say "import: $IMAGE in $(since "$t")"

# ---------------------------------------------------------------- verify
t="$(now)"
out="$(docker run --rm "$IMAGE" python3 -c 'print(1)')" || die "docker run $IMAGE python3 failed"
[ "$out" = 1 ] || die "docker run $IMAGE python3 -c 'print(1)' printed '$out', not 1"
size="$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
say "verify: python3 runs in $IMAGE ($(since "$t")); image size $size"
say "done: $IMAGE built in $(since "$T_ALL")"
