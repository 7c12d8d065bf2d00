#!/bin/sh
# The first process of a build sandbox (one per building user): its network rules, its own
# registry, then its own Docker engine, which runs that user's Dockerfile builds.
#
#   SANDBOX_BLOCK  networks nothing in the sandbox may connect to: the host's own addresses,
#                  loopback, link-local and private ranges (the platform's and tenants' networks)
#   SANDBOX_DNS    the resolvers builds may ask (port 53 only), though they are in SANDBOX_BLOCK
#   SANDBOX_POOL, SANDBOX_BRIDGE
#                  the range the engine's networks come from, and its default bridge's address:
#                  clear of the platform's networks, whose replies would otherwise go to a build's bridge
#
# Rules hold for the engine itself (OUTPUT: the daemon fetches `ADD http://...` and would pull)
# and for every build step (DOCKER-USER, before the engine's own FORWARD rules). Nothing a
# build runs reaches the sandbox's own services (INPUT from the builds' bridge is dropped): the
# registry is for the engine (push on 127.0.0.1) and the platform (pull through the published port).
set -eu

iptables -N DOCKYARD-EGRESS
iptables -A DOCKYARD-EGRESS -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
for ns in ${SANDBOX_DNS:-}; do
    iptables -A DOCKYARD-EGRESS -d "$ns" -p udp --dport 53 -j RETURN
    iptables -A DOCKYARD-EGRESS -d "$ns" -p tcp --dport 53 -j RETURN
done
for net in ${SANDBOX_BLOCK:-}; do
    iptables -A DOCKYARD-EGRESS -d "$net" -j REJECT
done
iptables -A OUTPUT ! -o lo -j DOCKYARD-EGRESS
iptables -N DOCKER-USER
iptables -A DOCKER-USER -j DOCKYARD-EGRESS
iptables -A DOCKER-USER -j RETURN
iptables -A INPUT -i lo -j ACCEPT
iptables -A INPUT -i eth0 -j ACCEPT
iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A INPUT -j DROP

# the registry the engine pushes finished images to; its storage is on the engine's volume
mkdir -p /var/lib/docker/dockyard-registry /etc/dockyard
cat > /etc/dockyard/registry.yml <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: /var/lib/docker/dockyard-registry
  delete:
    enabled: true
http:
  addr: 0.0.0.0:5000
YML
# manifests the platform deleted after pulling them free their layers here, before serving
docker-registry garbage-collect /etc/dockyard/registry.yml >/dev/null 2>&1 || true
docker-registry serve /etc/dockyard/registry.yml &

# every container the engine runs (build steps) goes through runc-dropping-net-raw: no NET_RAW
set -- dockerd -H unix:///sandbox/docker.sock \
    --add-runtime dockyard=/usr/local/bin/runc-dropping-net-raw --default-runtime dockyard
for ns in ${SANDBOX_DNS:-}; do set -- "$@" --dns "$ns"; done
# its networks from a range the platform chose clear of its own (sandbox_policy.engine_networks)
if [ -n "${SANDBOX_POOL:-}" ]; then
    set -- "$@" --bip "$SANDBOX_BRIDGE" --default-address-pool "base=$SANDBOX_POOL,size=24"
fi
exec "$@"
