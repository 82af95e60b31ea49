# shellcheck shell=bash
# Helpers shared by testenv.sh and control-plane.sh; sourced by them, not run. Before
# sourcing, the script sets:
#   LOG_TAG      the tag of its log lines ([LOG_TAG 12:34:56] ...)
#   WAIT_POLL_S  how often wait_for runs its check, in seconds
: "${LOG_TAG:?set LOG_TAG before sourcing lib.sh}"
: "${WAIT_POLL_S:?set WAIT_POLL_S before sourcing lib.sh}"

# Two `start`s running at once must not be handed the same port between the moment we pick
# it and the moment the server binds it: that window is serialized by this lock. It is
# shared by testenv.sh and control-plane.sh: both pick free ports the same way.
PORT_LOCK="${TMPDIR:-/tmp}/sns-testenv.ports.lock"

log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Print the last lines of a log file to stderr, to say why a service (or component) failed.
show_log() {
    local file=$1
    if [[ -f $file ]]; then
        printf -- '----- tail of %s -----\n' "$file" >&2
        tail -n 30 "$file" >&2 || true
        printf -- '-----\n' >&2
    else
        printf -- '(no log file %s)\n' "$file" >&2
    fi
}

# wait_for NAME TIMEOUT_S LOGFILE CMD...: run CMD every WAIT_POLL_S s until it succeeds. On
# timeout, name the service, show the tail of its log and fail. With WAIT_PID=pid set, also
# fail as soon as that process has exited (a server that died will not answer later).
wait_for() {
    local name=$1 timeout=$2 logfile=$3
    shift 3
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [[ -n ${WAIT_PID:-} ]] && ! is_running "$WAIT_PID"; then
            log "$name exited (pid $WAIT_PID) while we waited for it"
            show_log "$logfile"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "timeout after ${timeout}s waiting for $name"
            show_log "$logfile"
            return 1
        fi
        sleep "$WAIT_POLL_S"
    done
}

# free_ports N: N distinct free TCP ports on 127.0.0.1, chosen by the kernel (bind to port 0).
# All N sockets are held open together so that they are distinct from each other.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
n = int(sys.argv[1])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
ports = [s.getsockname()[1] for s in socks]
assert len(set(ports)) == n
print(" ".join(map(str, ports)))
for s in socks:
    s.close()
EOF
}

# take_port_lock: hold PORT_LOCK on fd 9 (bounded wait) from before the ports are picked
# until every server has bound its port. Servers are started with fd 9 closed (9>&-), so
# the lock is not held by them.
take_port_lock() {
    exec 9>"$PORT_LOCK"
    flock -w 120 9 || die "could not take $PORT_LOCK within 120 s"
}

# release_port_lock: to call once every port is bound by its server.
release_port_lock() {
    flock -u 9
    exec 9>&-
}

# record_pid DIR NAME PID COMM: DIR/pids holds "name pid command-name" per line, written as
# soon as a server is launched, so that a failed `start` can still stop it. The command
# name lets `stop` refuse to kill a recycled PID that now belongs to something else.
record_pid() {
    echo "$2 $3 $4" >>"$1/pids"
}

# pid_from_file FILE LOGFILE: the PID a daemon wrote to its pid file (waits, bounded).
pid_from_file() {
    local file=$1 logfile=$2 deadline=$((SECONDS + 10))
    until [[ -s $file ]]; do
        if ((SECONDS >= deadline)); then
            show_log "$logfile"
            die "no pid file $file after 10 s"
        fi
        sleep 0.05
    done
    tr -d ' \n' <"$file"
}

# Is PID running? A zombie counts as exited: its parent (this script while it runs, init
# after) may take a moment to reap it.
is_running() {
    [[ -e /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# Is PID still the process we started (same command name)? Guards against recycled PIDs.
is_ours() {
    [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]] && is_running "$1"
}

# stop_group TERM_TIMEOUT_S ENTRY...: TERM each "name:pid:comm" still ours, wait (bounded)
# for all to exit, KILL what is left; fail if something survives KILL.
stop_group() {
    local term_timeout=$1 alive=() entry name pid comm
    shift
    for entry in "$@"; do
        IFS=: read -r name pid comm <<<"$entry"
        if is_ours "$pid" "$comm"; then
            kill -TERM "$pid" 2>/dev/null || true
            alive+=("$entry")
        fi
    done
    local deadline=$((SECONDS + term_timeout)) left
    while :; do
        left=()
        for entry in "${alive[@]+"${alive[@]}"}"; do
            IFS=: read -r name pid comm <<<"$entry"
            is_ours "$pid" "$comm" && left+=("$entry")
        done
        ((${#left[@]} == 0 || SECONDS >= deadline)) && break
        sleep 0.1
    done
    for entry in "${left[@]+"${left[@]}"}"; do
        IFS=: read -r name pid comm <<<"$entry"
        log "$name (pid $pid) did not stop on TERM within $term_timeout s: KILL"
        kill -KILL "$pid" 2>/dev/null || true
    done
    local failed=()
    deadline=$((SECONDS + 5))
    while :; do
        failed=()
        for entry in "${left[@]+"${left[@]}"}"; do
            IFS=: read -r name pid comm <<<"$entry"
            is_ours "$pid" "$comm" && failed+=("$name (pid $pid)")
        done
        ((${#failed[@]} == 0 || SECONDS >= deadline)) && break
        sleep 0.1
    done
    ((${#failed[@]} == 0)) || die "still running after KILL: ${failed[*]}"
    # Wait (bounded, not an error) for init to reap them, so that `pgrep` right after
    # `stop` does not list <defunct> processes.
    deadline=$((SECONDS + 5))
    for entry in "${alive[@]+"${alive[@]}"}"; do
        IFS=: read -r name pid comm <<<"$entry"
        while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
    done
}

# ---------------------------------------------------------------------------------------
# Certificates of the test clusters (control-plane.sh, node.sh): EC P-256, fast to make.

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign PKI NAME SUBJECT EXTENSIONS: PKI/NAME.key and PKI/NAME.crt, signed by PKI/ca.
sign() {
    local pki=$1 name=$2 subject=$3 ext=$4
    new_key "$pki/$name.key"
    openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
    printf '%b\n' "$ext" >"$pki/$name.ext"
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
    rm -f "$pki/$name.csr" "$pki/$name.ext"
}
