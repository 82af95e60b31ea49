#!/bin/bash
# healthcheck.sh of the test image localhost/mariadb:10.11, written for this project from the
# documented behaviour of the official image's healthcheck.sh (it is not that script).
#
#   healthcheck.sh [OPTION|TEST]...
#
# Options and tests are handled in order; the first test that fails ends the run with exit
# status 1 (0: every test passed). Options set before a test apply to it.
#
# Tests:
#   --connect                    a TCP connection to the server is accepted (only that: an
#                                access-denied answer counts; during the entrypoint's
#                                initialisation the server listens on its socket only)
#   --innodb_initialized         InnoDB has finished starting (recovery included)
#   --innodb_buffer_pool_loaded  the buffer pool dump has been loaded
#   --galera_online              wsrep_local_state: joining, donor, joined or synced
#   --galera_ready               wsrep_ready is ON
#   --replication                SHOW SLAVE STATUS passes the --replication_* checks below
#   --mariadbupgrade             the data directory needs no mariadb-upgrade
# Options:
#   --no-defaults, --defaults-file=F, --defaults-extra-file=F, --defaults-group-suffix=S
#                                for the mariadb client; without --defaults-extra-file,
#                                DATADIR/.my-healthcheck.cnf (made by the entrypoint) is used
#   --datadir=DIR                default: the server's datadir (/var/lib/mysql)
#   --su=USER, --su-mysql        run the rest as USER (mysql) with the options reset
#   --replication_io, --replication_sql: the IO / SQL thread is running
#   --replication_seconds_behind_master=N: at most N seconds behind
#   --replication_sql_remaining_events=N: at most N relay log events left (not checked here)
#   --replication_all            every connection (SHOW ALL SLAVES STATUS)
#   --replication_name=NAME      that connection (default: the default one)
# The test_* functions are called by name (test_${arg#--}).
# shellcheck disable=SC2317
set -eo pipefail

no_defaults='' defaults_file='' defaults_extra='' group_suffix='' datadir=''
repl_io='' repl_sql='' repl_behind='' repl_all='' repl_name=''

fail() {
    echo "healthcheck.sh: $*" >&2
    exit 1
}

server_datadir() {
    if [[ -n $datadir ]]; then
        echo "$datadir"
        return
    fi
    local d
    d=$(my_print_defaults --mysqld 2>/dev/null | sed -n 's/^--datadir=//p' | tail -n 1)
    echo "${d:-/var/lib/mysql}"
}

# client ARGS...: the mariadb client with the options given so far.
client() {
    local args=()
    [[ -n $no_defaults ]] && args+=(--no-defaults)
    [[ -n $defaults_file ]] && args+=(--defaults-file="$defaults_file")
    if [[ -n $defaults_extra ]]; then
        args+=(--defaults-extra-file="$defaults_extra")
    elif [[ -z $no_defaults && -r $(server_datadir)/.my-healthcheck.cnf ]]; then
        args+=(--defaults-extra-file="$(server_datadir)/.my-healthcheck.cnf")
    fi
    [[ -n $group_suffix ]] && args+=(--defaults-group-suffix="$group_suffix")
    mariadb "${args[@]}" --connect-timeout=5 "$@"
}

# query SQL: its single value, or fail.
query() { client --batch --skip-column-names --execute="$1"; }

status_value() {
    query "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '$1'"
}

test_connect() {
    local out
    if out=$(client --protocol=tcp --batch --execute='SELECT 1' 2>&1); then
        return 0
    fi
    # Refused, unreachable or dropped: not accepting. Anything else (access denied...) is an
    # answer from the server.
    case $out in
    *"ERROR 2002"* | *"ERROR 2003"* | *"ERROR 2005"* | *"ERROR 2006"* | *"ERROR 2013"* | \
        *"Can't connect"* | *"Lost connection"*)
        return 1
        ;;
    esac
    return 0
}

test_innodb_initialized() {
    [[ $(query "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE = 'InnoDB' AND SUPPORT IN ('YES', 'DEFAULT', 'ENABLED')") == 1 ]]
}

test_innodb_buffer_pool_loaded() {
    [[ $(status_value INNODB_BUFFER_POOL_LOAD_STATUS) == "Buffer pool(s) load completed"* ]]
}

test_galera_online() {
    local state
    state=$(status_value WSREP_LOCAL_STATE)
    [[ $state == [1234] ]]
}

test_galera_ready() { [[ $(status_value WSREP_READY) == ON ]]; }

test_replication() {
    local statement='SHOW SLAVE STATUS'
    if [[ -n $repl_all ]]; then
        statement='SHOW ALL SLAVES STATUS'
    elif [[ -n $repl_name ]]; then
        statement="SHOW SLAVE '${repl_name//\'/\\\'}' STATUS"
    fi
    local out
    out=$(client --vertical --execute="$statement") || return 1
    [[ -n $out ]] || return 1
    # One record per connection: name: value lines, separated by "*** N. row ***".
    awk -v io="$repl_io" -v sql="$repl_sql" -v behind="$repl_behind" '
        function check() {
            if (!seen) return
            if (io != "" && r["Slave_IO_Running"] != "Yes") bad = 1
            if (sql != "" && r["Slave_SQL_Running"] != "Yes") bad = 1
            if (behind != "" && (r["Seconds_Behind_Master"] == "NULL" || r["Seconds_Behind_Master"] + 0 > behind + 0)) bad = 1
        }
        /^\*+ [0-9]+\. row \*+$/ { check(); delete r; seen = 1; next }
        {
            line = $0
            sub(/^ +/, "", line)
            i = index(line, ": ")
            if (i) r[substr(line, 1, i - 1)] = substr(line, i + 2)
            else if (line ~ /:$/) r[substr(line, 1, length(line) - 1)] = ""
        }
        END { check(); exit (bad || !seen) }
    ' <<<"$out"
}

test_mariadbupgrade() {
    local dir info installed
    dir=$(server_datadir)
    for info in "$dir/mariadb_upgrade_info" "$dir/mysql_upgrade_info"; do
        [[ -r $info ]] && break
    done
    [[ -r $info ]] || return 1
    installed=$(mariadbd --version | sed -n 's/.*Ver \([0-9][0-9.]*\).*/\1/p')
    [[ -n $installed && $(<"$info") == "$installed"* ]]
}

while (($#)); do
    arg=$1
    shift
    case $arg in
    --su-mysql) exec gosu mysql "$0" "$@" ;;
    --su=*) exec gosu "${arg#--su=}" "$0" "$@" ;;
    --no-defaults) no_defaults=1 ;;
    --defaults-file=*) defaults_file=${arg#*=} ;;
    --defaults-extra-file=*) defaults_extra=${arg#*=} ;;
    --defaults-group-suffix=*) group_suffix=${arg#*=} ;;
    --datadir=*) datadir=${arg#*=} ;;
    --replication_io) repl_io=1 ;;
    --replication_sql) repl_sql=1 ;;
    --replication_seconds_behind_master=*) repl_behind=${arg#*=} ;;
    --replication_sql_remaining_events=*) ;;
    --replication_all) repl_all=1 ;;
    --replication_name=*) repl_name=${arg#*=} ;;
    --connect | --innodb_initialized | --innodb_buffer_pool_loaded | --galera_online | \
        --galera_ready | --replication | --mariadbupgrade)
        "test_${arg#--}" 2>/dev/null || fail "${arg#--} failed"
        ;;
    *) fail "unknown option or test: $arg" ;;
    esac
done
exit 0
