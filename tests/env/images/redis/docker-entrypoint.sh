#!/bin/sh
# Entrypoint of the test image localhost/redis:7.0 (like the official redis image's):
#   docker-entrypoint.sh [redis-server] [CONFIG.conf] [--option value]...
# runs redis-server (added when the first argument is an option or a .conf file); as root it
# hands /data (the working directory) to the redis user and runs as redis. Anything else is
# executed as given.
set -e
case $1 in
-* | *.conf) set -- redis-server "$@" ;;
esac
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis:redis {} +
    exec gosu redis "$0" "$@"
fi
exec "$@"
