#!/usr/bin/env bash
# A real Kubernetes control plane for tests, on 127.0.0.1, all its data under one directory:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok faking 3 nodes
# (pods scheduled on them become Running/Ready without containers).
#
#   control-plane.sh start  DIR   start it; write DIR/kubeconfig (admin) and DIR/env; print
#                                 the path of DIR/env
#   control-plane.sh stop   DIR   stop every process listed in DIR/pids, then remove DIR
#                                 (KEEP_TESTENV=1 keeps it, e.g. to read the logs)
#   control-plane.sh status DIR   say, per component, whether it answers (and its RSS)
#
# The binaries come from tests/env/build-control-plane.sh (cached under SNS_TOOLS_DIR).
# SNS_K8S_KWOK_VOLUMES=1 also loads kwok's fake volume provisioner: a StorageClass
# `kwok-volume` (the default class) whose PVCs get a PV and are Bound at once.
#
# Same conventions as testenv.sh: every port is picked free by the kernel (two control planes
# can run side by side), every wait is bounded, every process is stopped by its own PID.
# Flags and their reasons: docs/TESTENV-go.md of the shared docs.
set -euo pipefail

SNS_TOOLS_DIR="${SNS_TOOLS_DIR:-$HOME/.cache/sns-platform}"
K8S_VERSION="${K8S_VERSION:-v1.36.3}" # keep in step with build-control-plane.sh
K8S_ROOT="$SNS_TOOLS_DIR/k8s-$K8S_VERSION"
K8S_BIN="$K8S_ROOT/bin"
KWOK_STAGES="$K8S_ROOT/stages"
SERVICE_CIDR=10.0.0.0/24
POD_CIDR=10.244.0.0/16 # fake pod IPs handed out by kwok; apart from the service range
NODE_COUNT=3
LOG_TAG=control-plane
WAIT_POLL_S=0.2
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# launch DIR NAME LOGFILE BINARY ARGS...: start BINARY in the background and record
# "name pid command-name" in DIR/pids at once (so that a failed `start` can still stop it).
# nohup execs the binary in the background child, so $! is the server's own PID; fd 9 (the
# port lock) is closed for it. The kernel keeps 15 characters of a command name.
launch() {
    local dir=$1 name=$2 logfile=$3 binary=$4
    shift 4
    nohup "$binary" "$@" >"$logfile" 2>&1 9>&- &
    LAUNCHED_PID=$!
    local comm
    comm=$(basename "$binary")
    record_pid "$dir" "$name" "$LAUNCHED_PID" "${comm:0:15}"
}

