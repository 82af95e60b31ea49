#!/bin/bash
# The clone donor beside every MySQL server of an SnsCluster: it streams a physical copy of
# this server's data (mariadb-backup, xbstream) to a new replica, which then starts from that
# copy instead of replaying every binary log since the cluster began (start.sh receives it).
# It listens on port 3307 (socat, one process per connection); each connection sends one
# request line:
#
#   CLONE <replication password> <receiver pod>
#       ─► the stream, then the connection closes; its last file is `sns-copy-complete`,
#          which a copy cut short (a failure closes the connection early) lacks. The password is the replication account's: whoever
#          holds it can already read every transaction from the binary log, so it grants
#          nothing more. On a replica the copy records the replica's GTID position
#          (--slave-info), on the primary its binary log position.
#   PROGRESS
#       ─► one line per copy being sent: "<receiver pod> <bytes sent> <bytes of data>" (the
#          operator reports it in the MysqlReady condition).
#   BINLOGS <replication password> <flush: 0 or 1>
#       ─► "gtid <@@gtid_binlog_pos>", then "log <name> <bytes>" for every closed binary log
#          (not the one being written), oldest first. With 1, the binary log is closed
#          first (FLUSH BINARY LOGS), so what was written until now is in a closed one. The
#          operator archives closed logs from the primary (backup/archive.rs).
#   BINLOG <replication password> <name>
#       ─► that closed binary log's bytes.
#
# Environment: MARIADB_ROOT_PASSWORD (mariadb-backup logs in as root over 127.0.0.1, from a
# file in memory), REPLICATION_PASSWORD; for tests: SNS_DONOR_STATE (default
# /run/sns-donor), SNS_DONOR_PORT (3307), SNS_DONOR_DATA (/var/lib/mysql), SNS_DONOR_MYSQL
# (127.0.0.1:3306), SNS_DONOR_USER (root).
set -euo pipefail

state=${SNS_DONOR_STATE:-/run/sns-donor}
port=${SNS_DONOR_PORT:-3307}
data=${SNS_DONOR_DATA:-/var/lib/mysql}
mysql=${SNS_DONOR_MYSQL:-127.0.0.1:3306}
user=${SNS_DONOR_USER:-root}
login=$state/root.cnf

if [[ ${1:-} != --serve-one ]]; then
    mkdir -p "$state"
    umask 077
    # The generated passwords are alphanumeric; a user's own is quoted for the option file.
    password=${MARIADB_ROOT_PASSWORD//\\/\\\\}
    password=${password//\"/\\\"}
    for group in client mariadb-backup; do
        printf '[%s]\nuser = %s\npassword = "%s"\nhost = %s\nport = %s\n' \
            "$group" "$user" "$password" "${mysql%:*}" "${mysql##*:}"
    done >"$login"
    echo "clone-donor: serving copies of $data on port $port" >&2
    exec socat "TCP-LISTEN:$port,reuseaddr,fork" "EXEC:bash $0 --serve-one"
fi

# One request, read within 10 s (a connection that sends nothing is dropped).
read -r -t 10 request secret receiver || exit 0

sql() {
    mariadb --defaults-extra-file="$login" --batch --skip-column-names --execute="$1"
}

# The closed binary logs, oldest first: every one SHOW BINARY LOGS lists but the last.
closed_binlogs() {
    sql 'SHOW BINARY LOGS' | awk 'NR > 1 { print previous } { previous = $1 " " $2 }'
}

# Bytes the copy to `$1` has sent: what its mariadb-backup wrote (/proc/PID/io counts
# every write, so its log is taken off).
sent_to() {
    local pid written logged
    pid=$(cat "$state/$1.pid" 2>/dev/null) || { echo 0; return; }
    written=$(awk '/^wchar:/ { print $2 }' "/proc/$pid/io" 2>/dev/null || true)
    logged=$(stat -c %s "$state/$1.work/backup.log" 2>/dev/null || echo 0)
    echo $((${written:-0} > logged ? ${written:-0} - logged : 0))
}

case $request in
BINLOGS | BINLOG)
    if [[ ${secret:-} != "$REPLICATION_PASSWORD" ]]; then
        echo "clone-donor: refused $request: wrong password" >&2
        exit 0
    fi
    if [[ $request == BINLOGS ]]; then
        [[ ${receiver:-0} == 1 ]] && sql 'FLUSH BINARY LOGS'
        printf 'gtid %s\n' "$(sql 'SELECT @@global.gtid_binlog_pos')"
        closed_binlogs | sed 's/^/log /'
        exit 0
    fi
    # Only a closed log that the server lists: the name is checked, never used as a path
    # as it came.
    name=${receiver:-}
    while read -r log _; do
        if [[ $log == "$name" ]]; then
            exec cat -- "$data/$log"
        fi
    done < <(closed_binlogs)
    echo "clone-donor: refused BINLOG ${name:-?}: no such closed binary log" >&2
    ;;
PROGRESS)
    shopt -s nullglob
    for pid in "$state"/*.pid; do
        name=${pid##*/}
        name=${name%.pid}
        printf '%s %s %s\n' "$name" "$(sent_to "$name")" "$(cat "$state/$name.total" 2>/dev/null || echo 0)"
    done
    ;;
CLONE)
    if [[ ${secret:-} != "$REPLICATION_PASSWORD" ]]; then
        echo "clone-donor: refused a copy: wrong password (from ${receiver:-?})" >&2
        exit 0
    fi
    if [[ ! ${receiver:-} =~ ^[a-z0-9][a-z0-9.-]{0,252}$ ]]; then
        echo "clone-donor: refused a copy: no receiver name" >&2
        exit 0
    fi
    work=$state/$receiver.work
    trap 'rm -rf "$state/$receiver".*' EXIT
    mkdir -p "$work"
    # What the copy holds: the data files, not the binary logs.
    du -sb --exclude='mysql-bin.*' "$data" | cut -f1 >"$state/$receiver.total"
    options=()
    # A replica's copy carries the position it replicated up to; the primary's its own.
    if [[ -n $(mariadb --defaults-extra-file="$login" --batch --skip-column-names \
        --execute='SHOW SLAVE STATUS' 2>/dev/null) ]]; then
        options+=(--slave-info)
    fi
    started=$SECONDS
    echo "clone-donor: sending a copy to $receiver" >&2
    # In the background only to know its pid (PROGRESS reads what it wrote); its output is
    # the connection.
    mariadb-backup --defaults-extra-file="$login" --backup --stream=xbstream \
        --target-dir="$work" "${options[@]}" 2>"$work/backup.log" &
    backup=$!
    echo "$backup" >"$state/$receiver.pid"
    if ! wait "$backup"; then
        echo "clone-donor: the copy to $receiver failed:" >&2
        tail -n 20 "$work/backup.log" >&2
        exit 1
    fi
    # The image's health check logs in with a password its entrypoint wrote beside the data
    # (no database file, so not in the copy) for users that are in the copy: the receiver
    # needs this server's file. mbstream takes no dot file, hence the name.
    if [[ -f $data/.my-healthcheck.cnf ]]; then
        cp "$data/.my-healthcheck.cnf" "$work/sns-healthcheck.cnf"
        (cd "$work" && mbstream -c sns-healthcheck.cnf)
    fi
    # Last, the mark that the copy is whole: a receiver that does not find it was cut off.
    : >"$work/sns-copy-complete"
    (cd "$work" && mbstream -c sns-copy-complete)
    echo "clone-donor: sent a copy to $receiver in $((SECONDS - started)) s" >&2
    ;;
*)
    exit 0
    ;;
esac
