#!/bin/sh
# The Postgres add-on's entrypoint (runs as user postgres). The cluster lives in /data (the
# add-on's volume) and is made on first start. Only `postgres` is a superuser, and it can log in
# only through the container's own socket (the platform's exec); apps log in over TCP with the
# password roles the platform creates (scram-sha-256).
set -eu
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
export PGDATA=/data/pg
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    "$BIN/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust \
        --auth-host=scram-sha-256 >/dev/null
    cat > "$PGDATA/pg_hba.conf" <<HBA
local all all trust
host all postgres all reject
host all all all scram-sha-256
HBA
    cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
password_encryption = 'scram-sha-256'
unix_socket_directories = '/tmp'
logging_collector = off
CONF
    echo "dockyard: initialised a new cluster in $PGDATA"
fi
exec "$BIN/postgres" -D "$PGDATA" ${DOCKYARD_PG_OPTIONS:-}
