#!/bin/bash
# Entrypoint of the test image localhost/mariadb:10.11, written for this project from the
# documented behaviour of the official mariadb image's entrypoint (it is not that script):
#
#   docker-entrypoint.sh mariadbd [ARGS...]   (or mysqld, or only --options: mariadbd is added)
#     - as root: makes the data directory and /run/mysqld belong to mysql, then runs itself
#       again as mysql (gosu);
#     - an empty data directory (no mysql/ in it) is initialised: mariadb-install-db, then a
#       temporary server listening on the socket only (no TCP, so healthcheck.sh --connect
#       fails until the real server is up) sets the root password and the users the
#       MARIADB_* environment asks for, loads time zones, runs /docker-entrypoint-initdb.d/
#       (*.sh run or sourced, *.sql, *.sql.gz, *.sql.xz, *.sql.zst) in name order, and stops;
#     - then execs the server with ARGS. A data directory that exists is used as it is.
#   docker-entrypoint.sh OTHER...             execs OTHER as given.
#
# Environment (MYSQL_* is read where MARIADB_* is unset; NAME_FILE reads NAME from a file):
#   MARIADB_ROOT_PASSWORD | MARIADB_ROOT_PASSWORD_HASH | MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 |
#   MARIADB_RANDOM_ROOT_PASSWORD=1 (one is required for a new data directory),
#   MARIADB_ROOT_HOST (default %), MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD |
#   MARIADB_PASSWORD_HASH, MARIADB_MYSQL_LOCALHOST_USER=1 (+ MARIADB_MYSQL_LOCALHOST_GRANTS),
#   MARIADB_HEALTHCHECK_GRANTS (default USAGE), MARIADB_INITDB_SKIP_TZINFO=1,
#   MARIADB_REPLICATION_USER + MARIADB_REPLICATION_PASSWORD[_HASH], MARIADB_MASTER_HOST
#   (+ MARIADB_MASTER_PORT): a replica of that host (GTID, slave_pos).
#   MARIADB_AUTO_UPGRADE is accepted; this image runs no upgrade (the version never changes).
set -eo pipefail
shopt -s nullglob

say() { printf '%s [%s] [Entrypoint]: %s\n' "$(date '+%F %T%:z')" "$1" "$2" >&2; }
note() { say Note "$*"; }
warn() { say Warn "$*"; }
fail() {
    say ERROR "$*"
    exit 1
}

# env_value NAME [DEFAULT]: MARIADB_NAME, else MYSQL_NAME, else the contents of the file
# MARIADB_NAME_FILE (or MYSQL_NAME_FILE), else DEFAULT. Both NAME and NAME_FILE: an error.
env_value() {
    local name=$1 default=${2-} prefix var file
    for prefix in MARIADB MYSQL; do
        var=${prefix}_$name
        file=${prefix}_${name}_FILE
        if [[ -n ${!var:-} && -n ${!file:-} ]]; then
            fail "both $var and $file are set (they are exclusive)"
        fi
        if [[ -n ${!var:-} ]]; then
            printf '%s' "${!var}"
            return
        fi
        if [[ -n ${!file:-} ]]; then
            [[ -r ${!file} ]] || fail "$file: cannot read ${!file}"
            printf '%s' "$(<"${!file}")"
            return
        fi
    done
    printf '%s' "$default"
}

