#!/usr/bin/env bash
# The build sandbox image (controller/scheduler/docker_sandbox.py): the cluster node image
# (Debian's docker.io and iptables on the stack) plus Debian's docker-registry, whose first
# process is scripts/sandbox/init.sh and whose engine's runtime is scripts/sandbox/runc-dropping-net-raw.
# Labelled with the hash of its recipe (this script and those files): an image of the same recipe is kept, another is rebuilt (the platform then
# replaces running sandboxes of the old image, keeping their volumes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_IMAGE="${DOCKYARD_NODE_IMAGE:-dockyard/node:bookworm}"
IMAGE="${DOCKYARD_SANDBOX_IMAGE:-dockyard/sandbox:bookworm}"

say() { printf 'build-sandbox-image: %s\n' "$*"; }
die() { printf 'build-sandbox-image: ERROR: %s\n' "$*" >&2; exit 1; }

docker image inspect "$NODE_IMAGE" >/dev/null 2>&1 || die "the node image $NODE_IMAGE is missing (scripts/cluster.sh image builds it)"
recipe="$(cat "${BASH_SOURCE[0]}" "$ROOT/scripts/sandbox/init.sh" "$ROOT/scripts/sandbox/runc-dropping-net-raw" \
          | sha256sum | cut -c1-16)"
have="$(docker image inspect -f '{{ index .Config.Labels "dockyard.sandbox.recipe" }}' "$IMAGE" 2>/dev/null || true)"
if [ "$have" = "$recipe" ]; then
    say "image $IMAGE already present (recipe $recipe)"
    exit 0
fi
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$ROOT/scripts/sandbox/init.sh" "$ROOT/scripts/sandbox/runc-dropping-net-raw" "$ctx/"
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $NODE_IMAGE
USER root
RUN apt-get -o Acquire::Check-Valid-Until=false update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-registry \
    && rm -rf /var/lib/apt/lists/*
COPY init.sh /usr/local/bin/dockyard-sandbox-init
COPY runc-dropping-net-raw /usr/local/bin/runc-dropping-net-raw
VOLUME /var/lib/docker
ENTRYPOINT ["/usr/local/bin/dockyard-sandbox-init"]
CMD []
LABEL dockyard.sandbox.recipe=$recipe
DOCKERFILE
docker build -q -t "$IMAGE" "$ctx" >/dev/null || die "building $IMAGE failed"
say "built $IMAGE (recipe $recipe)"
