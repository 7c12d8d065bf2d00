#!/usr/bin/env bash
# A Docker Swarm cluster of simulated nodes on this one machine (Docker-in-Docker containers on a
# bridge network of their own), for trying cluster mode and for its tests.
#
#   cluster.sh image        build the node image (Debian's docker.io in the stack image)
#   cluster.sh up N [M]     start N nodes, join them into a swarm whose first M nodes are managers
#                           (M=3: a Raft quorum that outlives the loss of any one manager), write
#                           DOCKYARD_HOME/cluster.json (a running platform switches to the Swarm
#                           backend within seconds)
#   cluster.sh down         remove cluster.json, wait until the platform has moved the apps back to
#                           this host, then remove the nodes and their network
#   cluster.sh node-stop K / node-start K    stop or start node K (a node failure and its return)
#
# Nodes run with the flags that work on this machine (--privileged is refused here; see README).
# Each node's dockerd trusts the platform's registry at the bridge's gateway address and listens
# for the platform on its own address on the cluster bridge (port 2375), a network nothing else joins.
# Each node starts with scripts/node-firewall.sh, which keeps the tenants' containers on it from the
# node itself and from the cluster's network (the add-on gateway on the gateway address excepted).
set -euo pipefail

NAME="${DOCKYARD_NAME:-dockyard}"
HOME_DIR="${DOCKYARD_HOME:-$HOME/.dockyard}"
REGISTRY_PORT="${DOCKYARD_REGISTRY_PORT:-5001}"
ADDON_GATEWAY_PORT="${DOCKYARD_ADDON_GATEWAY_PORT:-5004}"
FIREWALL="$(cd "$(dirname "$0")" && pwd)/node-firewall.sh"
STACK_IMAGE="${DOCKYARD_STACK_IMAGE:-dockyard/stack:bookworm}"
NODE_IMAGE="${DOCKYARD_NODE_IMAGE:-dockyard/node:bookworm}"
NET="${NAME}-cluster"
STATE="$HOME_DIR/cluster.json"

say() { printf 'cluster: %s\n' "$*"; }
die() { printf 'cluster: ERROR: %s\n' "$*" >&2; exit 1; }

