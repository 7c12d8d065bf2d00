#!/bin/sh
# redis-cli as the add-on's admin user (the password never appears in a command line).
REDISCLI_AUTH="$(cat /data/admin.pass)" exec redis-cli --no-auth-warning --user admin "$@"
