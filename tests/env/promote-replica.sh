#!/usr/bin/env bash
# promote-replica.sh DIR: do by hand what Orchestrator does on a MariaDB failover, in an
# environment started by `testenv.sh start DIR`:
#   1. stop the current primary (by its PID; PROMOTE_SIGNAL=KILL simulates a crash, the
#      default TERM is a clean shutdown),
#   2. let each replica apply what it already received, and pick the one with the highest
#      GTID,
#   3. on it: STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0,
#   4. repoint the other replica(s) to it with MASTER_USE_GTID=slave_pos.
# Prints the new primary's port on stdout (progress goes to stderr). DIR/env is not
# rewritten: SNS_TEST_MYSQL_URL etc. still name the old primary.
set -euo pipefail

log() { printf '[promote %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

(($# == 1)) || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$(cd "$1" && pwd)
[[ -f $dir/env ]] || die "no $dir/env: start the environment first (tests/env/testenv.sh start $dir)"
# shellcheck disable=SC1091
source "$dir/env"

sql() { # NODE ARGS...: root over the node's unix socket
    local node=$1
    shift
    mariadb --no-defaults --user=root --socket="$SNS_TEST_MYSQL_SOCKET_DIR/$node.sock" \
        --batch --skip-column-names "$@"
}
slave_status() { sql "$1" --column-names -e 'SHOW SLAVE STATUS\G'; }
field() { sed -n "s/^ *$1: //p"; } # FIELD < vertical output

# Find the primary: the running node with no replication configured.
primary='' replicas=()
for node in n1 n2 n3; do
    sql "$node" -e 'SELECT 1' >/dev/null 2>&1 || continue # stopped earlier
    if [[ -z "$(slave_status "$node")" ]]; then
        [[ -z $primary ]] || die "two running nodes without replication: $primary and $node"
        primary=$node
    else
        replicas+=("$node")
    fi
done
[[ -n $primary ]] || die "no running primary found"
((${#replicas[@]} > 0)) || die "no running replica to promote"
log "primary is $primary (port $(sql "$primary" -e 'SELECT @@port')); replicas: ${replicas[*]}"

# 1. Stop the primary by its PID and wait (bounded) until it is gone.
pid=$(cat "$SNS_TEST_MYSQL_DIR/$primary/mysqld.pid")
[[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == mariadbd ]] || die "pid $pid of $primary is not mariadbd"
kill "-${PROMOTE_SIGNAL:-TERM}" "$pid"
deadline=$((SECONDS + 30))
# (A zombie has exited: its parent, init, may take a moment to reap it.)
while [[ -e /proc/$pid ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; do
    ((SECONDS < deadline)) || die "$primary (pid $pid) still running 30 s after ${PROMOTE_SIGNAL:-TERM}"
    sleep 0.1
done
log "stopped $primary (pid $pid, ${PROMOTE_SIGNAL:-TERM})"

# 2. The IO threads are cut off now. Stop them, let each SQL thread apply its relay log
#    (bounded), then compare how far each replica got.
best='' best_seq=-1
for node in "${replicas[@]}"; do
    sql "$node" -e 'STOP SLAVE IO_THREAD'
    deadline=$((SECONDS + 30))
    while status=$(slave_status "$node") &&
        [[ "$(field Slave_SQL_Running_State <<<"$status")" != *'read all relay log'* ]]; do
        if [[ "$(field Slave_SQL_Running <<<"$status")" != Yes ]]; then
            die "SQL thread of $node stopped: $(field Last_SQL_Error <<<"$status")"
        fi
        ((SECONDS < deadline)) || die "$node did not apply its relay log within 30 s"
        sleep 0.1
    done
    # One replication domain (0): the sequence number orders the GTIDs.
    pos=$(sql "$node" -e 'SELECT @@gtid_slave_pos')
    seq=${pos##*-}
    log "$node has applied up to $pos"
    if ((seq > best_seq)); then best=$node best_seq=$seq; fi
done

# 3. Promote the most advanced replica.
sql "$best" <<'EOF'
STOP SLAVE;
RESET SLAVE ALL;
SET GLOBAL read_only = 0;
EOF
new_port=$(sql "$best" -e 'SELECT @@port')
log "promoted $best (port $new_port)"

# 4. Repoint the others. With log-slave-updates the new primary's binlog holds everything it
#    applied, so a less advanced replica catches up from it by GTID.
for node in "${replicas[@]}"; do
    [[ $node != "$best" ]] || continue
    sql "$node" <<EOF
STOP SLAVE;
CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$new_port,
  MASTER_USER='$SNS_TEST_MYSQL_REPL_USER', MASTER_PASSWORD='$SNS_TEST_MYSQL_REPL_PASSWORD',
  MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
START SLAVE;
EOF
    deadline=$((SECONDS + 30))
    until status=$(slave_status "$node") &&
        [[ "$(field Slave_IO_Running <<<"$status")" == Yes ]] &&
        [[ "$(field Slave_SQL_Running <<<"$status")" == Yes ]]; do
        ((SECONDS < deadline)) || {
            echo "$status" >&2
            die "$node does not replicate from $best within 30 s"
        }
        sleep 0.1
    done
    log "$node now replicates from $best (port $new_port)"
done

echo "$new_port"
