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
#      auto-position), starting from a copy of a replica's data (or the primary's) when the
#      cluster already takes writes (4.); a former primary that comes back after a failover follows the
#      writable server, or the recorded primary, read-only. So a whole-cluster restart after
#      a failover cannot make the old primary writable again. The primary itself, when it
#      starts again (crashed, killed, or its pod deleted or rolled), first waits up to
#      SNS_MYSQL_CRASH_WAIT seconds, down, for Orchestrator to promote a replica, which it
#      then follows: Orchestrator sees a dead primary within seconds and promotes, and a
#      primary back in the meantime would take writes beside the promoted one. Only when no
#      replica was promoted by then does it take writes again.
#   4. clone: a new server of a cluster that holds data receives a physical copy from the
#      clone donor beside a replica that answers (donor.sh, port 3307), else the primary's,
#      and replicates from the GTID position the copy holds, instead of replaying every
#      binary log since the cluster began. A copy that fails is removed and the next donor
#      tried; with none, the server starts empty and replays.
#   5. restore (spec.restore): server 0 of a restored cluster starts from the backup its init
#      container fetched (backup/restore.rs: .sns-restore/ in the data volume), replays the
#      archived binary logs after it up to the point in time (mariadb-binlog from the GTID
#      position the backup holds), and takes writes; every other server waits for it and
#      clones it (SNS_MYSQL_RESTORED=1): it never starts empty.
#
# Environment: SNS_MYSQL_STATEFULSET, SNS_MYSQL_SERVICE (headless), and the passwords
# users.sql names (MONITOR_PASSWORD and REPLICATION_PASSWORD among them). How many servers
# there are is read from the topology ConfigMap, not the environment, so that adding a
# replica changes no pod template and restarts no server.
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
servers=$(cat "$topology/servers" 2>/dev/null || true)
[[ $servers =~ ^[0-9]+$ ]] || servers=${SNS_MYSQL_SERVERS:-1}

# The primary is whichever other server answers read_only=0, whatever its ordinal: after a
# failover it is no longer server 0. Unreachable servers (not started yet) are skipped; the
# read-only ones that answer are noted (replica_peers): they can give a new replica a copy.
find_writable_peer() {
    primary=
    replica_peers=()
    local i peer answer
    for ((i = 0; i < servers; i++)); do
        peer=$SNS_MYSQL_STATEFULSET-$i.$SNS_MYSQL_SERVICE
        [[ $peer == "$self" ]] && continue
        answer=$(MYSQL_PWD=$MONITOR_PASSWORD mariadb --no-defaults --host="$peer" --user=monitor \
            --connect-timeout=2 --batch --skip-column-names \
            --execute='SELECT @@global.read_only' 2>/dev/null) || continue
        if [[ $answer == 0 && -z $primary ]]; then
            primary=$peer
        elif [[ $answer == 1 ]]; then
            replica_peers+=("$peer")
        fi
    done
}
find_writable_peer

if [[ -z $primary && -d $data/mysql && ! -f $data/master.info &&
    $HOSTNAME == "$recorded" && $servers -gt 1 ]]; then
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

# Removes everything a failed copy left in the data directory (a volume's lost+found stays).
clear_data() {
    find "$data" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {} +
}

# Sets copy_gtid to the GTID position a prepared copy in $data holds: a replica's copy
# names the position it replicated up to (slave info), the primary's the last transaction
# in its binary log (mariadb-backup's older file names too).
read_copy_gtid() {
    local info
    copy_gtid=
    for info in mariadb_backup_slave_info xtrabackup_slave_info; do
        [[ -f $data/$info ]] || continue
        copy_gtid=$(sed -n "s/.*gtid_slave_pos *= *'\([^']*\)'.*/\1/p" "$data/$info" | head -n 1)
        break
    done
    if [[ -z $copy_gtid ]]; then
        for info in mariadb_backup_binlog_info xtrabackup_binlog_info; do
            [[ -f $data/$info ]] || continue
            copy_gtid=$(awk 'NR == 1 { print $3 }' "$data/$info")
            break
        done
    fi
    [[ $copy_gtid =~ ^[0-9]+-[0-9]+-[0-9]+(,[0-9]+-[0-9]+-[0-9]+)*$ ]]
}

