#!/usr/bin/env bash
# Real services for the integration tests, all on 127.0.0.1, all data under one directory.
#
#   testenv.sh start  DIR   start MariaDB (primary + 2 GTID replicas), a standalone Redis,
#                           a 6-node Redis Cluster and s3s-fs; write DIR/env and print its path
#   testenv.sh stop   DIR   stop every process listed in DIR/pids, then remove DIR
#                           (KEEP_TESTENV=1 keeps it, e.g. to read the logs)
#   testenv.sh status DIR   say, per service, whether it answers
#
# Faults, injected for real into an environment of one's own:
#   testenv.sh redis-down DIR        stop the standalone Redis (it saves its data first, as a
#                                    server with persistence would keep it)
#   testenv.sh redis-up DIR          start it again on the same port, with that data
#   testenv.sh kill-redis-node DIR PORT   SIGKILL one Redis Cluster node
# SNS_TESTENV_SEMI_SYNC=1 at start turns on semi-synchronous replication (a commit returns
# once a replica has it), as production runs it, so a killed primary loses no acknowledged
# commit.
#
# Facts this relies on are in docs/TESTENV.md of the shared docs (no Docker, no systemd, we
# are root). Every port is picked free by the kernel, so two environments can run side by
# side; every wait is bounded; every process is stopped by its own PID.
set -euo pipefail

SNS_TOOLS_DIR="${SNS_TOOLS_DIR:-$HOME/.cache/sns-platform}"
S3S_FS_BIN="$SNS_TOOLS_DIR/s3s-fs-0.14.1/bin/s3s-fs"
S3_BUCKET=sns-test
S3_REGION=us-east-1
LOG_TAG=testenv
WAIT_POLL_S=0.1
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

random_secret() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }

# ---------------------------------------------------------------------------------------
# MariaDB
# Node n1 starts as the primary, n2 and n3 as read-only replicas. Root logs in through the
# unix socket only (we are root); applications and tests use TCP users.

# Node N keeps its files in DIR/mysql/nN and its socket at DIR/mysql/sock/nN.sock (one
# directory for all sockets, given to the tests as SNS_TEST_MYSQL_SOCKET_DIR).
socket_of() { echo "$(dirname "$1")/sock/$(basename "$1").sock"; } # NODE_DIR

# mysql_root NODE_DIR ARGS...: run the mariadb client as root over the node's socket.
mysql_root() {
    local node=$1
    shift
    mariadb --no-defaults --user=root --socket="$(socket_of "$node")" --batch --skip-column-names "$@"
}

mysql_install_start() { # DIR: run mariadb-install-db for the 3 nodes in parallel (~2 s)
    local dir=$1 i
    for i in 1 2 3; do
        mkdir -p "$dir/mysql/n$i/data" "$dir/mysql/n$i/tmp"
    done
    mkdir -p "$dir/mysql/sock"
    # mariadbd runs as mysql (it refuses root): it must own its directories and be able to
    # reach them through every parent directory.
    chown -R mysql:mysql "$dir/mysql"
    if ! runuser -u mysql -- test -w "$dir/mysql/n1/data"; then
        die "user mysql cannot write $dir/mysql/n1/data: make every parent of $dir world-searchable (chmod o+x)"
    fi
    MYSQL_INSTALL_PIDS=()
    for i in 1 2 3; do
        # Each node gets its own tmpdir: with the shared /tmp, parallel installs were seen
        # to fail ("Unknown table 'mysql.tmp_proxies_priv'"). Unknown options such as
        # --tmpdir are passed on to mariadbd.
        mariadb-install-db --no-defaults --user=mysql --datadir="$dir/mysql/n$i/data" \
            --tmpdir="$dir/mysql/n$i/tmp" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$dir/mysql/n$i/install.log" 2>&1 &
        MYSQL_INSTALL_PIDS+=($!)
    done
}

mysql_install_wait() { # DIR
    local dir=$1 i=0 pid
    for pid in "${MYSQL_INSTALL_PIDS[@]}"; do
        i=$((i + 1))
        if ! wait "$pid"; then
            show_log "$dir/mysql/n$i/install.log"
            die "mariadb-install-db failed for node n$i"
        fi
    done
}