# sql_string TEXT: TEXT as an SQL string literal body (backslashes and quotes escaped).
sql_string() {
    local s=${1//\\/\\\\}
    printf '%s' "${s//\'/\\\'}"
}

# sql_name TEXT: TEXT as the body of a `quoted` identifier.
sql_name() { printf '%s' "${1//\`/\`\`}"; }

random_password() {
    local p=
    while ((${#p} < 32)); do
        p+=$(head -c 48 /dev/urandom | base64 -w0 | tr -d '/+=')
    done
    printf '%s' "${p:0:32}"
}

# server_option NAME: the value of option NAME in `mariadbd ARGS... --verbose --help` (stdin).
server_option() { awk -v n="$1" '$1 == n { print $2; exit }'; }

wants_help() {
    local arg
    for arg; do
        case $arg in
        -'?' | --help | --print-defaults | -V | --version) return 0 ;;
        esac
    done
    return 1
}

# docker_process_sql [CLIENT ARGS...]: runs SQL from stdin on the temporary server as root.
# Also for *.sh files in /docker-entrypoint-initdb.d, which are sourced when not executable.
docker_process_sql() {
    if [[ -n $MARIADB_DATABASE_NAME ]]; then
        set -- --database="$MARIADB_DATABASE_NAME" "$@"
    fi
    MYSQL_PWD=$ROOT_PASSWORD_NOW mariadb --no-defaults --protocol=socket --socket="$SOCKET" \
        --user=root --batch --skip-column-names "$@"
}

temp_server_start() {
    note "starting a temporary server (socket only) to initialise the database"
    "$@" --skip-networking --socket="$SOCKET" --default-time-zone=SYSTEM --wsrep_on=OFF \
        --expire-logs-days=0 --skip-slave-start --loose-innodb_buffer_pool_load_at_startup=0 \
        --skip-ssl &
    TEMP_SERVER_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$TEMP_SERVER_PID" 2>/dev/null; then
            wait "$TEMP_SERVER_PID" || true
            fail "the temporary server exited during start"
        fi
        if MYSQL_PWD=$ROOT_PASSWORD_NOW mariadb --no-defaults --protocol=socket \
            --socket="$SOCKET" --user=root --execute='SELECT 1' >/dev/null 2>&1; then
            note "temporary server started"
            return
        fi
        sleep 0.2
    done
    fail "the temporary server did not answer within 60 s"
}

temp_server_stop() {
    note "stopping the temporary server"
    kill -TERM "$TEMP_SERVER_PID"
    wait "$TEMP_SERVER_PID" || fail "the temporary server did not stop cleanly"
    note "temporary server stopped"
}

# The SQL that makes the accounts asked for; run with the binary log off.
setup_sql() {
    local root_host root_hash user_password user_hash database user grants ident
    root_host=$(env_value ROOT_HOST %)
    root_hash=$(env_value ROOT_PASSWORD_HASH)
    if [[ -n $root_hash ]]; then
        ident="IDENTIFIED BY PASSWORD '$(sql_string "$root_hash")'"
    else
        ident="IDENTIFIED BY '$(sql_string "$ROOT_PASSWORD")'"
    fi
    echo "SET @@SESSION.SQL_LOG_BIN = 0;"
    echo "SET @orig_sql_mode = @@SESSION.SQL_MODE;"
    echo "SET @@SESSION.SQL_MODE = REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');"
    # root has one account on this host (plus MARIADB_ROOT_HOST's); no anonymous accounts.
    echo "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1', ''@'localhost';"
    echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS ''root''@''', @@hostname, ''', ''''@''', @@hostname, '''');"
    echo "ALTER USER 'root'@'localhost' $ident;"
    if [[ $root_host != localhost ]]; then
        echo "CREATE USER 'root'@'$(sql_string "$root_host")' $ident;"
        echo "GRANT ALL ON *.* TO 'root'@'$(sql_string "$root_host")' WITH GRANT OPTION;"
        echo "GRANT PROXY ON ''@'%' TO 'root'@'$(sql_string "$root_host")' WITH GRANT OPTION;"
    fi
    if [[ -n $(env_value MYSQL_LOCALHOST_USER) ]]; then
        grants=$(env_value MYSQL_LOCALHOST_GRANTS USAGE)
        echo "CREATE USER IF NOT EXISTS 'mysql'@'localhost' IDENTIFIED VIA unix_socket;"
        echo "GRANT $grants ON *.* TO 'mysql'@'localhost';"
    fi
    grants=$(env_value HEALTHCHECK_GRANTS USAGE)
    for host in 127.0.0.1 ::1 localhost; do
        echo "CREATE USER 'healthcheck'@'$host' IDENTIFIED BY '$(sql_string "$HEALTHCHECK_PASSWORD")';"
        echo "GRANT $grants ON *.* TO 'healthcheck'@'$host';"
    done
    database=$(env_value DATABASE)
    if [[ -n $database ]]; then
        echo "CREATE DATABASE IF NOT EXISTS \`$(sql_name "$database")\`;"
    fi
    user=$(env_value USER)
    if [[ -n $user ]]; then
        user_password=$(env_value PASSWORD)
        user_hash=$(env_value PASSWORD_HASH)
        if [[ -n $user_hash ]]; then
            ident="IDENTIFIED BY PASSWORD '$(sql_string "$user_hash")'"
        else
            ident="IDENTIFIED BY '$(sql_string "$user_password")'"
        fi
        echo "CREATE USER '$(sql_string "$user")'@'%' $ident;"
        if [[ -n $database ]]; then
            echo "GRANT ALL ON \`$(sql_name "$database")\`.* TO '$(sql_string "$user")'@'%';"
        fi
    fi
    local repl_user repl_password repl_hash master
    repl_user=$(env_value REPLICATION_USER)
    repl_password=$(env_value REPLICATION_PASSWORD)
    repl_hash=$(env_value REPLICATION_PASSWORD_HASH)
    master=$(env_value MASTER_HOST)
    if [[ -n $repl_user && -z $master ]]; then
        if [[ -n $repl_hash ]]; then
            ident="IDENTIFIED BY PASSWORD '$(sql_string "$repl_hash")'"
        else
            ident="IDENTIFIED BY '$(sql_string "$repl_password")'"
        fi
        echo "CREATE USER '$(sql_string "$repl_user")'@'%' $ident;"
        echo "GRANT REPLICATION REPLICA ON *.* TO '$(sql_string "$repl_user")'@'%';"
    fi
    if [[ -n $master ]]; then
        echo "CHANGE MASTER TO MASTER_HOST='$(sql_string "$master")', MASTER_PORT=$(env_value MASTER_PORT 3306), MASTER_USER='$(sql_string "$repl_user")', MASTER_PASSWORD='$(sql_string "$repl_password")', MASTER_CONNECT_RETRY=10, MASTER_USE_GTID=slave_pos;"
    fi
    echo "SET @@SESSION.SQL_MODE = @orig_sql_mode;"
}

# Runs the files of /docker-entrypoint-initdb.d in name order.
process_init_files() {
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case $f in
        *.sh)
            if [[ -x $f ]]; then
                note "$f: running"
                "$f"
            else
                note "$f: sourcing"
                # shellcheck disable=SC1090
                . "$f"
            fi
            ;;
        *.sql)
            note "$f: running"
            docker_process_sql <"$f"
            ;;
        *.sql.gz)
            note "$f: running"
            gunzip -c "$f" | docker_process_sql
            ;;
        *.sql.xz)
            note "$f: running"
            xzcat "$f" | docker_process_sql
            ;;
        *.sql.zst)
            note "$f: running"
            zstd -dc "$f" | docker_process_sql
            ;;
        *) note "$f: ignored" ;;
        esac
    done
}

initialise() {
    local root_password allow_empty random
    root_password=$(env_value ROOT_PASSWORD)
    allow_empty=$(env_value ALLOW_EMPTY_ROOT_PASSWORD)
    allow_empty=${allow_empty:-$(env_value ALLOW_EMPTY_PASSWORD)}
    random=$(env_value RANDOM_ROOT_PASSWORD)
    if [[ -z $root_password && -z $(env_value ROOT_PASSWORD_HASH) && -z $allow_empty &&
        -z $random ]]; then
        fail "the database is not initialised and no root password option is set: set one of MARIADB_ROOT_PASSWORD, MARIADB_ROOT_PASSWORD_HASH, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD"
    fi
    if [[ -n $random && -z $root_password ]]; then
        root_password=$(random_password)
        note "GENERATED ROOT PASSWORD: $root_password"
    fi
    ROOT_PASSWORD=$root_password
    if [[ -n $(env_value USER) && -z $(env_value PASSWORD) && -z $(env_value PASSWORD_HASH) &&
        -z $allow_empty ]]; then
        fail "MARIADB_USER is set without MARIADB_PASSWORD or MARIADB_PASSWORD_HASH"
    fi
    if [[ $(env_value USER) == root ]]; then
        fail "MARIADB_USER=root: set the root password with MARIADB_ROOT_PASSWORD instead"
    fi

    note "initialising the data directory $DATADIR"
    # The server's own options (from the command line) apply to the new data directory too.
    mariadb-install-db "${@:2}" --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
        --skip-test-db --default-time-zone=SYSTEM --skip-log-bin --expire-logs-days=0 \
        --loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0 \
        >/dev/null || fail "mariadb-install-db failed"
    note "data directory initialised"

    ROOT_PASSWORD_NOW=
    MARIADB_DATABASE_NAME=
    temp_server_start "$@"
    if [[ -z $(env_value INITDB_SKIP_TZINFO) ]]; then
        mariadb-tzinfo-to-sql --skip-write-binlog /usr/share/zoneinfo 2>/dev/null |
            docker_process_sql --database=mysql
    fi
    HEALTHCHECK_PASSWORD=$(random_password)
    setup_sql | docker_process_sql --database=mysql
    ROOT_PASSWORD_NOW=$ROOT_PASSWORD
    if [[ -n $(env_value ROOT_PASSWORD_HASH) && -z $ROOT_PASSWORD ]]; then
        warn "only MARIADB_ROOT_PASSWORD_HASH is set: initdb files cannot log in as root"
    fi
    umask 077
    printf '[mariadb-client]\nport=%s\nsocket=%s\nuser=healthcheck\npassword=%s\nprotocol=tcp\n' \
        "$PORT" "$SOCKET" "$HEALTHCHECK_PASSWORD" >"$DATADIR/.my-healthcheck.cnf"
    umask 022
    MARIADB_DATABASE_NAME=$(env_value DATABASE)
    export MARIADB_DATABASE_NAME ROOT_PASSWORD_NOW SOCKET
    process_init_files
    temp_server_stop
    note "initialisation done: the server starts"
}

main() {
    if [[ ${1:0:1} == - ]]; then
        set -- mariadbd "$@"
    fi
    case $1 in
    mariadbd | mysqld | */mariadbd | */mysqld) ;;
    *) exec "$@" ;;
    esac
    if wants_help "$@"; then
        exec "$@"
    fi
    local options
    options=$("$@" --verbose --help 2>/dev/null) || true
    DATADIR=$(server_option datadir <<<"$options")
    DATADIR=${DATADIR%/}
    DATADIR=${DATADIR:-/var/lib/mysql}
    SOCKET=$(server_option socket <<<"$options")
    SOCKET=${SOCKET:-/run/mysqld/mysqld.sock}
    PORT=$(server_option port <<<"$options")
    PORT=${PORT:-3306}
    if ((EUID == 0)); then
        mkdir -p "$DATADIR" "$(dirname "$SOCKET")"
        # Only what does not belong to mysql yet: a big data directory is not walked twice.
        find "$DATADIR" "$(dirname "$SOCKET")" \! -user mysql -exec chown mysql:mysql {} +
        exec gosu mysql "${BASH_SOURCE[0]}" "$@"
    fi
    if [[ ! -d $DATADIR/mysql ]]; then
        initialise "$@"
    elif [[ -n $(env_value AUTO_UPGRADE) ]]; then
        note "MARIADB_AUTO_UPGRADE: nothing to upgrade in this image"
    fi
    exec "$@"
}

# Sourced (by an init script that wants docker_process_sql): define the functions only.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