# `clone_from DONOR`: receives a physical copy of DONOR's data (its clone donor, donor.sh, on
# port 3307), prepares it, and sets clone_gtid to the GTID position it holds. Fails, leaving
# a partial copy for clear_data, when the donor cannot be reached or the copy is incomplete.
clone_from() {
    local donor=$1 started=$SECONDS log info
    log=$(mktemp)
    echo "start.sh: cloning $self from $donor" >&2
    { exec 3<>"/dev/tcp/$donor/${SNS_MYSQL_CLONE_PORT:-3307}"; } 2>/dev/null || {
        echo "start.sh: $donor's clone donor does not answer" >&2
        return 1
    }
    printf 'CLONE %s %s\n' "$REPLICATION_PASSWORD" "$HOSTNAME" >&3
    if ! mbstream -x -C "$data" <&3 2>"$log"; then
        exec 3<&-
        echo "start.sh: the copy from $donor broke off: $(tail -n 3 "$log")" >&2
        return 1
    fi
    exec 3<&-
    if [[ ! -f $data/sns-copy-complete ]]; then
        echo "start.sh: the copy from $donor was cut short" >&2
        return 1
    fi
    rm -f "$data/sns-copy-complete"
    if [[ ! -d $data/mysql ]] || ! mariadb-backup --prepare --target-dir="$data" >"$log" 2>&1; then
        echo "start.sh: the copy from $donor is incomplete: $(tail -n 3 "$log")" >&2
        return 1
    fi
    if ! read_copy_gtid; then
        echo "start.sh: the copy from $donor names no GTID position (${copy_gtid:-none})" >&2
        return 1
    fi
    clone_gtid=$copy_gtid
    # The image health check's login for the users the copy holds (donor.sh sends it).
    if [[ -f $data/sns-healthcheck.cnf ]]; then
        mv "$data/sns-healthcheck.cnf" "$data/.my-healthcheck.cnf"
    fi
    # The donor's replication state is its own.
    rm -f "$data"/master.info "$data"/relay-log.info "$data"/multi-master.info "$data"/*relay-bin*
    chown -R mysql:mysql "$data"
    echo "start.sh: cloned $self from $donor: $(du -sb "$data" | cut -f1) bytes in $((SECONDS - started)) s, at GTID $clone_gtid" >&2
}

# `restore`: rebuilds $data from .sns-restore (see 5.): the backup unpacked and prepared, a
# server of its own (no network, no grant checks) to set the GTID state the backup holds and
# replay the binary logs after it, the root accounts given this cluster's password (the
# other accounts get theirs from users.sql at every start). Fails, leaving $data for
# clear_data, when anything is missing.
restore() {
    local work=$data/.sns-restore log socket=$run/restore.sock pid stop= file domain first last current reached
    local started=$SECONDS logs
    logs=$(grep -vc '^stop ' "$work/plan" || true)
    log=$(mktemp)
    echo "start.sh: restoring $self from backup $(cat "$work/ready")" >&2
    mbstream -x -C "$data" <"$work/data.xbstream" || return 1
    rm -f "$work/data.xbstream"
    [[ -f $data/sns-copy-complete ]] || { echo "start.sh: the backup is incomplete" >&2; return 1; }
    rm -f "$data/sns-copy-complete"
    if ! mariadb-backup --prepare --target-dir="$data" >"$log" 2>&1; then
        echo "start.sh: the backup cannot be prepared: $(tail -n 3 "$log")" >&2
        return 1
    fi
    read_copy_gtid || { echo "start.sh: the backup names no GTID position" >&2; return 1; }
    if [[ -f $data/sns-healthcheck.cnf ]]; then
        mv "$data/sns-healthcheck.cnf" "$data/.my-healthcheck.cnf"
    fi
    rm -f "$data"/master.info "$data"/relay-log.info "$data"/multi-master.info "$data"/*relay-bin*
    chown -R mysql:mysql "$data" "$run"
    mariadbd --user=mysql --datadir="$data" --skip-networking --socket="$socket" \
        --skip-grant-tables --skip-slave-start --server-id=$((100 + ordinal)) >"$log" 2>&1 &
    pid=$!
    until local_sql --execute='SELECT 1' >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "start.sh: the restored server does not start: $(tail -n 5 "$log")" >&2
            return 1
        fi
        sleep 1
    done
    local_sql --execute="RESET MASTER; SET GLOBAL gtid_binlog_state = '$copy_gtid';" || return 1
    # Each log from the position reached: the first ones may hold transactions the backup
    # has (they are skipped by GTID), and after a failover two servers' logs overlap.
    current=$copy_gtid
    while read -r file domain first last; do
        if [[ $file == stop ]]; then
            stop="$domain $first"
            continue
        fi
        reached=${current##*-}
        ((last <= reached)) && continue
        if ((first > reached + 1)); then
            echo "start.sh: the binary log archive has a gap: after $current comes $domain-?-$first" >&2
            return 1
        fi
        if ! TZ=UTC mariadb-binlog --start-position="$current" ${stop:+"--stop-datetime=$stop"} \
            "$work/binlog/$file" | local_sql --binary-mode; then
            echo "start.sh: replaying archived binary log $file failed" >&2
            return 1
        fi
        current=$(local_sql --execute='SELECT @@global.gtid_binlog_pos')
    done <"$work/plan"
    current=$(local_sql --execute='SELECT @@global.gtid_binlog_pos') || return 1
    # The grant tables apply from here on: this client's last statements.
    render <<'SQL' | local_sql || return 1
FLUSH PRIVILEGES;
SET SESSION sql_log_bin = 0;
ALTER USER IF EXISTS 'root'@'localhost' IDENTIFIED BY '@@MARIADB_ROOT_PASSWORD@@';
ALTER USER IF EXISTS 'root'@'%' IDENTIFIED BY '@@MARIADB_ROOT_PASSWORD@@';
SQL
    kill "$pid"
    wait "$pid" || true
    rm -rf "$work"
    echo "start.sh: restored $self in $((SECONDS - started)) s from the backup at $copy_gtid, replaying $logs archived binary logs to $current${stop:+ (before $stop UTC)}" >&2
}

# The restoring server's own client: root over its socket, no password (no grant checks).
local_sql() {
    mariadb --no-defaults --socket="$run/restore.sock" --user=root --batch --skip-column-names "$@"
}

source=
clone_gtid=
if [[ ! -d $data/mysql && -f $data/.sns-restore/ready && -z $primary ]]; then
    # A restored cluster's first start (5.); with a writable peer, server 0 lost its volume
    # later and is cloned like any new server.
    if ! restore; then
        clear_data
        exit 1
    fi
fi
if [[ ! -d $data/mysql && -n ${SNS_MYSQL_RESTORED:-} && $HOSTNAME != "$recorded" ]]; then
    # A replica of a restored cluster: only a copy of the restored data will do.
    while [[ -z $primary ]]; do
        echo "start.sh: waiting for the restored server to take writes" >&2
        sleep 5
        find_writable_peer
    done
fi
if [[ ! -d $data/mysql ]]; then
    # First start. A new replica of a cluster that takes writes starts from a copy of a
    # replica (or else the primary) and replicates from the position the copy holds; failing
    # that (or in a new cluster), the entrypoint initialises an empty data directory, runs
    # $initdb once, and the replica replays the primary's binary log from the start.
    if [[ -n $primary ]]; then
        source=$primary
        for donor in "${replica_peers[@]}" "$primary"; do
            clone_from "$donor" && break
            clear_data
        done
    elif [[ $HOSTNAME != "$recorded" ]]; then
        # Nobody takes writes yet (a new cluster): follow the recorded primary.
        source=$recorded.$SNS_MYSQL_SERVICE
    fi
    if [[ -z $clone_gtid && -n ${SNS_MYSQL_RESTORED:-} ]]; then
        echo "start.sh: no copy of the restored data could be made; trying again" >&2
        exit 1
    fi
    if [[ -n $clone_gtid ]]; then
        printf "SET GLOBAL gtid_slave_pos = '%s';\n" "$clone_gtid" >>"$run/users.sql"
        replicate "$run/users.sql" "$source" slave_pos
        echo 'START SLAVE;' >>"$run/users.sql"
    elif [[ -n $source ]]; then
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
echo "start.sh: $self starts with read_only=$read_only (recorded primary: $recorded; writable peer seen: ${primary:-none}${clone_gtid:+; cloned at $clone_gtid})" >&2

# The server runs as mysql and reads these files itself; nobody else may read the passwords.
chown -R mysql:mysql "$run" "$initdb"
chmod -R go= "$run" "$initdb"
exec docker-entrypoint.sh mariadbd