mysql_launch() { # DIR NODE_NUMBER PORT: start mariadbd in the background (it does not daemonize)
    local dir=$1 n=$2 port=$3 node="$1/mysql/n$2" extra=()
    ((n == 1)) || extra+=(--read-only=1)
    if [[ ${SNS_TESTENV_SEMI_SYNC:-0} == 1 ]]; then
        # Every node both ways: whichever replica is promoted acts as a semi-sync primary.
        extra+=(--rpl-semi-sync-master-enabled=ON --rpl-semi-sync-slave-enabled=ON
            --rpl-semi-sync-master-timeout=5000)
    fi
    # fd 9 (the port lock) is closed for the server, so the lock is not held by it. The
    # thread pool is what the operator configures (operator/src/reconcile/build/mysql.rs).
    nohup mariadbd --no-defaults --user=mysql --datadir="$node/data" --tmpdir="$node/tmp" \
        --port="$port" --bind-address=127.0.0.1 --socket="$(socket_of "$node")" \
        --pid-file="$node/mysqld.pid" --log-error="$node/error.log" \
        --server-id="$n" --log-bin=mysql-bin --log-slave-updates=1 --binlog-format=ROW \
        --gtid-strict-mode=1 --skip-name-resolve --innodb-buffer-pool-size=64M \
        --performance-schema=0 --max-connections=1000 --thread-handling=pool-of-threads \
        --report-host=127.0.0.1 --report-port="$port" "${extra[@]}" \
        >"$node/stdout.log" 2>&1 9>&- &
    # nohup execs mariadbd in the background child, so $! is the server's own PID.
    MYSQL_PIDS[n]=$!
    record_pid "$dir" "mysql-n$n" "$!" mariadbd
}

mysql_ready() { # NODE_DIR PORT: answers over TCP on its port (so the port is bound too)
    local node=$1 port=$2
    [[ "$(mysql_root "$node" -e 'SELECT @@port')" == "$port" ]]
}

mysql_wait_ready() { # DIR PORT1 PORT2 PORT3
    local dir=$1 i port
    shift
    i=0
    for port in "$@"; do
        i=$((i + 1))
        WAIT_PID=${MYSQL_PIDS[i]} wait_for "mariadb n$i (port $port)" 60 \
            "$dir/mysql/n$i/error.log" mysql_ready "$dir/mysql/n$i" "$port"
        # Same process as the one recorded at launch (the pid file is what mariadbd says).
        [[ "$(pid_from_file "$dir/mysql/n$i/mysqld.pid" "$dir/mysql/n$i/error.log")" == \
            "${MYSQL_PIDS[i]}" ]] || die "mariadb n$i: pid file differs from the launched PID"
    done
}

# Users are created on the primary before replication starts; the replicas start from an
# empty GTID position, so they replay the primary's whole binlog, user creation included.
mysql_create_users() { # DIR
    local dir=$1
    mysql_root "$dir/mysql/n1" <<EOF
-- The application user: everything on every database (tests create test_<uuid> databases),
-- but no SUPER / READ_ONLY ADMIN, so read_only on the replicas applies to it.
CREATE USER 'sns'@'127.0.0.1' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO 'sns'@'127.0.0.1';
REVOKE SUPER, READ_ONLY ADMIN ON *.* FROM 'sns'@'127.0.0.1';
-- For tests that stop/start replication and promote a replica.
CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY '$MYSQL_ADMIN_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO 'admin'@'127.0.0.1' WITH GRANT OPTION;
-- Replication.
CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY '$MYSQL_REPL_PASSWORD';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
EOF
}

mysql_start_replication() { # DIR PRIMARY_PORT
    local dir=$1 primary_port=$2 i
    for i in 2 3; do
        mysql_root "$dir/mysql/n$i" <<EOF
CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$primary_port,
  MASTER_USER='repl', MASTER_PASSWORD='$MYSQL_REPL_PASSWORD',
  MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
START SLAVE;
EOF
    done
}

