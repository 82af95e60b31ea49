#!/bin/bash
# Prepares one MariaDB server of an SnsCluster, then runs the image's entrypoint. It runs at
# every start of the container (not once per pod, as an init container would), so a server
# that restarts decides again whether it may take writes.
#
#   1. identity: server_id from the pod ordinal (a replica skips events that carry its own
#      id) and report_host, so Orchestrator and SHOW SLAVE HOSTS name every server by the
#      same stable DNS name that ProxySQL and Orchestrator's seeds use;
#   2. users: users.sql from the ConfigMap with the passwords taken from the environment
#      (Secrets), written to memory and run by the server itself at every start
#      (init_file, binary log off), so every server, primary or replica, has every user and
#      follows password changes;
#   3. role: only the server the operator recorded as primary (status.mysql.primary, which
#      follows Orchestrator's promotions; /etc/sns/topology/primary) may take writes, and
#      only when it replicates from nobody and no other server already takes writes. Every
#      other server starts read-only: on its first start it is pointed at the primary (GTID
#      auto-position); a former primary that comes back after a failover follows the
#      writable server, or the recorded primary, read-only. So a whole-cluster restart after
#      a failover cannot make the old primary writable again. The primary itself, when it
#      starts again (crashed, killed, or its pod deleted or rolled), first waits up to
#      SNS_MYSQL_CRASH_WAIT seconds, down, for Orchestrator to promote a replica, which it
#      then follows: Orchestrator sees a dead primary within seconds and promotes, and a
#      primary back in the meantime would take writes beside the promoted one. Only when no
#      replica was promoted by then does it take writes again.
#
# Environment: SNS_MYSQL_STATEFULSET, SNS_MYSQL_SERVICE (headless), SNS_MYSQL_SERVERS, and
# the passwords users.sql names (MONITOR_PASSWORD and REPLICATION_PASSWORD among them).
set -euo pipefail

# SNS_START_ROOT prefixes every path, for tests; empty in the pod.
root=${SNS_START_ROOT:-}
config=$root/etc/sns/mysql
topology=$root/etc/sns/topology
conf_d=$root/etc/mysql/conf.d
run=$root/run/sns-mysql
initdb=$root/docker-entrypoint-initdb.d
data=$root/var/lib/mysql
ordinal=${HOSTNAME##*-}
self=$HOSTNAME.$SNS_MYSQL_SERVICE

render() { awk -v q="'" -f "$config/render.awk" "$@"; }

# The recorded primary: server 0 until the operator records a failover.
recorded=$(cat "$topology/primary" 2>/dev/null || true)
recorded=${recorded:-$SNS_MYSQL_STATEFULSET-0}

# The primary is whichever other server answers read_only=0, whatever its ordinal: after a
# failover it is no longer server 0. Unreachable servers (not started yet) are skipped.
find_writable_peer() {
    primary=
    local i peer answer
    for ((i = 0; i < SNS_MYSQL_SERVERS; i++)); do
        peer=$SNS_MYSQL_STATEFULSET-$i.$SNS_MYSQL_SERVICE
        [[ $peer == "$self" ]] && continue
        answer=$(MYSQL_PWD=$MONITOR_PASSWORD mariadb --no-defaults --host="$peer" --user=monitor \
            --connect-timeout=2 --batch --skip-column-names \
            --execute='SELECT @@global.read_only' 2>/dev/null) || continue
        if [[ $answer == 0 ]]; then
            primary=$peer
            return
        fi
    done
}
find_writable_peer

if [[ -z $primary && -d $data/mysql && ! -f $data/master.info &&
    $HOSTNAME == "$recorded" && $SNS_MYSQL_SERVERS -gt 1 ]]; then
    wait=${SNS_MYSQL_CRASH_WAIT:-30}
    echo "start.sh: $self was the primary: waiting up to $wait s for Orchestrator to promote a replica" >&2
    deadline=$((SECONDS + wait))
    while [[ -z $primary ]] && ((SECONDS < deadline)); do
        sleep 1
        find_writable_peer
        # The operator records a promotion in the topology ConfigMap (mounted: it changes
        # under a running container).
        current=$(cat "$topology/primary" 2>/dev/null || true)
        if [[ -z $primary && -n $current && $current != "$HOSTNAME" ]]; then
            recorded=$current
            break
        fi
    done
fi

cp "$config/sns.cnf" "$conf_d/sns.cnf"
render "$config/users.sql" >"$run/users.sql"
rm -f "$initdb"/*

# `replicate FILE SOURCE MODE` writes the statements that make this server a replica of
# SOURCE (MODE: slave_pos for an empty server, current_pos for a former primary, whose own
# transactions are in its binary log rather than in gtid_slave_pos).
replicate() {
    printf '%s\n' "CHANGE MASTER TO MASTER_HOST='$2', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='@@REPLICATION_PASSWORD@@', MASTER_USE_GTID=$3, MASTER_CONNECT_RETRY=10;" |
        render >>"$1"
}

source=
if [[ ! -d $data/mysql ]]; then
    # First start (the entrypoint initialises the data directory and runs $initdb once).
    if [[ -n $primary ]]; then
        source=$primary
    elif [[ $HOSTNAME != "$recorded" ]]; then
        # Nobody takes writes yet (a new cluster): follow the recorded primary.
        source=$recorded.$SNS_MYSQL_SERVICE
    fi
    if [[ -n $source ]]; then
        replicate "$initdb/50-replicate.sql" "$source" slave_pos
    fi
elif [[ ! -f $data/master.info ]]; then
    # Data, and replicating from nobody: this server was a primary. If another takes writes,
    # or the primary recorded since is another, Orchestrator promoted that one: two writers
    # would split the data, so this one follows it. A transaction of its own that never
    # reached the new primary stops replication (gtid_strict_mode), which
    # MySQLReplicationStopped reports, and a person decides.
    if [[ -n $primary ]]; then
        source=$primary
    elif [[ $HOSTNAME != "$recorded" ]]; then
        source=$recorded.$SNS_MYSQL_SERVICE
    fi
    if [[ -n $source ]]; then
        replicate "$run/users.sql" "$source" current_pos
        echo 'START SLAVE;' >>"$run/users.sql"
    fi
fi

read_only=ON
if [[ -z $source && ! -f $data/master.info && $HOSTNAME == "$recorded" ]]; then
    read_only=OFF
fi
cat >"$conf_d/server.cnf" <<EOF
[mysqld]
server_id = $((100 + ordinal))
report_host = $self
report_port = 3306
read_only = $read_only
init_file = /run/sns-mysql/users.sql
EOF
echo "start.sh: $self starts with read_only=$read_only (recorded primary: $recorded; writable peer seen: ${primary:-none})" >&2

# The server runs as mysql and reads these files itself; nobody else may read the passwords.
chown -R mysql:mysql "$run" "$initdb"
chmod -R go= "$run" "$initdb"
exec docker-entrypoint.sh mariadbd
