#!/bin/bash
# Runs INSIDE the build container (never on the host): the Heroku classic buildpack API.
#
#   /buildpacks/<i>   the buildpacks, in order (read-only)
#   /app              BUILD_DIR: the pushed source, compiled in place into the slug
#   /cache            CACHE_DIR: kept per app between builds
#   /env              ENV_DIR: one file per config var (read-only)
#   /meta             where each bin/release writes its YAML (release-<i>.yml)
#
# DOCKYARD_MODE=detect: run bin/detect of each in order, use the first that matches.
# DOCKYARD_MODE=all:    every buildpack must detect; all compile in order (.buildpacks).
# Lines starting with "@@dockyard " are read by the platform (builder/buildpacks.py), not shown.
set -u
BUILD_DIR=/app CACHE_DIR=/cache ENV_DIR=/env
mode="${DOCKYARD_MODE:-detect}"

first_line() { head -n 1 | tr -d '\r' | cut -c1-80; }
run_bin() {   # an executable runs as itself (any language), else with bash
    local f="$1"; shift
    if [ -x "$f" ]; then "$f" "$@"; else bash "$f" "$@"; fi
}

chosen=()
for bp in $(ls /buildpacks | sort -n); do
    dir="/buildpacks/$bp"
    if [ ! -f "$dir/bin/detect" ]; then
        echo "@@dockyard detect $bp 127 (no bin/detect)"
        [ "$mode" = all ] && exit 100
        continue
    fi
    out="$(run_bin "$dir/bin/detect" "$BUILD_DIR" 2>/dev/null)"
    rc=$?
    name="$(printf '%s\n' "$out" | first_line)"
    echo "@@dockyard detect $bp $rc ${name:-?}"
    if [ "$rc" -eq 0 ]; then
        chosen+=("$bp")
        [ "$mode" = detect ] && break
    elif [ "$mode" = all ]; then
        exit 100
    fi
done
[ "${#chosen[@]}" -gt 0 ] || exit 100

for bp in "${chosen[@]}"; do
    dir="/buildpacks/$bp"
    for f in compile release; do
        if [ ! -f "$dir/bin/$f" ]; then
            echo "@@dockyard missing $bp bin/$f"
            exit 101
        fi
    done
    echo "@@dockyard compile $bp"
    run_bin "$dir/bin/compile" "$BUILD_DIR" "$CACHE_DIR" "$ENV_DIR"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "@@dockyard compile-failed $bp $rc"
        exit 102
    fi
    run_bin "$dir/bin/release" "$BUILD_DIR" > "/meta/release-$bp.yml" 2> "/meta/release-$bp.err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        sed 's/^/       /' "/meta/release-$bp.err" | head -n 20
        echo "@@dockyard release-failed $bp $rc"
        exit 103
    fi
done
if [ -n "${DOCKYARD_BUILD_COMMAND:-}" ]; then
    # render.yaml's buildCommand: after the buildpacks, with what they installed on PATH and the
    # app's config vars in the environment (as Render's build has them)
    printf '@@dockyard build-command %s\n' "${DOCKYARD_BUILD_COMMAND:0:200}"
    (
        for f in "$ENV_DIR"/*; do [ -f "$f" ] && export "$(basename "$f")=$(cat "$f")"; done
        cd "$BUILD_DIR" || exit 1
        for f in "$BUILD_DIR"/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done
        export PATH="/tmp/dockyard-build-tools:$PATH"   # the buildpacks' build-time tools (pip, npm)
        bash -c "$DOCKYARD_BUILD_COMMAND" 2>&1
    )
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "@@dockyard build-command-failed $rc"
        exit 104
    fi
fi
echo "@@dockyard done ${chosen[*]}"
exit 0
