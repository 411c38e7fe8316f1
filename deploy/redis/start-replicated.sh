#!/bin/sh
# Start one data server of a Redis group that Redis Sentinel fails over (a queue shard or the
# store), so that it never comes back as a second, empty or stale, primary:
#   - the Sentinels name another server as the group's primary: start as its replica;
#   - they still name this server and know replicas of it (it died and they have not failed
#     over yet): wait for them, up to REDIS_FAILOVER_WAIT_S, then start as the primary with
#     what it has on disk;
#   - they name this server and know no replica (the group's first start): start as primary;
#   - no Sentinel answers: REDIS_FIRST_PRIMARY is the primary, every other server its replica.
#
# Environment:
#   REDIS_GROUP          the group's Sentinel name (s0, s1, store)
#   REDIS_SENTINELS      the Sentinels, "host:port,host:port,..."
#   REDIS_SELF           this server as the others reach it, "host:port"
#   REDIS_FIRST_PRIMARY  the primary of the first start, "host:port"
#   REDIS_FAILOVER_WAIT_S  (60)
# Arguments: redis-server and its options (the port must be REDIS_SELF's).
#
#   REDIS_GROUP=s0 ... start-replicated.sh redis-server --port 6379 --appendonly yes
set -eu

: "${REDIS_GROUP:?}" "${REDIS_SENTINELS:?}" "${REDIS_SELF:?}" "${REDIS_FIRST_PRIMARY:?}"
wait_s=${REDIS_FAILOVER_WAIT_S:-60}

# "host port" of the primary, from the first Sentinel that knows the group; nothing if none does.
primary() {
  for sentinel in $(echo "$REDIS_SENTINELS" | tr ',' ' '); do
    answer=$(redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" --raw \
      SENTINEL get-master-addr-by-name "$REDIS_GROUP" 2>/dev/null || true)
    if [ "$(echo "$answer" | grep -c .)" = 2 ]; then
      echo "$answer" | tr '\n' ' '
      return 0
    fi
  done
}

# How many replicas the first Sentinel that answers knows for the group.
replicas_known() {
  for sentinel in $(echo "$REDIS_SENTINELS" | tr ',' ' '); do
    answer=$(redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" --raw \
      SENTINEL master "$REDIS_GROUP" 2>/dev/null || true)
    if [ -n "$answer" ]; then
      echo "$answer" | awk 'prev == "num-slaves" { print; exit } { prev = $0 }'
      return 0
    fi
  done
  echo 0
}

# Start as a replica that no Sentinel promotes (replica-priority 0) until its first sync with
# the primary is done: promoted before it has the primary's data, it would drop every write
# the primary acknowledged. A background shell makes it eligible once the link is up.
# Arguments: the primary's host and port, then redis-server and its options.
as_replica() {
  primary_host=$1 primary_port=$2
  shift 2
  port="${REDIS_SELF##*:}"
  server=$$  # this shell's process, which becomes redis-server with the exec below
  (
    while kill -0 "$server" 2>/dev/null; do
      synced=$(redis-cli -p "$port" --raw INFO replication 2>/dev/null | tr -d '\r' \
        | grep -c -e '^master_link_status:up$' -e '^master_sync_in_progress:0$' || true)
      if [ "$synced" = 2 ]; then
        redis-cli -p "$port" CONFIG SET replica-priority 100 >/dev/null && exit 0
      fi
      sleep 1
    done
  ) &
  exec "$@" --replica-priority 0 --replicaof "$primary_host" "$primary_port"
}

self="${REDIS_SELF%:*} ${REDIS_SELF##*:}"
waited=0
while :; do
  found=$(primary | sed 's/ *$//')
  if [ -z "$found" ]; then
    if [ "$REDIS_SELF" = "$REDIS_FIRST_PRIMARY" ]; then
      echo "start-replicated: no Sentinel knows $REDIS_GROUP: starting as its first primary" >&2
      exec "$@"
    fi
    first="${REDIS_FIRST_PRIMARY%:*} ${REDIS_FIRST_PRIMARY##*:}"
    echo "start-replicated: no Sentinel knows $REDIS_GROUP: replica of $first" >&2
    # shellcheck disable=SC2086
    as_replica $first "$@"
  fi
  if [ "$found" != "$self" ]; then
    echo "start-replicated: $REDIS_GROUP's primary is $found: starting as its replica" >&2
    # shellcheck disable=SC2086
    as_replica $found "$@"
  fi
  if [ "$(replicas_known)" = 0 ]; then
    echo "start-replicated: $REDIS_GROUP has no replica yet: starting as its primary" >&2
    exec "$@"
  fi
  if [ "$waited" -ge "$wait_s" ]; then
    echo "start-replicated: no failover of $REDIS_GROUP in ${wait_s}s: starting as primary" >&2
    exec "$@"
  fi
  sleep 1
  waited=$((waited + 1))
done