replica_running() { # NODE_DIR: both replication threads say Yes
    local status
    status=$(mysql_root "$1" --column-names -e 'SHOW SLAVE STATUS\G')
    grep -q 'Slave_IO_Running: Yes' <<<"$status" && grep -q 'Slave_SQL_Running: Yes' <<<"$status"
}

replica_caught_up() { # NODE_DIR GTID_POS: applied everything up to GTID_POS
    [[ "$(mysql_root "$1" -e "SELECT MASTER_GTID_WAIT('$2', 0.5)")" == 0 ]]
}

mysql_wait_replication() { # DIR
    local dir=$1 i pos
    pos=$(mysql_root "$dir/mysql/n1" -e 'SELECT @@gtid_binlog_pos')
    for i in 2 3; do
        wait_for "replication on mariadb n$i" 30 "$dir/mysql/n$i/error.log" \
            replica_running "$dir/mysql/n$i"
        # The users were created through replication: wait until they are applied.
        wait_for "mariadb n$i applying $pos" 30 "$dir/mysql/n$i/error.log" \
            replica_caught_up "$dir/mysql/n$i" "$pos"
        [[ "$(mysql_root "$dir/mysql/n$i" -e \
            "SELECT COUNT(*) FROM mysql.user WHERE user IN ('sns','admin','repl')")" == 3 ]] ||
            die "users missing on mariadb n$i after replication"
    done
}

# ---------------------------------------------------------------------------------------
# Redis

redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]; }

# redis-server --daemonize yes forks and its first process exits: the server's PID is the
# one in its pid file.
redis_launch_standalone() { # DIR PORT
    local d="$1/redis" port=$2
    mkdir -p "$d"
    rm -f "$d/redis.pid"
    # --save '': no snapshots while running; `redis-down` saves once on shutdown, and a
    # restart loads that dump.rdb from --dir.
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$d" --pidfile "$d/redis.pid" --logfile "$d/redis.log" --daemonize yes \
        --maxmemory 256mb --maxmemory-policy volatile-lru 9>&-
    local pid
    pid=$(pid_from_file "$d/redis.pid" "$d/redis.log") # (a failure here stops the script)
    record_pid "$1" redis "$pid" redis-server
}

# A cluster node uses a second port, the cluster bus (default: port + 10000, which may be
# taken or out of range), so the bus port is picked free too and given explicitly.
redis_launch_cluster_node() { # DIR INDEX PORT BUS_PORT
    local d="$1/redis-cluster/n$2" port=$3 bus=$4
    mkdir -p "$d"
    # --repl-diskless-sync-delay 0: a replica syncs at once; with the default 5 s a master
    # killed early by a failover test would have no synced replica to fail over to.
    # maxmemory: the policy means nothing without a limit; 6 nodes, so a smaller one each.
    redis-server --port "$port" --cluster-port "$bus" --bind 127.0.0.1 --dir "$d" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 500 \
        --save '' --appendonly no --repl-diskless-sync-delay 0 \
        --pidfile "$d/redis.pid" --logfile "$d/redis.log" --daemonize yes \
        --maxmemory 128mb --maxmemory-policy volatile-lru 9>&-
    local pid
    pid=$(pid_from_file "$d/redis.pid" "$d/redis.log")
    record_pid "$1" "redis-cluster-n$2" "$pid" redis-server
}

redis_wait_ready() { # NAME DIR_OF_NODE PORT
    local name=$1 d=$2 port=$3
    wait_for "$name (port $port)" 15 "$d/redis.log" redis_ping "$port"
}

cluster_node_ok() { # PORT: cluster_state ok, and a replica's link to its master is up
    local port=$1 info
    info=$(redis-cli -h 127.0.0.1 -p "$port" cluster info) || return 1
    grep -q '^cluster_state:ok' <<<"$info" || return 1
    info=$(redis-cli -h 127.0.0.1 -p "$port" info replication) || return 1
    if grep -q '^role:slave' <<<"$info"; then
        grep -q '^master_link_status:up' <<<"$info" || return 1
    fi
}

