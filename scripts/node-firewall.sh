#!/bin/sh
# A cluster node's wall between its tenants and itself. Everything a tenant runs on a node (app
# instances, one-offs, build sandboxes) is a container whose traffic enters the node's root
# namespace from a container bridge: docker_gwbridge (Swarm tasks' way out, the overlay networks
# included), docker0 and the user-defined bridges br-* (a build sandbox's network). From there,
# unanswered, a tenant reaches the node's engine on port 2375 (root on the node), the sandboxes'
# engines published on the node's address, the other nodes, and the platform host's registry on
# the cluster network. This drops every new connection from those bridges to the node's own
# addresses (INPUT), to the node's published ports by address (DNAT, FORWARD) and to the cluster's
# network (FORWARD, through DOCKER-USER, the chain Docker keeps first and never flushes), except
# the ADDRESS:PORT pairs given (the platform's add-on gateway). The platform host, the other
# nodes and the node's own engine (root namespace: pulls, Swarm, VXLAN) are not from a bridge and
# pass; so do answers to connections made to the tasks (published web ports).
#
#   node-firewall.sh CLUSTER_CIDR [ADDRESS:PORT ...] [-- COMMAND ...]
#
# Run as root before or after dockerd starts (idempotent); with `-- COMMAND` it then execs the
# command (the simulated nodes' dockerd: scripts/cluster.sh). iptables rules do not outlive a
# reboot: a real node runs it at boot (docs/cluster.md, "Joining a real machine").
set -eu

[ $# -ge 1 ] || { echo "usage: node-firewall.sh CLUSTER_CIDR [ADDRESS:PORT ...] [-- COMMAND ...]" >&2; exit 2; }
cidr=$1
shift
allow=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    case "$1" in
        *:*) allow="$allow $1" ;;
        *) echo "node-firewall: '$1' is not ADDRESS:PORT (the address and tcp port tasks may reach)" >&2; exit 2 ;;
    esac
    shift
done
[ $# -gt 0 ] && shift   # the --

BRIDGES="docker0 docker_gwbridge br-+"
ipt() { iptables -w "$@"; }

# own chains, emptied on a rerun; DOCKER-USER exists before dockerd (which then adds its jump)
for chain in DOCKYARD-TASKS-IN DOCKYARD-TASKS-OUT; do
    ipt -N "$chain" 2>/dev/null || ipt -F "$chain"
done
ipt -N DOCKER-USER 2>/dev/null || true
for br in $BRIDGES; do
    while ipt -D INPUT -i "$br" -j DOCKYARD-TASKS-IN 2>/dev/null; do :; done
    while ipt -D DOCKER-USER -i "$br" -j DOCKYARD-TASKS-OUT 2>/dev/null; do :; done
    ipt -I INPUT -i "$br" -j DOCKYARD-TASKS-IN
    ipt -I DOCKER-USER -i "$br" -j DOCKYARD-TASKS-OUT
done

# to the node itself: answers only (nothing a task needs listens on the node)
ipt -A DOCKYARD-TASKS-IN -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
ipt -A DOCKYARD-TASKS-IN -j DROP

# through the node: the internet stays open (DNS, package registries); the cluster does not
ipt -A DOCKYARD-TASKS-OUT -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
for pair in $allow; do
    ipt -A DOCKYARD-TASKS-OUT -p tcp -d "${pair%:*}" --dport "${pair##*:}" -j RETURN
done
ipt -A DOCKYARD-TASKS-OUT -d "$cidr" -j DROP
ipt -A DOCKYARD-TASKS-OUT -m conntrack --ctstate DNAT -j DROP   # a published port by the node's address
ipt -A DOCKYARD-TASKS-OUT -j RETURN

[ $# -eq 0 ] || exec "$@"
