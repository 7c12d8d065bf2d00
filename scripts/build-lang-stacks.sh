#!/usr/bin/env bash
# Build the language stacks for the Ruby, PHP and JVM buildpacks, without any image registry:
# Debian's own packages installed in a container, then `docker commit`. Each language gets
#
#   dockyard/stack:bookworm-<lang>        the run stack + the language's runtime (what apps run on)
#   dockyard/build-stack:bookworm-<lang>  the build image + the runtime and its build tools
#
#   ruby:  run ruby (3.1) ruby-bundler            build + ruby-dev (native gems)
#   php:   run php8.2-cli php8.2-fpm nginx + the   build + composer unzip
#          common extensions (PHP_EXTS below)
#   java:  run openjdk-17-jre-headless             build openjdk-17-jdk-headless maven
#
# The runtime lives in the language's run stack (shared by every app of that language, one copy
# on disk) instead of in each slug. An image carries the hash of its recipe (this script,
# scripts/lib/debian-image.sh and the stack and build images' ids, label `dockyard.lang.recipe`):
# an image of the same recipe is kept, another is rebuilt.
#
# Usage: build-lang-stacks.sh [ruby|php|java ...] (default: all three). Needs a running Docker
# engine and the stack and build images; logs to /var/log/dockyard-build-stack.log.
set -euo pipefail

STACK="${DOCKYARD_STACK_IMAGE:-dockyard/stack:bookworm}"
BUILD="${DOCKYARD_BUILD_IMAGE:-dockyard/build-stack:bookworm}"
# The extensions a composer.json may require (ext-*) beyond those built into PHP: builder/languages.py
# keeps the same list and names it when an app asks for another.
PHP_EXTS="bcmath curl gd intl mbstring mysql pgsql sqlite3 xml zip opcache"

SAY_AS=build-lang-stacks
# shellcheck source=lib/debian-image.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/debian-image.sh"

require_images "$STACK" "$BUILD"
# the recipe: this script and the images it starts from (a rebuilt stack rebuilds these too)
RECIPE="$(recipe_of "${BASH_SOURCE[0]}" -- "$STACK" "$BUILD")"

with_tag() { printf '%s:%s' "${1%:*}" "$2"; }

# build FROM IMAGE PACKAGES CHECK
build() {
    local from="$1" image="$2" packages="$3" check="$4"
    if [ "$(recipe_label "$image" dockyard.lang.recipe)" = "$RECIPE" ]; then
        say "$image already present (recipe $RECIPE)"
        return
    fi
    local name="dockyard-build-lang-$$-${RANDOM}"
    trap "docker rm -f $name >/dev/null 2>&1 || true" RETURN
    SECONDS=0
    say "building $image from $from (+ $packages)"
    log_header "$image"
    # The stack's CA bundle is kept (installing Java regenerates it), and no service starts.
    if ! run_install "$name" "$from" "
            cp /etc/ssl/certs/ca-certificates.crt /tmp/ca.crt
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
            $(apt_install "$packages")
            cp /tmp/ca.crt /etc/ssl/certs/ca-certificates.crt
            rm -f /usr/sbin/policy-rc.d
            $APT_CLEAN
            $check
        " >> "$LOG" 2>&1; then
        tail -n 25 "$LOG" >&2 || true
        die "installing $packages failed; full log in $LOG"
    fi
    commit_image "$name" "$image" --change "LABEL dockyard.lang.recipe=$RECIPE" --change 'CMD ["/bin/bash"]' \
        || die "docker commit of $image failed"
    say "built $image in ${SECONDS}s ($(image_size "$image"))"
}

php_exts() { local e out=""; for e in $PHP_EXTS; do out="$out php8.2-$e"; done; printf '%s' "$out"; }

for lang in ${@:-ruby php java}; do
    run="$(with_tag "$STACK" "bookworm-$lang")"
    bld="$(with_tag "$BUILD" "bookworm-$lang")"
    case "$lang" in
        ruby)
            build "$STACK" "$run" "ruby ruby-bundler" "ruby --version; bundle --version"
            build "$BUILD" "$bld" "ruby ruby-dev ruby-bundler" "ruby --version; bundle --version" ;;
        php)
            build "$STACK" "$run" "php8.2-cli php8.2-fpm nginx $(php_exts)" "php --version; nginx -v"
            build "$BUILD" "$bld" "php8.2-cli composer unzip $(php_exts)" "php --version; composer --version" ;;
        java)
            build "$STACK" "$run" "openjdk-17-jre-headless" "java -version"
            build "$BUILD" "$bld" "openjdk-17-jdk-headless maven" "java -version; mvn --version" ;;
        *) die "unknown language $lang (ruby, php or java)" ;;
    esac
done