redis_cluster_create() { # DIR PORT...
    local dir=$1 addrs=() port i=0
    shift
    for port in "$@"; do addrs+=("127.0.0.1:$port"); done
    if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        >"$dir/redis-cluster/create.log" 2>&1; then
        show_log "$dir/redis-cluster/create.log"
        die "redis-cli --cluster create failed"
    fi
    for port in "$@"; do
        i=$((i + 1))
        wait_for "redis cluster node n$i (port $port): cluster_state:ok and replica link up" \
            30 "$dir/redis-cluster/n$i/redis.log" cluster_node_ok "$port"
    done
}

# ---------------------------------------------------------------------------------------
# s3s-fs: an S3 server over a directory; DIR/s3/root/<bucket> is a bucket.

s3_launch() { # DIR PORT
    local dir=$1 port=$2
    mkdir -p "$dir/s3/root/$S3_BUCKET"
    # nohup execs s3s-fs in the background child, so $! is the server's own PID.
    nohup "$S3S_FS_BIN" --host 127.0.0.1 --port "$port" \
        --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$dir/s3/root" \
        >"$dir/s3/s3s-fs.log" 2>&1 9>&- &
    S3_PID=$!
    record_pid "$dir" s3s-fs "$S3_PID" s3s-fs
}

# An unsigned request is refused with 403: that proves the server is up and checks auth.
s3_answers_403() { [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/")" == 403 ]]; }

