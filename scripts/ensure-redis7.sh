#!/bin/sh
# Make sure a Redis 7 server is installed for the Redis Cluster tests (sharded
# pub/sub, SSUBSCRIBE/SPUBLISH, needs Redis >= 7): Debian's `redis-server`
# package at /usr/bin/redis-server (or $GOOMERANG_REDIS7). As root with apt-get
# (CI), install it when missing; otherwise say what is missing and fail.
set -eu
BIN="${GOOMERANG_REDIS7:-/usr/bin/redis-server}"
is_redis7() {
    [ -x "$1" ] || return 1
    major=$("$1" --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
    [ -n "$major" ] && [ "$major" -ge 7 ]
}
if is_redis7 "$BIN"; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-redis7: no Redis >= 7 at $BIN; installing Debian's redis-server with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq redis-server >/dev/null
    # the package starts a system instance on 6379; the tests use their own ports
    if is_redis7 "$BIN"; then
        exit 0
    fi
    echo "ensure-redis7: apt-get install redis-server finished but $BIN is not Redis >= 7" >&2
    exit 1
fi
cat >&2 <<MSG
ensure-redis7: no Redis >= 7 server at $BIN, and it cannot be installed from here
(this needs root and apt-get). The Redis Cluster (sharded pub/sub) tests need it:
    sudo apt-get install redis-server     # Debian 12: Redis 7.0
or point GOOMERANG_REDIS7 at a redis-server 7.x (or Valkey) binary:
    make test GOOMERANG_REDIS7=/path/to/redis-server
MSG
exit 1