rss_of() { # PID: resident set size in MB
    awk '/^VmRSS:/ { printf "%d MB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

# ---------------------------------------------------------------------------------------
# Certificates (EC P-256: fast to generate). One CA signs the API server's serving
# certificate and the admin client certificate (O=system:masters: all rights, no RBAC set-up
# needed); the service-account token key pair is separate.

# new_key and sign: lib.sh.

make_pki() { # PKI_DIR
    local pki=$1
    mkdir -p "$pki"
    new_key "$pki/ca.key"
    openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=sns-test-kubernetes-ca" -days 3650 \
        -sha256 -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -out "$pki/ca.crt" 2>/dev/null
    # 10.0.0.1 is the `kubernetes` Service's IP in SERVICE_CIDR.
    sign "$pki" apiserver "/CN=kube-apiserver" \
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign "$pki" admin "/O=system:masters/CN=sns-test-admin" \
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
    new_key "$pki/sa.key"
    openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    chmod 600 "$pki"/*.key
}

write_kubeconfig() { # FILE PKI_DIR PORT
    local file=$1 pki=$2 port=$3
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sns-test
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: sns-test-admin
  user:
    client-certificate-data: $(base64 -w0 <"$pki/admin.crt")
    client-key-data: $(base64 -w0 <"$pki/admin.key")
contexts:
- name: sns-test
  context:
    cluster: sns-test
    user: sns-test-admin
    namespace: default
current-context: sns-test
EOF
    chmod 600 "$file"
}

# ---------------------------------------------------------------------------------------
# Health checks

etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$1/health" | grep -q '"health":"true"'; }

# api_get DIR PORT PATH: GET over TLS as admin.
api_get() {
    local pki=$1/pki
    curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "https://127.0.0.1:$2$3"
}

apiserver_ready() { [[ "$(api_get "$1" "$2" /readyz)" == ok ]]; }

# kube-controller-manager and kube-scheduler serve /healthz over TLS with a self-signed
# certificate; the path is open to anyone (--authorization-always-allow-paths).
component_healthy() { [[ "$(curl -fsSk --max-time 2 "https://127.0.0.1:$1/healthz")" == ok ]]; }

kwok_healthy() { [[ "$(curl -fsS --max-time 2 "http://127.0.0.1:$1/healthz")" == ok ]]; }

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig="$KUBECONFIG_FILE" --request-timeout=5s "$@"; }

# The `default` ServiceAccount of the `default` namespace: made by the controller-manager.
default_sa_exists() { kubectl_ get serviceaccount default -n default -o name; }

ready_nodes() { # number of Ready kwok nodes
    kubectl_ get nodes -l type=kwok -o \
        jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
        grep -c '^True$'
}

nodes_ready() { [[ "$(ready_nodes)" == "$NODE_COUNT" ]]; }

# ---------------------------------------------------------------------------------------

node_yaml() { # INDEX
    local name="kwok-node-$1" zone
    zone="zone-$(printf '%b' "\\x$(printf '%x' $((97 + $1)))")" # zone-a, zone-b, ...
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: $name
    topology.kubernetes.io/zone: $zone
status:
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: $K8S_VERSION-kwok
EOF
}

# EXIT trap of `start`: if it failed, stop what was already started; the directory is kept,
# with its logs, for a look.
on_start_exit() {
    local rc=$?
    if ((rc != 0)); then
        log "start failed; stopping what was started (logs kept in $STARTING_DIR)"
        KEEP_TESTENV=1 cmd_stop "$STARTING_DIR" || true
    fi
}

cmd_start() {
    local dir=$1
    local t0_us=${EPOCHREALTIME/./}
    local tool
    for tool in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl; do
        [[ -x $K8S_BIN/$tool ]] ||
            die "$K8S_BIN/$tool not found: run tests/env/build-control-plane.sh (a long build the first time)"
    done
    local stage_files=() f
    for f in node-initialize node-heartbeat-with-lease pod-ready pod-complete pod-delete; do
        [[ -f $KWOK_STAGES/$f.yaml ]] || die "$KWOK_STAGES/$f.yaml not found: run tests/env/build-control-plane.sh"
        stage_files+=(-c "$KWOK_STAGES/$f.yaml")
    done
    if [[ ${SNS_K8S_KWOK_VOLUMES:-0} == 1 ]]; then
        for f in pvc-provision pv-bind pvc-delete pv-delete; do
            [[ -f $KWOK_STAGES/volume/$f.yaml ]] || die "$KWOK_STAGES/volume/$f.yaml not found"
            stage_files+=(-c "$KWOK_STAGES/volume/$f.yaml")
        done
    fi
    for tool in openssl curl python3 flock base64; do
        command -v "$tool" >/dev/null || die "$tool not found"
    done
    if [[ -e $dir/pids ]]; then
        die "$dir/pids exists: a control plane may be running there (control-plane.sh stop $dir)"
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd) # absolute: it goes into the env file and server arguments
    : >"$dir/pids"

    STARTING_DIR=$dir
    trap on_start_exit EXIT

    local pki=$dir/pki
    make_pki "$pki"
    mkdir -p "$dir/etcd" "$dir/apiserver" "$dir/controller-manager" "$dir/scheduler" "$dir/kwok"
    KUBECONFIG_FILE=$dir/kubeconfig

    take_port_lock

    # etcd client + peer, API server, controller-manager, scheduler, kwok = 6 ports.
    local ports
    read -r -a ports <<<"$(free_ports 6)"
    local etcd_port=${ports[0]} peer_port=${ports[1]} api_port=${ports[2]}
    local kcm_port=${ports[3]} sched_port=${ports[4]} kwok_port=${ports[5]}
    write_kubeconfig "$KUBECONFIG_FILE" "$pki" "$api_port"

    launch "$dir" etcd "$dir/etcd/etcd.log" "$K8S_BIN/etcd" \
        --name=n0 --data-dir="$dir/etcd/data" \
        --listen-client-urls="http://127.0.0.1:$etcd_port" \
        --advertise-client-urls="http://127.0.0.1:$etcd_port" \
        --listen-peer-urls="http://127.0.0.1:$peer_port" \
        --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
        --initial-cluster="n0=http://127.0.0.1:$peer_port" \
        --unsafe-no-fsync=true --listen-metrics-urls= --log-level=warn
    local etcd_pid=$LAUNCHED_PID
    WAIT_PID=$etcd_pid wait_for "etcd (port $etcd_port)" 30 "$dir/etcd/etcd.log" \
        etcd_healthy "$etcd_port"

    # --endpoint-reconciler-type=none: no real endpoints for the `kubernetes` Service (nothing
    # in the cluster reaches it anyway). The ServiceAccount admission plugin stays on: the
    # controller-manager makes the accounts it needs.
    launch "$dir" kube-apiserver "$dir/apiserver/apiserver.log" "$K8S_BIN/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$etcd_port" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
        --cert-dir="$dir/apiserver" \
        --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --client-ca-file="$pki/ca.crt" \
        --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true \
        --authorization-mode=RBAC \
        --service-account-issuer="https://127.0.0.1:$api_port/" \
        --service-account-key-file="$pki/sa.pub" \
        --service-account-signing-key-file="$pki/sa.key" \
        --endpoint-reconciler-type=none --profiling=false
    local api_pid=$LAUNCHED_PID
    WAIT_PID=$api_pid wait_for "kube-apiserver /readyz (port $api_port)" 120 \
        "$dir/apiserver/apiserver.log" apiserver_ready "$dir" "$api_port"

    # The controllers use the admin kubeconfig (no per-controller RBAC to set up).
    # --pvclaimbinder-sync-period=1s: a PVC made before its PV (pre-created by a test) is
    # retried every second instead of every 15 s.
    # shellcheck disable=SC2054 # the commas separate paths inside one flag
    local delegated=(--kubeconfig="$KUBECONFIG_FILE"
        --authentication-kubeconfig="$KUBECONFIG_FILE"
        --authorization-kubeconfig="$KUBECONFIG_FILE"
        --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics
        --bind-address=127.0.0.1 --leader-elect=false)
    launch "$dir" kube-controller-manager "$dir/controller-manager/controller-manager.log" \
        "$K8S_BIN/kube-controller-manager" "${delegated[@]}" \
        --secure-port="$kcm_port" --cert-dir="$dir/controller-manager" \
        --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
        --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false \
        --pvclaimbinder-sync-period=1s
    local kcm_pid=$LAUNCHED_PID
    launch "$dir" kube-scheduler "$dir/scheduler/scheduler.log" "$K8S_BIN/kube-scheduler" \
        "${delegated[@]}" --secure-port="$sched_port" --cert-dir="$dir/scheduler" --profiling=false
    local sched_pid=$LAUNCHED_PID
    # kwok manages only nodes annotated kwok.x-k8s.io/node=fake (ours), and the pods bound to
    # them. Its own server (healthz, and the node's "kubelet" port) is on kwok_port. kwok
    # also reads ~/.kwok/kwok.yaml if there is one: HOME is its own directory, so it cannot.
    # The heartbeat-with-lease stage patches node status only about once a minute, longer
    # than the controller-manager's grace period: without leases renewed by kwok the nodes
    # flap NotReady and every pod's readiness with them.
    HOME="$dir/kwok" launch "$dir" kwok "$dir/kwok/kwok.log" "$K8S_BIN/kwok" \
        --kubeconfig="$KUBECONFIG_FILE" "${stage_files[@]}" \
        --node-lease-duration-seconds=40 \
        --manage-all-nodes=false \
        --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
        --cidr="$POD_CIDR" --node-ip=127.0.0.1 --node-port="$kwok_port" \
        --server-address="127.0.0.1:$kwok_port"
    local kwok_pid=$LAUNCHED_PID

    WAIT_PID=$kcm_pid wait_for "kube-controller-manager /healthz (port $kcm_port)" 60 \
        "$dir/controller-manager/controller-manager.log" component_healthy "$kcm_port"
    WAIT_PID=$sched_pid wait_for "kube-scheduler /healthz (port $sched_port)" 60 \
        "$dir/scheduler/scheduler.log" component_healthy "$sched_port"
    WAIT_PID=$kwok_pid wait_for "kwok /healthz (port $kwok_port)" 60 \
        "$dir/kwok/kwok.log" kwok_healthy "$kwok_port"

    # Every port is bound by its server now: another start may pick ports.
    release_port_lock

    local i
    for i in $(seq 0 $((NODE_COUNT - 1))); do node_yaml "$i"; done >"$dir/nodes.yaml"
    if ! kubectl_ apply -f "$dir/nodes.yaml" >"$dir/nodes.log" 2>&1; then
        show_log "$dir/nodes.log"
        die "could not create the kwok nodes"
    fi
    if [[ ${SNS_K8S_KWOK_VOLUMES:-0} == 1 ]]; then
        kubectl_ apply -f "$KWOK_STAGES/volume/storage-class.yaml" >>"$dir/nodes.log" 2>&1 ||
            die "could not create StorageClass kwok-volume"
    fi

    WAIT_PID=$kcm_pid wait_for "the default ServiceAccount (made by kube-controller-manager)" 60 \
        "$dir/controller-manager/controller-manager.log" default_sa_exists
    WAIT_PID=$kwok_pid wait_for "$NODE_COUNT Ready nodes (made Ready by kwok)" 60 \
        "$dir/kwok/kwok.log" nodes_ready

    cat >"$dir/env" <<EOF
export SNS_TEST_K8S_DIR=$dir
export KUBECONFIG=$KUBECONFIG_FILE
export SNS_TEST_KUBECONFIG=$KUBECONFIG_FILE
export SNS_TEST_K8S_BIN=$K8S_BIN
export SNS_TEST_K8S_API=https://127.0.0.1:$api_port
export SNS_TEST_K8S_VERSION=$K8S_VERSION
EOF
    echo "$etcd_port $api_port $kcm_port $sched_port $kwok_port" >"$dir/ports"
    trap - EXIT
    local ms=$(((${EPOCHREALTIME/./} - t0_us) / 1000))
    log "started in $((ms / 1000)).$((ms % 1000 / 100)) s: API https://127.0.0.1:$api_port," \
        "$NODE_COUNT kwok nodes Ready"
    echo "$dir/env"
}

cmd_stop() {
    local dir=$1 name pid comm
    if [[ ! -f $dir/pids ]]; then
        log "no $dir/pids: nothing to stop"
    else
        # etcd last: a kube-apiserver whose etcd is gone takes more than 15 s to stop
        # (seen), one with its etcd still up stops in 1-2 s.
        local first=() last=()
        while read -r name pid comm; do
            [[ -n $pid ]] || continue
            if [[ $name == etcd ]]; then last+=("$name:$pid:$comm"); else first+=("$name:$pid:$comm"); fi
        done <"$dir/pids"
        stop_group 15 "${first[@]+"${first[@]}"}"
        stop_group 15 "${last[@]+"${last[@]}"}"
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
    [[ -f $dir/env && -f $dir/ports ]] || die "no $dir/env: not started (or start failed)"
    dir=$(cd "$dir" && pwd)
    KUBECONFIG_FILE=$dir/kubeconfig
    local etcd_port api_port kcm_port sched_port kwok_port
    read -r etcd_port api_port kcm_port sched_port kwok_port <"$dir/ports"
    local ok=0 name pid comm state
    while read -r name pid comm; do
        if ! is_ours "$pid" "$comm"; then
            echo "$name (pid $pid): NOT RUNNING"
            ok=1
            continue
        fi
        case $name in
        etcd) etcd_healthy "$etcd_port" && state="healthy, port $etcd_port" ;;
        kube-apiserver) apiserver_ready "$dir" "$api_port" && state="ready, https://127.0.0.1:$api_port" ;;
        kube-controller-manager) component_healthy "$kcm_port" && state="healthy, port $kcm_port" ;;
        kube-scheduler) component_healthy "$sched_port" && state="healthy, port $sched_port" ;;
        kwok) kwok_healthy "$kwok_port" && state="healthy, port $kwok_port" ;;
        *) state="running" ;;
        esac 2>/dev/null || {
            state="NOT ANSWERING"
            ok=1
        }
        echo "$name (pid $pid, RSS $(rss_of "$pid")): $state"
    done <"$dir/pids"
    local n
    n=$(ready_nodes 2>/dev/null) || n=0
    echo "kwok nodes Ready: $n of $NODE_COUNT"
    [[ $n == "$NODE_COUNT" ]] || ok=1
    return $ok
}

usage() {
    echo "usage: $0 start|stop|status DIR" >&2
    exit 2
}

(($# == 2)) || usage
case $1 in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
status) cmd_status "$2" ;;
*) usage ;;
esac