# A SigV4-signed HEAD of the bucket (curl signs it) says the bucket exists and the keys work.
# S3 wants the payload hash in x-amz-content-sha256 (curl does not add it): that of "".
s3_bucket_ok() {
    [[ "$(curl -s -o /dev/null -w '%{http_code}' -I \
        -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
        --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
        "http://127.0.0.1:$1/$S3_BUCKET")" == 200 ]]
}

# ---------------------------------------------------------------------------------------

# EXIT trap of `start`: if it failed, stop what was already started; the directory is kept,
# with its logs, for a look.
on_start_exit() {
    local rc=$?
    if ((rc != 0)); then
        log "start failed; stopping what was started (logs kept in $STARTING_DIR)"
        KEEP_TESTENV=1 cmd_stop "$STARTING_DIR" || true
    fi
}

join_by() { # SEP WORDS...
    local sep=$1 out=$2
    shift 2
    local w
    for w in "$@"; do out+="$sep$w"; done
    echo "$out"
}

cmd_start() {
    local dir=$1
    local t0=$SECONDS
    [[ -x $S3S_FS_BIN ]] ||
        die "s3s-fs not found at $S3S_FS_BIN: run .ci/install-tools.sh (it builds it with cargo install)"
    local tool
    for tool in mariadbd mariadb mariadb-install-db redis-server redis-cli curl python3 runuser; do
        command -v "$tool" >/dev/null || die "$tool not found: run .ci/install-tools.sh"
    done
    if [[ -e $dir/pids ]]; then
        die "$dir/pids exists: an environment may be running there (testenv.sh stop $dir)"
    fi
    mkdir -p "$dir"
    # mariadbd runs as user mysql and must get through DIR (mktemp -d makes it 0700).
    chmod go+x "$dir"
    dir=$(cd "$dir" && pwd) # absolute: it goes into the env file and server arguments
    # A unix socket path is limited to 107 bytes.
    ((${#dir} + 18 <= 107)) || die "path too long for mariadb sockets: $dir"
    : >"$dir/pids"

    STARTING_DIR=$dir
    trap on_start_exit EXIT

    MYSQL_PASSWORD=$(random_secret)
    MYSQL_ADMIN_PASSWORD=$(random_secret)
    MYSQL_REPL_PASSWORD=$(random_secret)
    S3_ACCESS_KEY=$(random_secret)
    S3_SECRET_KEY=$(random_secret)

    # The slowest step needs no port: it runs while we take the lock and start Redis.
    mysql_install_start "$dir"

    take_port_lock

    # 3 MariaDB + 1 Redis + 6 cluster nodes + 6 cluster bus + 1 S3 = 17 ports.
    local ports
    read -r -a ports <<<"$(free_ports 17)"
    local mysql_ports=("${ports[@]:0:3}")
    local redis_port=${ports[3]}
    local cluster_ports=("${ports[@]:4:6}")
    local bus_ports=("${ports[@]:10:6}")
    local s3_port=${ports[16]}

    redis_launch_standalone "$dir" "$redis_port"
    local i
    for i in 0 1 2 3 4 5; do
        redis_launch_cluster_node "$dir" $((i + 1)) "${cluster_ports[i]}" "${bus_ports[i]}"
    done
    s3_launch "$dir" "$s3_port"

    redis_wait_ready redis "$dir/redis" "$redis_port"
    for i in 0 1 2 3 4 5; do
        redis_wait_ready "redis cluster node n$((i + 1))" "$dir/redis-cluster/n$((i + 1))" \
            "${cluster_ports[i]}"
    done
    WAIT_PID=$S3_PID wait_for "s3s-fs (port $s3_port)" 15 "$dir/s3/s3s-fs.log" \
        s3_answers_403 "$s3_port"

    # Form the cluster while mariadb-install-db is still running (it takes ~2 s).
    redis_cluster_create "$dir" "${cluster_ports[@]}"

    mysql_install_wait "$dir"
    MYSQL_PIDS=()
    for i in 1 2 3; do
        mysql_launch "$dir" "$i" "${mysql_ports[i - 1]}"
    done
    mysql_wait_ready "$dir" "${mysql_ports[@]}"

    # Every port is bound by its server now: another start may pick ports.
    release_port_lock

    mysql_create_users "$dir"
    mysql_start_replication "$dir" "${mysql_ports[0]}"
    mysql_wait_replication "$dir"
    s3_bucket_ok "$s3_port" || die "s3s-fs does not serve bucket $S3_BUCKET (signed HEAD failed)"

    local cluster_urls=() p
    for p in "${cluster_ports[@]}"; do cluster_urls+=("redis://127.0.0.1:$p"); done
    cat >"$dir/env" <<EOF
export SNS_TESTENV_DIR=$dir
export SNS_TEST_MYSQL_URL=mysql://sns:$MYSQL_PASSWORD@127.0.0.1:${mysql_ports[0]}
export SNS_TEST_MYSQL_ADMIN_URL=mysql://admin:$MYSQL_ADMIN_PASSWORD@127.0.0.1:${mysql_ports[0]}
export SNS_TEST_MYSQL_PRIMARY_PORT=${mysql_ports[0]}
export SNS_TEST_MYSQL_REPLICA_PORTS=${mysql_ports[1]},${mysql_ports[2]}
export SNS_TEST_MYSQL_USER=sns
export SNS_TEST_MYSQL_PASSWORD=$MYSQL_PASSWORD
export SNS_TEST_MYSQL_ADMIN_USER=admin
export SNS_TEST_MYSQL_ADMIN_PASSWORD=$MYSQL_ADMIN_PASSWORD
export SNS_TEST_MYSQL_REPL_USER=repl
export SNS_TEST_MYSQL_REPL_PASSWORD=$MYSQL_REPL_PASSWORD
export SNS_TEST_MYSQL_DIR=$dir/mysql
export SNS_TEST_MYSQL_SOCKET_DIR=$dir/mysql/sock
export SNS_TEST_REDIS_URL=redis://127.0.0.1:$redis_port
export SNS_TEST_REDIS_CLUSTER_NODES=$(join_by , "${cluster_urls[@]}")
export SNS_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
export SNS_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY
export SNS_TEST_S3_SECRET_KEY=$S3_SECRET_KEY
export SNS_TEST_S3_BUCKET=$S3_BUCKET
export SNS_TEST_S3_REGION=$S3_REGION
EOF
    trap - EXIT
    log "started in $((SECONDS - t0)) s (mariadb sockets: $dir/mysql/sock/n{1,2,3}.sock)"
    echo "$dir/env"
}

cmd_stop() {
    local dir=$1 name pid comm
    if [[ ! -f $dir/pids ]]; then
        log "no $dir/pids: nothing to stop"
    else
        local entries=()
        while read -r name pid comm; do
            [[ -n $pid ]] && entries+=("$name:$pid:$comm")
        done <"$dir/pids"
        # A clean shutdown of mariadbd takes about a second.
        stop_group 10 "${entries[@]+"${entries[@]}"}"
    fi
    if [[ ${KEEP_TESTENV:-0} == 1 ]]; then
        log "stopped; kept $dir"
    else
        rm -rf "$dir"
        log "stopped; removed $dir"
    fi
}

cmd_status() {
    local dir=$1
    [[ -f $dir/env ]] || die "no $dir/env: not started (or start failed)"
    # shellcheck disable=SC1091
    source "$dir/env"
    local i port out ok=0
    for i in 1 2 3; do
        if out=$(mysql_root "$dir/mysql/n$i" -e \
            "SELECT CONCAT('port ', @@port, ' read_only=', @@read_only, ' gtid=', @@gtid_current_pos)" 2>&1); then
            local role=primary
            if [[ -n "$(mysql_root "$dir/mysql/n$i" -e 'SHOW SLAVE STATUS')" ]]; then
                if replica_running "$dir/mysql/n$i"; then role="replica (replicating)"; else role="replica (NOT replicating)"; fi
            fi
            echo "mariadb n$i: up, $role, $out"
        else
            echo "mariadb n$i: DOWN"
            ok=1
        fi
    done
    port=${SNS_TEST_REDIS_URL##*:}
    if redis_ping "$port"; then echo "redis $port: up"; else echo "redis $port: DOWN"; ok=1; fi
    local url
    IFS=, read -r -a urls <<<"$SNS_TEST_REDIS_CLUSTER_NODES"
    for url in "${urls[@]}"; do
        port=${url##*:}
        if cluster_node_ok "$port"; then
            echo "redis cluster $port: up, $(redis-cli -p "$port" role | head -1)"
        else
            echo "redis cluster $port: DOWN or not ok"
            ok=1
        fi
    done
    port=${SNS_TEST_S3_ENDPOINT##*:}
    if s3_answers_403 "$port"; then echo "s3s-fs $port: up"; else echo "s3s-fs $port: DOWN"; ok=1; fi
    return $ok
}

source_env() { # DIR
    [[ -f $1/env ]] || die "no $1/env: not started (or start failed)"
    # shellcheck disable=SC1091
    source "$1/env"
}

cmd_redis_down() {
    local dir=$1 port
    source_env "$dir"
    port=${SNS_TEST_REDIS_URL##*:}
    redis-cli -h 127.0.0.1 -p "$port" shutdown save >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 10))
    while redis_ping "$port"; do
        ((SECONDS < deadline)) || die "redis on $port still answers 10 s after SHUTDOWN"
        sleep 0.05
    done
    log "redis $port: down"
}

cmd_redis_up() {
    local dir=$1 port
    source_env "$dir"
    port=${SNS_TEST_REDIS_URL##*:}
    redis_launch_standalone "$dir" "$port"
    redis_wait_ready redis "$dir/redis" "$port"
    log "redis $port: up again"
}

cmd_kill_redis_node() {
    local dir=$1 port=$2 d pid
    source_env "$dir"
    for d in "$dir"/redis-cluster/n*; do
        if [[ "$(redis-cli -h 127.0.0.1 -p "$port" config get dir 2>/dev/null | tail -1)" == "$d" ]]; then
            pid=$(cat "$d/redis.pid")
            kill -KILL "$pid"
            log "redis cluster node $port (pid $pid): killed"
            return
        fi
    done
    die "no cluster node of $dir answers on port $port"
}

usage() {
    echo "usage: $0 start|stop|status|redis-down|redis-up DIR | kill-redis-node DIR PORT" >&2
    exit 2
}

(($# >= 2)) || usage
case $1 in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
status) cmd_status "$2" ;;
redis-down) cmd_redis_down "$2" ;;
redis-up) cmd_redis_up "$2" ;;
kill-redis-node) (($# == 3)) || usage; cmd_kill_redis_node "$2" "$3" ;;
*) usage ;;
esac