node_name() { echo "${NAME}-node$1"; }
node_ip() { docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$(node_name "$1")"; }
in_node() { local k=$1; shift; docker exec "$(node_name "$k")" "$@"; }

build_image() {
    if docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then say "node image $NODE_IMAGE already present"; return; fi
    local ctx; ctx=$(mktemp -d)
    cat >"$ctx/Dockerfile" <<EOF
FROM $STACK_IMAGE
USER root
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    docker.io iptables && rm -rf /var/lib/apt/lists/*
VOLUME /var/lib/docker
ENTRYPOINT []
CMD ["dockerd"]
EOF
    docker build -q -t "$NODE_IMAGE" --label "dockyard.node-image=1" "$ctx" >/dev/null || die "building $NODE_IMAGE failed"
    rm -rf "$ctx"
    say "built node image $NODE_IMAGE"
}

wait_engine() {   # node K's dockerd answers
    for _ in $(seq 1 120); do
        in_node "$1" docker info >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "the engine in $(node_name "$1") did not start (docker logs $(node_name "$1"))"
}

start_node() {    # K GATEWAY SUBNET
    local k=$1 gw=$2 subnet=$3
    # the wall goes up before dockerd starts, so no task ever runs without it (node-start too).
    # An engine that dies (Docker 20.10's swarmkit can panic as a manager becomes leader) starts
    # again, as systemd restarts a real node's dockerd; node-stop's `docker stop` keeps it down.
    docker run -d --name "$(node_name "$k")" --hostname "node$k" --restart on-failure \
        --label "dockyard.instance=$NAME" --label "dockyard.node=$k" \
        --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
        --security-opt apparmor=unconfined -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run \
        -v "$FIREWALL:/usr/local/sbin/dockyard-node-firewall:ro" \
        --network "$NET" "$NODE_IMAGE" \
        /usr/local/sbin/dockyard-node-firewall "$subnet" "$gw:$ADDON_GATEWAY_PORT" -- \
        dockerd -H unix:///var/run/docker.sock -H "tcp://0.0.0.0:2375" \
        --insecure-registry "$gw:$REGISTRY_PORT" >/dev/null
}

up() {
    local n=${1:-3} m=${2:-1}
    [[ "$n" =~ ^[1-9][0-9]?$ ]] || die "NODES must be a number from 1 to 99 (got '$n')"
    [[ "$m" =~ ^[1-9][0-9]?$ ]] && [ "$m" -le "$n" ] || die "MANAGERS must be a number from 1 to NODES=$n (got '$m')"
    [ $((m % 2)) -eq 1 ] || die "MANAGERS must be odd (1, 3, 5): an even number of managers adds no fault tolerance to Raft"
    build_image
    docker network inspect "$NET" >/dev/null 2>&1 \
        || docker network create --label "dockyard.instance=$NAME" "$NET" >/dev/null
    local gw; gw=$(docker network inspect -f '{{(index .IPAM.Config 0).Gateway}}' "$NET")
    local subnet; subnet=$(docker network inspect -f '{{(index .IPAM.Config 0).Subnet}}' "$NET")
    for k in $(seq 1 "$n"); do
        if docker inspect "$(node_name "$k")" >/dev/null 2>&1; then
            docker start "$(node_name "$k")" >/dev/null
        else
            start_node "$k" "$gw" "$subnet"
        fi
    done
    for k in $(seq 1 "$n"); do wait_engine "$k"; done
    local ip1; ip1=$(node_ip 1)
    if [ "$(in_node 1 docker info -f '{{.Swarm.LocalNodeState}}')" != "active" ]; then
        # nodes report to the managers every 2 s (Docker's default is 5 s): a lost node is declared
        # down after about 6 s instead of 15 (Swarm moves its tasks then; the router's own probe
        # drops it within a second). Not 1 s: after a leader change the new leader waits 6
        # heartbeats for each node to report again, and agents retry with a backoff of up to 8 s,
        # so with 1 s it declared live nodes down and Swarm shut down their running tasks
        in_node 1 docker swarm init --advertise-addr "$ip1" --dispatcher-heartbeat 2s >/dev/null
        say "swarm initialised on $(node_name 1) ($ip1)"
    fi
    local managers="\"tcp://$ip1:2375\""
    for k in $(seq 2 "$n"); do
        local role=worker
        [ "$k" -le "$m" ] && role=manager
        if [ "$(in_node "$k" docker info -f '{{.Swarm.LocalNodeState}}')" != "active" ]; then
            local token; token=$(in_node 1 docker swarm join-token -q "$role")
            in_node "$k" docker swarm join --advertise-addr "$(node_ip "$k")" --token "$token" "$ip1:2377" >/dev/null
            say "$(node_name "$k") ($(node_ip "$k")) joined as a $role"
        fi
        [ "$role" = manager ] && managers="$managers, \"tcp://$(node_ip "$k"):2375\""
    done
    mkdir -p "$HOME_DIR"
    local tmp="$STATE.tmp"
    printf '{"manager": "tcp://%s:2375", "managers": [%s], "registry": "%s:%s", "network": "%s", "subnet": "%s", "nodes": %s}\n' \
        "$ip1" "$managers" "$gw" "$REGISTRY_PORT" "$NET" "$subnet" "$n" >"$tmp"
    mv "$tmp" "$STATE"
    say "$n node(s) ready, $m manager(s); the platform now schedules on the swarm (managers ${managers//\"/}, registry $gw:$REGISTRY_PORT)"
}

down() {
    if [ -f "$STATE" ]; then
        rm -f "$STATE"
        say "cluster mode off; waiting for the platform to move the apps back to this host"
        if docker inspect "$(node_name 1)" >/dev/null 2>&1; then
            for _ in $(seq 1 240); do
                left=$(in_node 1 docker service ls -q --filter "label=dockyard.instance=$NAME" 2>/dev/null | wc -l || echo 0)
                [ "$left" -eq 0 ] && break
                sleep 0.5
            done
        fi
    fi
    local nodes; nodes=$(docker ps -aq --filter "label=dockyard.instance=$NAME" --filter "label=dockyard.node")
    [ -n "$nodes" ] && docker rm -f -v $nodes >/dev/null
    docker network rm "$NET" >/dev/null 2>&1 || true
    say "nodes removed; the platform runs apps on this host"
}

case "${1:-}" in
    image) build_image ;;
    up) up "${2:-3}" "${3:-1}" ;;
    down) down ;;
    node-stop) docker stop -t 2 "$(node_name "$2")" >/dev/null && say "stopped $(node_name "$2")" ;;
    node-start) docker start "$(node_name "$2")" >/dev/null && wait_engine "$2" && say "started $(node_name "$2")" ;;
    *) die "usage: cluster.sh image | up N [MANAGERS] | down | node-stop K | node-start K" ;;
esac
