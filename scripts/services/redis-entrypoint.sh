#!/bin/sh
# The Redis add-on's entrypoint (runs as user redis). Data and users live in /data (the
# add-on's volume). The default user is off; `admin` (password in /data/admin.pass, readable
# only inside the container) is the platform's, apps get ACL users the platform creates.
# Persistence is RDB: a snapshot after 1 change in 60 s (and 100 in 10 s) and at shutdown.
# A backup (`redis-cli --rdb`) is a replica sync: it starts at once (no diskless-sync delay).
set -eu
umask 077
if [ ! -s /data/users.acl ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > /data/admin.pass
    printf 'user default off\nuser admin on >%s ~* &* +@all\n' "$(cat /data/admin.pass)" > /data/users.acl
    echo "dockyard: initialised a new Redis in /data"
fi
exec redis-server --dir /data --dbfilename dump.rdb --aclfile /data/users.acl --bind '* -::*' \
    --protected-mode no --save '60 1 10 100' --appendonly no --repl-diskless-sync-delay 0 ${DOCKYARD_REDIS_OPTIONS:-}
