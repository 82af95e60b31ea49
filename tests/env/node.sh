#!/usr/bin/env bash
# A REAL one-node Kubernetes on this machine, for end-to-end tests: pods run in containers
# (containerd + runc), on a bridge cni0 that nothing leaves.
#
#   node.sh start  DIR        start it; write DIR/kubeconfig (admin) and DIR/env; print the
#                             path of DIR/env
#   node.sh stop   DIR        stop everything and undo every change to the machine, then
#                             remove DIR (KEEP_TESTENV=1 keeps it, e.g. to read the logs);
#                             safe on a half-started node, and twice
#   node.sh import DIR TAR... import OCI/Docker image archives into the node's containerd
#                             (one already there with the same digest is skipped)
#   node.sh status DIR        say, per process, whether it runs; and whether the node is Ready
#
# What runs: containerd 1.6, runc and the CNI plugins from Debian packages (.ci/install-tools.sh);
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl,
# helm and coredns built by tests/env/build-control-plane.sh (cached under SNS_TOOLS_DIR). In
# the cluster: CoreDNS (Service kube-dns, 10.0.0.10) and the default StorageClass `standard`
# (kube-controller-manager's hostPath provisioner: PVs are directories /tmp/hostpath_pv/UUID,
# mode 0750 owned by root, deleted with their claim; a container running as another user
# must chown its volume, as the MariaDB and Redis images' entrypoints do when started as
# root). Images are local only: localhost/pause:3.10 and
# localhost/coredns:v1.14.7 are built here (tests/env/oci-image.py); others come in with
# `import`, and run with imagePullPolicy Never or IfNotPresent. A pull of anything else fails
# at once (containerd's proxy is a closed local port).
#
# DIR/env exports KUBECONFIG and SNS_NODE_KUBECONFIG (admin, cluster-admin; both the same
# file), SNS_NODE_DIR, SNS_NODE_BRIDGE_IP (10.244.0.1: the API server, the kubelet and
# NodePorts listen there, and it is reachable from the host), SNS_NODE_API,
# SNS_NODE_CTR_SOCKET (containerd's socket, for `ctr -a`), SNS_NODE_NAME, SNS_NODE_K8S_BIN,
# and PATH with kubectl and helm first.
#
# Network: pods get 10.244.0.0/24 on cni0 (gateway 10.244.0.1, no NAT, no default route);
# Services are 10.0.0.0/24, routed to cni0 from the host, so a test process on the host
# reaches pod IPs and ClusterIPs directly (the rest of 10.244.0.0/16 is an unreachable
# route). A guard chain (mangle POSTROUTING) drops anything from or to the pod or Service
# ranges that would leave through an interface other than cni0 or lo: nothing leaves this
# machine.
#
# One node per machine at a time (fixed host paths, the bridge, iptables): a lock taken by
# `start` and held until `stop` (by a `sleep` process listed in DIR/pids). A node whose run
# was killed without `stop` is stopped by the next `start` (the lock file names its DIR).
# `start` takes about 7-10 s (node Ready, then CoreDNS Ready), `stop` about 3-4 s. The image store
# (containerd's root) is kept between runs in $SNS_TOOLS_DIR/node-containerd, so images
# imported once stay; everything else is under DIR. Recipe and reasons: TESTENV-node.md of the
# shared docs.
set -euo pipefail

SNS_TOOLS_DIR="${SNS_TOOLS_DIR:-$HOME/.cache/sns-platform}"
K8S_VERSION="${K8S_VERSION:-v1.36.3}"         # keep in step with build-control-plane.sh
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}" # same
K8S_BIN="$SNS_TOOLS_DIR/k8s-$K8S_VERSION/bin"
IMAGE_CACHE="$SNS_TOOLS_DIR/node-images"          # pause and coredns image archives
CTRD_ROOT="$SNS_TOOLS_DIR/node-containerd/root"   # containerd's image store, kept
PAUSE_REF=localhost/pause:3.10
COREDNS_REF=localhost/coredns:$COREDNS_VERSION
NODE_NAME=sns-node
BR=cni0
BR_IP=10.244.0.1
POD_NET=10.244.0.0/24 # the node's pod range (the first /24 of CLUSTER_CIDR)
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.0.0.0/24
DNS_IP=10.0.0.10
GUARD=SNS-NODE-GUARD
# Where kube-controller-manager's hostPath provisioner makes volumes (fixed in its source,
# k8s.io/kubernetes pkg/volume/hostpath: "/tmp/hostpath_pv/<uuid>"; its deleter only
# deletes under /tmp).
HOSTPATH_PV_DIR=/tmp/hostpath_pv
# Paths outside DIR that kubelet, containerd, libcni or iptables make whatever their
# configuration: removed by `stop` if they were not there at `start`.
FIXED_HOST_PATHS=(/var/lib/kubelet /var/lib/cni /var/log/containers /var/log/pods
    /run/containerd /run/xtables.lock /etc/cni /opt/cni /usr/libexec/kubernetes /run/netns)
# Machine-wide sysctls that the kubelet, kube-proxy or the CNI bridge plugin set, or that we
# set: saved by `start`, restored by `stop`.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
    net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
    net.bridge.bridge-nf-call-ip6tables net.netfilter.nf_conntrack_max)
# The machine-wide lock (one node at a time). How long `start` waits for it.
NODE_LOCK="${SNS_NODE_LOCK:-/run/lock/sns-testenv-node.lock}"
NODE_LOCK_WAIT_S="${SNS_NODE_LOCK_WAIT_S:-30}"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_TAG=node
WAIT_POLL_S=0.2
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

# iptables, runc, ip and sysctl live in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

T0_US=${EPOCHREALTIME/./}
elapsed() { # seconds since the script started, "12.3 s"
    local ms=$(((${EPOCHREALTIME/./} - T0_US) / 1000))
    printf '%d.%01d s' $((ms / 1000)) $((ms % 1000 / 100))
}
step() { log "$* [$(elapsed)]"; } # a major step, with the time since the start

# launch DIR NAME BINARY ARGS...: start BINARY in the background, its output in
# DIR/logs/NAME.log, and record "name pid command-name" in DIR/pids at once (so that a failed
# `start` can still stop it). Fds 8 (the node lock) and 9 (the port lock) are closed for it.
launch() {
    local dir=$1 name=$2 binary=$3
    shift 3
    nohup "$binary" "$@" >"$dir/logs/$name.log" 2>&1 8>&- 9>&- &
    LAUNCHED_PID=$!
    local comm
    comm=$(basename "$binary")
    record_pid "$dir" "$name" "$LAUNCHED_PID" "${comm:0:15}"
}

pid_of() { # DIR NAME: the recorded PID of NAME (empty if none)
    awk -v n="$2" '$1 == n { print $2 }' "$1/pids" 2>/dev/null | tail -n 1
}

ctr_() { ctr -a "$CTR_SOCK" "$@"; }

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig="$KUBECONFIG_FILE" --request-timeout=10s "$@"; }

paths_of() { # DIR: set the path variables of the node in DIR
    CTR_SOCK=$1/containerd/containerd.sock
    KUBECONFIG_FILE=$1/kubeconfig
}

# ---------------------------------------------------------------------------------------
# Certificates (EC P-256). One CA signs the API server's and the kubelet's serving
# certificates and the client certificates: admin (O=system:masters) and the kubelet
# (system:node:NAME, for the Node authorizer).

# new_key and sign: lib.sh.

make_pki() { # PKI_DIR
    local pki=$1
    local server="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth"
    local client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
    mkdir -p "$pki"
    new_key "$pki/ca.key"
    openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=sns-test-node-ca" -days 3650 \
        -sha256 -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -out "$pki/ca.crt" 2>/dev/null
    # 10.0.0.1: the `kubernetes` Service, the pods' way to the API server.
    sign "$pki" apiserver "/CN=kube-apiserver" "$server\nsubjectAltName=IP:$BR_IP,IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign "$pki" kubelet-serving "/CN=$NODE_NAME" "$server\nsubjectAltName=IP:$BR_IP,DNS:$NODE_NAME"
    sign "$pki" admin "/O=system:masters/CN=sns-test-admin" "$client"
    sign "$pki" kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
    new_key "$pki/sa.key"
    openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    chmod 600 "$pki"/*.key
}

write_kubeconfig() { # FILE PKI_DIR USER PORT
    local file=$1 pki=$2 user=$3 port=$4
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sns-node
  cluster:
    server: https://$BR_IP:$port
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$user.crt")
    client-key-data: $(base64 -w0 <"$pki/$user.key")
contexts:
- name: sns-node
  context:
    cluster: sns-node
    user: $user
    namespace: default
current-context: sns-node
EOF
    chmod 600 "$file"
}

# ---------------------------------------------------------------------------------------
# Images: pause (the pod sandbox) and CoreDNS, built here and cached in IMAGE_CACHE under a
# hash of what they are made of.

# cached_image NAME KEY: the archive path for NAME with KEY; older ones of NAME are removed.
cached_image() {
    local name=$1 key=$2 f
    for f in "$IMAGE_CACHE/$name"-*.tar; do
        [[ -e $f && $f != "$IMAGE_CACHE/$name-$key.tar" ]] && rm -f "$f"
    done
    echo "$IMAGE_CACHE/$name-$key.tar"
}

pause_image() { # -> path of the archive
    local key tar work
    key=$(cat "$HERE/node/pause.c" "$HERE/oci-image.py" | sha256sum | cut -c1-16)
    tar=$(cached_image pause "$key")
    if [[ ! -f $tar ]]; then
        work=$(mktemp -d "$IMAGE_CACHE/.pause.XXXXXX")
        gcc -static -Os -s -o "$work/pause" "$HERE/node/pause.c" ||
            die "gcc -static failed (the static libc is in libc6-dev)"
        python3 "$HERE/oci-image.py" simple "$tar" --ref "$PAUSE_REF" \
            --file "/pause=$work/pause" --entrypoint '["/pause"]' >/dev/null
        rm -rf "$work"
        log "built image $PAUSE_REF ($tar)"
    fi
    echo "$tar"
}

coredns_image() { # -> path of the archive: the static binary alone
    local key tar
    key=$(cat "$K8S_BIN/coredns" "$HERE/oci-image.py" | sha256sum | cut -c1-16)
    tar=$(cached_image "coredns-$COREDNS_VERSION" "$key")
    if [[ ! -f $tar ]]; then
        python3 "$HERE/oci-image.py" simple "$tar" --ref "$COREDNS_REF" \
            --file "/coredns=$K8S_BIN/coredns" --entrypoint '["/coredns"]' \
            --cmd '["-conf", "/etc/coredns/Corefile"]' --expose 53/udp --expose 53/tcp >/dev/null
        log "built image $COREDNS_REF ($tar)"
    fi
    echo "$tar"
}

# import_archives TAR...: `ctr images import` each archive into the k8s.io namespace, unless
# every image in it is there already with the same manifest digest.
import_archives() {
    local have tar want line missing t0
    have=$(ctr_ -n k8s.io images ls 2>/dev/null | awk 'NR > 1 { print $1, $3 }')
    for tar in "$@"; do
        [[ -f $tar ]] || die "no image archive $tar"
        want=$(python3 "$HERE/oci-image.py" refs "$tar" 2>/dev/null) || want=""
        missing=0
        if [[ -z $want ]]; then
            missing=1 # no names in it that we can read (a Docker archive?): import
        else
            while read -r line; do
                grep -qxF "$line" <<<"$have" || missing=1
            done <<<"$want"
        fi
        if ((missing == 0)); then
            log "image archive $(basename "$tar"): unchanged, not imported ($(awk '{ print $1 }' <<<"$want" | paste -sd' '))"
            continue
        fi
        t0=$SECONDS
        ctr_ -n k8s.io images import "$tar" >&2 || die "ctr images import $tar failed"
        log "imported $(basename "$tar") in $((SECONDS - t0)) s"
    done
}

# ---------------------------------------------------------------------------------------
# Host state: what `start` changes, saved first, so that `stop` can undo exactly that.

save_host_state() { # DIR
    local host=$1/host s p
    mkdir -p "$host"
    for s in "${SYSCTLS[@]}"; do
        [[ -e /proc/sys/${s//.//} ]] && echo "$s=$(sysctl -n "$s")"
    done >"$host/sysctls"
    for p in "${FIXED_HOST_PATHS[@]}"; do
        [[ -e $p || -L $p ]] || echo "$p"
    done >"$host/new-paths"
    if [[ -d $HOSTPATH_PV_DIR ]]; then
        (cd "$HOSTPATH_PV_DIR" && ls -A) >"$host/hostpath-pv.before"
    fi
    nft list tables >"$host/nft-tables.before"
}

# Anything of another Kubernetes (or of a node not stopped) on this machine makes us stop
# short: `stop` removes every KUBE-* chain and the kubepods cgroups, so they must be ours.
check_host_free() {
    if ip link show "$BR" >/dev/null 2>&1; then
        die "interface $BR exists: another node runs (or was not stopped: node.sh stop ITS_DIR)"
    fi
    if nft list ruleset 2>/dev/null | grep -qE "chain (KUBE-|$GUARD)"; then
        die "iptables has KUBE-* or $GUARD chains: another Kubernetes (or a node not stopped) uses this machine"
    fi
    local h
    for h in /sys/fs/cgroup/*/; do
        [[ -d ${h}kubepods ]] && die "cgroup ${h}kubepods exists: another kubelet runs (or ran) here"
    done
    return 0
}

net_up() { # DIR
    local dir=$1
    # The bridge exists before the API server, which listens on its address.
    ip link add "$BR" type bridge
    ip addr add "$BR_IP/24" dev "$BR"
    ip link set "$BR" up
    # Host -> ClusterIP goes to cni0 (not to the default route); kube-proxy's DNAT then
    # picks a pod.
    ip route add "$SERVICE_CIDR" dev "$BR" src "$BR_IP"
    # The rest of the pod range is nowhere: the host gets "unreachable" at once instead of
    # sending it to the default route (where the guard would drop it).
    ip route add unreachable "$CLUSTER_CIDR"
    # The guard: nothing from or to the pod or Service ranges leaves through another
    # interface, before (-s/-d) or after (conntrack's original addresses) any NAT.
    iptables -w 5 -t mangle -N "$GUARD"
    local rule
    for rule in "-o $BR -j RETURN" "-o lo -j RETURN" \
        "-s $CLUSTER_CIDR -j DROP" "-d $CLUSTER_CIDR -j DROP" \
        "-s $SERVICE_CIDR -j DROP" "-d $SERVICE_CIDR -j DROP" \
        "-m conntrack --ctorigsrc $CLUSTER_CIDR -j DROP" \
        "-m conntrack --ctorigdst $CLUSTER_CIDR -j DROP" \
        "-m conntrack --ctorigdst $SERVICE_CIDR -j DROP"; do
        # shellcheck disable=SC2086 # one rule, split into its words
        iptables -w 5 -t mangle -A "$GUARD" $rule
    done
    iptables -w 5 -t mangle -I POSTROUTING 1 -j "$GUARD"
    # pod -> ClusterIP -> another pod is routed by the host.
    sysctl -qw net.ipv4.ip_forward=1
    # CNI: the bridge plugin on cni0, gateway = cni0's address, no masquerade, no default
    # route in pods (only the pod range, on the link, and the Service range).
    mkdir -p "$dir/cni/net.d" "$dir/cni/ipam"
    cat >"$dir/cni/net.d/10-sns-node.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "sns-node", "plugins": [
 {"type": "bridge", "bridge": "$BR", "isGateway": true, "isDefaultGateway": false,
  "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "dataDir": "$dir/cni/ipam",
           "ranges": [[{"subnet": "$POD_NET", "gateway": "$BR_IP"}]],
           "routes": [{"dst": "$SERVICE_CIDR"}]}},
 {"type": "loopback"}]}
EOF
}

containerd_config() { # DIR
    local dir=$1 c=$1/containerd
    cat <<EOF
# Written by tests/env/node.sh. The image store (root) is kept between runs; the rest is
# under the run directory.
version = 2
root = "$CTRD_ROOT"
state = "$c/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = ""
[debug]
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
  disable_apparmor = true
  # This machine's capability bounding set lacks CAP_SYS_RESOURCE: a negative oom_score_adj
  # (the sandbox's -998) fails in runc init, and so would every pod.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$c/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
EOF
}

kubelet_config() { # DIR KUBELET_PORT HEALTHZ_PORT
    local dir=$1 pki=$1/pki
    cat <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CTR_SOCK
address: $BR_IP
port: $2
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $3
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: ""
podLogsDir: $dir/pod-logs
volumePluginDir: $dir/kubelet-plugins
failSwapOn: false
# Never garbage-collect images: they were imported, nothing can pull them again.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
registerNode: true
maxPods: 110
serializeImagePulls: false
EOF
}

# ---------------------------------------------------------------------------------------
# Health checks

etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$1/health" | grep -q '"health":"true"'; }
apiserver_ready() { # DIR PORT
    [[ "$(curl -fsS --max-time 5 --cacert "$1/pki/ca.crt" --cert "$1/pki/admin.crt" \
        --key "$1/pki/admin.key" "https://$BR_IP:$2/readyz")" == ok ]]
}
component_healthy() { [[ "$(curl -fsSk --max-time 2 "https://127.0.0.1:$1/healthz")" == ok ]]; }
http_healthy() { [[ "$(curl -fsS --max-time 2 "http://127.0.0.1:$1/healthz")" == ok ]]; }
# kube-proxy's /livez: 200 once it has synced its rules (its /healthz also asks about the node).
proxy_live() { curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$1/livez"; }
node_ready() {
    [[ "$(kubectl_ get node "$NODE_NAME" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
default_sa_exists() { kubectl_ get serviceaccount default -n default -o name; }

# ---------------------------------------------------------------------------------------

on_start_exit() {
    local rc=$?
    if ((rc != 0)); then
        log "start failed; stopping what was started (logs kept in $STARTING_DIR/logs)"
        KEEP_TESTENV=1 cmd_stop "$STARTING_DIR" || true
    fi
}

cmd_start() {
    local dir=$1 tool
    ((EUID == 0)) || die "must run as root (network, cgroups, mounts)"
    for tool in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy \
        kubectl coredns; do
        [[ -x $K8S_BIN/$tool ]] ||
            die "$K8S_BIN/$tool not found: run tests/env/build-control-plane.sh (a long build the first time)"
    done
    for tool in containerd containerd-shim-runc-v2 runc ctr iptables ip6tables nft ip sysctl \
        gcc openssl curl python3 flock base64; do
        command -v "$tool" >/dev/null ||
            die "$tool not found: run .ci/install-tools.sh (Debian packages containerd runc containernetworking-plugins iptables nftables gcc libc6-dev)"
    done
    iptables -V 2>/dev/null | grep -q nf_tables ||
        die "iptables is not the nf_tables variant (update-alternatives --set iptables /usr/sbin/iptables-nft): stop cleans up with nft"
    for tool in bridge host-local loopback; do
        [[ -x /usr/lib/cni/$tool ]] || die "/usr/lib/cni/$tool not found (Debian package containernetworking-plugins)"
    done
    if [[ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
        modprobe br_netfilter 2>/dev/null || true
        [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] ||
            die "the br_netfilter module is not loaded (Service traffic between pods needs it)"
    fi
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
        die "no overlay file system (containerd's snapshotter)"
    [[ $dir != *[[:space:]]* ]] || die "DIR must not contain white space: $dir"
    if [[ -e $dir/pids ]]; then
        die "$dir/pids exists: a node may be running there (node.sh stop $dir)"
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    paths_of "$dir"
    ((${#CTR_SOCK} < 100)) || die "DIR is too long for a unix socket path: $CTR_SOCK"

    # One node per machine: the lock is held from here until `stop` by a `sleep` that
    # inherits fd 8. Its content says who holds it.
    mkdir -p "$(dirname "$NODE_LOCK")"
    exec 8<>"$NODE_LOCK"
    if ! flock -w "$NODE_LOCK_WAIT_S" 8; then
        die "another node holds $NODE_LOCK ($(cat "$NODE_LOCK" 2>/dev/null)) after ${NODE_LOCK_WAIT_S} s"
    fi
    # The lock is ours, so the last node's lock holder is gone: if that node was not stopped
    # (its run was killed), stop it now, from its directory.
    local prev=""
    read -r prev _ <"$NODE_LOCK" || true
    if [[ -n $prev && $prev != "$dir" && -f $prev/pids && ! -f $prev/stopped ]]; then
        log "the node of $prev was not stopped: stopping it first"
        (cmd_stop "$prev") || die "could not clean up the node of $prev"
    fi
    check_host_free
    mkdir -p "$dir/logs"
    : >"$dir/pids"
    STARTING_DIR=$dir
    trap on_start_exit EXIT
    nohup sleep infinity >/dev/null 2>&1 9>&- &
    record_pid "$dir" node-lock $! sleep
    echo "$dir (pid $$, since $(date +%FT%T))" >"$NODE_LOCK"
    step "starting a node in $dir"

    save_host_state "$dir"
    mkdir -p "$IMAGE_CACHE" "$CTRD_ROOT"
    local pause_tar coredns_tar
    pause_tar=$(pause_image)
    coredns_tar=$(coredns_image)

    net_up "$dir"
    step "bridge $BR $BR_IP, route $SERVICE_CIDR, guard chain $GUARD, CNI config"

    # containerd. Registry pulls go to a closed local port (a proxy that is not there): an
    # image that was not imported fails at once instead of reaching out.
    mkdir -p "$dir/containerd"
    containerd_config "$dir" >"$dir/containerd/config.toml"
    HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY='' \
        http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 no_proxy='' \
        launch "$dir" containerd "$(command -v containerd)" --config "$dir/containerd/config.toml"
    WAIT_PID=$LAUNCHED_PID wait_for containerd 30 "$dir/logs/containerd.log" ctr_ version
    # Containers left in the kept image store by a run that was not stopped: their state
    # is gone with that run's directory.
    local stale c
    stale=$(ctr_ -n k8s.io containers ls -q 2>/dev/null || true)
    if [[ -n $stale ]]; then
        log "removing $(wc -l <<<"$stale") containers left by an earlier run"
        for c in $stale; do ctr_ -n k8s.io containers delete "$c" >/dev/null 2>&1 || true; done
    fi
    import_archives "$pause_tar" "$coredns_tar"
    ctr_ -n k8s.io images label "$PAUSE_REF" io.cri-containerd.pinned=pinned >/dev/null
    step "containerd up, images $PAUSE_REF $COREDNS_REF present"

    local pki=$dir/pki
    make_pki "$pki"

    take_port_lock
    local ports
    read -r -a ports <<<"$(free_ports 9)"
    local etcd_port=${ports[0]} peer_port=${ports[1]} api_port=${ports[2]}
    local kcm_port=${ports[3]} sched_port=${ports[4]} kubelet_port=${ports[5]}
    local kubelet_hz=${ports[6]} proxy_hz=${ports[7]} proxy_metrics=${ports[8]}
    write_kubeconfig "$KUBECONFIG_FILE" "$pki" admin "$api_port"
    write_kubeconfig "$dir/kubelet.kubeconfig" "$pki" kubelet-client "$api_port"

    launch "$dir" etcd "$K8S_BIN/etcd" \
        --name=n0 --data-dir="$dir/etcd" \
        --listen-client-urls="http://127.0.0.1:$etcd_port" \
        --advertise-client-urls="http://127.0.0.1:$etcd_port" \
        --listen-peer-urls="http://127.0.0.1:$peer_port" \
        --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
        --initial-cluster="n0=http://127.0.0.1:$peer_port" \
        --unsafe-no-fsync=true --listen-metrics-urls= --log-level=warn
    WAIT_PID=$LAUNCHED_PID wait_for "etcd (port $etcd_port)" 30 "$dir/logs/etcd.log" \
        etcd_healthy "$etcd_port"

    # On the bridge's address: the host reaches it, and pods do through the `kubernetes`
    # Service (10.0.0.1:443 -> $BR_IP:port).
    launch "$dir" kube-apiserver "$K8S_BIN/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$etcd_port" \
        --bind-address="$BR_IP" --advertise-address="$BR_IP" --secure-port="$api_port" \
        --cert-dir="$pki" \
        --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --client-ca-file="$pki/ca.crt" \
        --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key" \
        --kubelet-certificate-authority="$pki/ca.crt" \
        --kubelet-preferred-address-types=InternalIP \
        --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true \
        --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
        --service-account-issuer=https://kubernetes.default.svc \
        --service-account-key-file="$pki/sa.pub" \
        --service-account-signing-key-file="$pki/sa.key" --profiling=false
    WAIT_PID=$LAUNCHED_PID wait_for "kube-apiserver /readyz ($BR_IP:$api_port)" 120 \
        "$dir/logs/kube-apiserver.log" apiserver_ready "$dir" "$api_port"
    step "etcd and kube-apiserver up"

    # shellcheck disable=SC2054 # the commas separate paths inside one flag
    local delegated=(--kubeconfig="$KUBECONFIG_FILE"
        --authentication-kubeconfig="$KUBECONFIG_FILE"
        --authorization-kubeconfig="$KUBECONFIG_FILE"
        --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics
        --bind-address=127.0.0.1 --leader-elect=false --profiling=false)
    # --enable-hostpath-provisioner: the StorageClass `standard` (kubernetes.io/host-path).
    # --pvclaimbinder-sync-period=1s: claims are bound within a second, not 15.
    # The controllers act as admin, not each with its own ServiceAccount
    # (--use-service-account-credentials): that made the controllers start one by one, about
    # a second apart, and the node take 3 s longer to be usable; tests do not see who the
    # controllers are.
    launch "$dir" kube-controller-manager "$K8S_BIN/kube-controller-manager" "${delegated[@]}" \
        --secure-port="$kcm_port" --cert-dir="$pki/kcm" \
        --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
        --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" --allocate-node-cidrs=true \
        --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size=24 \
        --node-monitor-grace-period=20s --pvclaimbinder-sync-period=1s \
        --enable-hostpath-provisioner=true --flex-volume-plugin-dir="$dir/kubelet-plugins"
    local kcm_pid=$LAUNCHED_PID
    launch "$dir" kube-scheduler "$K8S_BIN/kube-scheduler" "${delegated[@]}" \
        --secure-port="$sched_port" --cert-dir="$pki/scheduler"
    local sched_pid=$LAUNCHED_PID

    mkdir -p "$dir/kubelet" "$dir/pod-logs" "$dir/kubelet-plugins"
    kubelet_config "$dir" "$kubelet_port" "$kubelet_hz" >"$dir/kubelet.yaml"
    launch "$dir" kubelet "$K8S_BIN/kubelet" --config="$dir/kubelet.yaml" \
        --kubeconfig="$dir/kubelet.kubeconfig" --root-dir="$dir/kubelet" \
        --hostname-override="$NODE_NAME" --node-ip="$BR_IP" --v=1
    local kubelet_pid=$LAUNCHED_PID
    # No sysctl writes (the conntrack values 0 mean: leave them), NodePorts only on the
    # bridge's address.
    launch "$dir" kube-proxy "$K8S_BIN/kube-proxy" --kubeconfig="$KUBECONFIG_FILE" \
        --proxy-mode=iptables --hostname-override="$NODE_NAME" --cluster-cidr="$CLUSTER_CIDR" \
        --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 \
        --conntrack-tcp-timeout-close-wait=0 --iptables-localhost-nodeports=false \
        --nodeport-addresses="$BR_IP/32" \
        --healthz-bind-address="127.0.0.1:$proxy_hz" \
        --metrics-bind-address="127.0.0.1:$proxy_metrics"
    local proxy_pid=$LAUNCHED_PID

    WAIT_PID=$kcm_pid wait_for "kube-controller-manager /healthz (port $kcm_port)" 60 \
        "$dir/logs/kube-controller-manager.log" component_healthy "$kcm_port"
    WAIT_PID=$sched_pid wait_for "kube-scheduler /healthz (port $sched_port)" 60 \
        "$dir/logs/kube-scheduler.log" component_healthy "$sched_port"
    WAIT_PID=$kubelet_pid wait_for "kubelet /healthz (port $kubelet_hz)" 60 \
        "$dir/logs/kubelet.log" http_healthy "$kubelet_hz"
    WAIT_PID=$proxy_pid wait_for "kube-proxy /livez (port $proxy_hz)" 60 \
        "$dir/logs/kube-proxy.log" proxy_live "$proxy_hz"
    release_port_lock
    WAIT_PID=$kubelet_pid wait_for "node $NODE_NAME Ready" 90 "$dir/logs/kubelet.log" node_ready
    WAIT_PID=$kcm_pid wait_for "the default ServiceAccount" 60 \
        "$dir/logs/kube-controller-manager.log" default_sa_exists
    step "node $NODE_NAME Ready"

    if ! kubectl_ apply -f "$HERE/node/storage.yaml" -f "$HERE/node/coredns.yaml" \
        >"$dir/logs/addons.log" 2>&1; then
        show_log "$dir/logs/addons.log"
        die "could not apply the StorageClass and CoreDNS"
    fi
    if ! kubectl_ -n kube-system rollout status deployment/coredns --timeout=90s \
        >>"$dir/logs/addons.log" 2>&1; then
        kubectl_ -n kube-system describe pods -l k8s-app=kube-dns >>"$dir/logs/addons.log" 2>&1 || true
        show_log "$dir/logs/addons.log"
        die "CoreDNS did not become Ready in 90 s"
    fi
    step "CoreDNS Ready, StorageClass standard (default)"

    cat >"$dir/env" <<EOF
export SNS_NODE_DIR=$dir
export KUBECONFIG=$KUBECONFIG_FILE
export SNS_NODE_KUBECONFIG=$KUBECONFIG_FILE
export SNS_NODE_BRIDGE_IP=$BR_IP
export SNS_NODE_API=https://$BR_IP:$api_port
export SNS_NODE_CTR_SOCKET=$CTR_SOCK
export SNS_NODE_NAME=$NODE_NAME
export SNS_NODE_K8S_BIN=$K8S_BIN
export PATH=$K8S_BIN:\$PATH
EOF
    echo "$etcd_port $api_port $kcm_port $sched_port $kubelet_port $kubelet_hz $proxy_hz" >"$dir/ports"
    trap - EXIT
    step "started: API https://$BR_IP:$api_port, node $NODE_NAME Ready, CoreDNS Ready"
    echo "$dir/env"
}

# ---------------------------------------------------------------------------------------
# stop: every step is tried, whatever happened before; a step that fails is reported and
# makes the exit status 1.

STOP_FAILED=()
try() { # DESCRIPTION CMD...: run CMD in a subshell (a `die` in it ends only it)
    local what=$1
    shift
    if ! ("$@"); then
        log "stop: $what failed"
        STOP_FAILED+=("$what")
    fi
}

# stop_names DIR TIMEOUT NAME...: TERM the recorded processes NAME... that are still ours,
# wait (bounded) for them to exit, KILL what is left; fail if something survives KILL. Like
# lib.sh's stop_group, but without its wait for init to reap each group: this machine's init
# reaps about every 2 s, and a wait per group doubled the time of `stop` (reap_wait, once at
# the end, instead).
stop_names() {
    local dir=$1 timeout=$2 name n pid comm entry deadline alive=() left=()
    shift 2
    for name in "$@"; do
        while read -r n pid comm; do
            [[ $n == "$name" && -n $pid ]] || continue
            if is_ours "$pid" "$comm"; then
                kill -TERM "$pid" 2>/dev/null || true
                alive+=("$name:$pid:$comm")
            fi
        done <"$dir/pids"
    done
    deadline=$((SECONDS + timeout))
    while :; do
        left=()
        for entry in "${alive[@]+"${alive[@]}"}"; do
            IFS=: read -r name pid comm <<<"$entry"
            is_ours "$pid" "$comm" && left+=("$entry")
        done
        ((${#left[@]} == 0 || SECONDS >= deadline)) && break
        sleep 0.05
    done
    for entry in "${left[@]+"${left[@]}"}"; do
        IFS=: read -r name pid comm <<<"$entry"
        log "$name (pid $pid) did not stop on TERM within $timeout s: KILL"
        kill -KILL "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 5))
    for entry in "${left[@]+"${left[@]}"}"; do
        IFS=: read -r name pid comm <<<"$entry"
        while is_ours "$pid" "$comm"; do
            ((SECONDS < deadline)) || { log "$name (pid $pid) still runs after KILL"; return 1; }
            sleep 0.05
        done
    done
}

reap_wait() { # DIR NAME...: wait (bounded, not an error) for init to reap these processes
    local dir=$1 name n pid comm deadline=$((SECONDS + 3))
    shift
    for name in "$@"; do
        while read -r n pid comm; do
            [[ $n == "$name" && -n $pid ]] || continue
            while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
        done <"$dir/pids"
    done
}

# Every task and container in the node's containerd, through containerd (it tears down the
# mounts and makes the shims exit).
remove_containers() {
    local ns t c i running
    for ns in $(ctr_ namespaces ls -q 2>/dev/null); do
        for t in $(ctr_ -n "$ns" tasks ls -q 2>/dev/null); do
            ctr_ -n "$ns" tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1 || true
        done
        for ((i = 0; i < 50; i++)); do
            running=$(ctr_ -n "$ns" tasks ls 2>/dev/null | awk 'NR > 1 && $3 != "STOPPED"' | wc -l)
            ((running == 0)) && break
            sleep 0.1
        done
        for t in $(ctr_ -n "$ns" tasks ls -q 2>/dev/null); do
            ctr_ -n "$ns" tasks delete -f "$t" >/dev/null 2>&1 || true
        done
        for c in $(ctr_ -n "$ns" containers ls -q 2>/dev/null); do
            ctr_ -n "$ns" containers delete "$c" >/dev/null 2>&1 || true
        done
    done
    [[ -z "$(ctr_ -n k8s.io containers ls -q 2>/dev/null)" ]]
}

# PIDs of containerd shims serving our socket, and of processes in the kubepods cgroups.
leftover_pids() {
    local p cmd
    for p in /proc/[0-9]*; do
        [[ "$(cat "$p/comm" 2>/dev/null)" == containerd-shim* ]] || continue
        cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
        [[ " $cmd " == *" -address $CTR_SOCK "* ]] && echo "${p#/proc/}"
    done
    local h
    for h in /sys/fs/cgroup/*/kubepods; do
        [[ -d $h ]] && find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null
    done
    return 0
}

kill_leftovers() {
    local pids i
    pids=$(leftover_pids | sort -u)
    [[ -z $pids ]] && return 0
    log "stop: killing $(wc -w <<<"$pids") leftover shim/container processes"
    # shellcheck disable=SC2086 # a list of PIDs
    kill -KILL $pids 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        [[ -z "$(leftover_pids)" ]] && return 0
        sleep 0.1
    done
    log "stop: still running: $(leftover_pids | paste -sd' ')"
    return 1
}

# Every KUBE-* chain (kubelet's and kube-proxy's) and our guard, the rules of other chains
# that jump to them, and the tables that were not there at `start` and are empty now
# (iptables-nft leaves them): one `nft -f` batch, made from the ruleset in JSON. iptables is
# the nf_tables variant (checked by `start`), so nft sees all of it.
NFT_CLEANUP_PY='
import json, subprocess, sys
guard, before_file = sys.argv[1], sys.argv[2]
rs = json.loads(subprocess.run(["nft", "-j", "list", "ruleset"], check=True,
                               capture_output=True).stdout)["nftables"]
ours = lambda name: name.startswith("KUBE-") or name == guard
tables, chains, rules, other = [], [], [], set()
for o in rs:
    if "table" in o:
        tables.append((o["table"]["family"], o["table"]["name"]))
    elif "chain" in o:
        chains.append(o["chain"])
    elif "rule" in o:
        rules.append(o["rule"])
    elif any(k in o for k in ("set", "map", "flowtable", "element", "counter", "quota")):
        v = next(iter(o.values()))
        other.add((v["family"], v["table"]))
def jumps(rule):
    for e in rule.get("expr") or []:
        for k in ("jump", "goto"):
            if isinstance(e, dict) and k in e:
                yield e[k]["target"]
cmds, busy = [], set(other)
for r in rules:
    if ours(r["chain"]):
        continue
    if any(ours(t) for t in jumps(r)):
        cmds.append("delete rule {family} {table} {chain} handle {handle}".format(**r))
    else:
        busy.add((r["family"], r["table"]))
mine = [c for c in chains if ours(c["name"])]
for verb in ("flush", "delete"):
    for c in mine:
        cmds.append(verb + " chain {family} {table} {name}".format(**c))
for c in chains:
    if not ours(c["name"]) and "hook" not in c:
        busy.add((c["family"], c["table"]))
if before_file:
    before = set(l.strip() for l in open(before_file))
    for f, t in tables:
        if f"table {f} {t}" not in before and (f, t) not in busy:
            cmds.append(f"delete table {f} {t}")
print("\n".join(cmds))
'

clean_iptables() { # DIR
    local before=$1/host/nft-tables.before script
    [[ -f $before ]] || before=""
    script=$(python3 -c "$NFT_CLEANUP_PY" "$GUARD" "$before") || return 1
    if [[ -n $script ]]; then
        nft -f - <<<"$script" || return 1
    fi
    ! nft list ruleset 2>/dev/null | grep -qE "chain (KUBE-|$GUARD)"
}

mounts_under() { # PATH...: mount points under these paths, deepest first
    awk '{ print $5 }' /proc/self/mountinfo | while read -r m; do
        m=$(printf '%b' "${m//\\/\\0}") # \040 and the like
        local p
        for p in "$@"; do
            [[ $m == "$p" || $m == "$p"/* ]] && echo "$m"
        done
    done | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-
}

unmount_all() { # PATH...
    local m left
    while read -r m; do
        [[ -n $m ]] || continue
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "stop: cannot unmount $m"
    done < <(mounts_under "$@")
    left=$(mounts_under "$@")
    [[ -z $left ]] || { log "stop: still mounted: $left"; return 1; }
}

# The CRI plugin's per-pod files (hostname, hosts, resolv.conf, status) in the kept image
# store: its containers are gone (containerd would drop them at its next start anyway).
remove_cri_dirs() {
    local d
    for d in "$CTRD_ROOT/io.containerd.grpc.v1.cri/containers" "$CTRD_ROOT/io.containerd.grpc.v1.cri/sandboxes"; do
        [[ -d $d ]] || continue
        [[ -z "$(mounts_under "$d")" ]] || { log "stop: mounts remain under $d"; return 1; }
        rm -rf --one-file-system "$d"
    done
}

remove_network() {
    local v
    if ip link show "$BR" >/dev/null 2>&1; then
        for v in $(ip -o link show master "$BR" 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
            ip link del "$v" 2>/dev/null || true
        done
        ip route del "$SERVICE_CIDR" dev "$BR" 2>/dev/null || true
        ip link del "$BR"
    fi
    if ip route show type unreachable "$CLUSTER_CIDR" | grep -q .; then
        ip route del unreachable "$CLUSTER_CIDR"
    fi
}

restore_sysctls() { # DIR
    local file=$1/host/sysctls k v rc=0
    [[ -f $file ]] || return 0
    while IFS='=' read -r k v; do
        [[ -e /proc/sys/${k//.//} ]] || continue
        [[ "$(sysctl -n "$k")" == "$v" ]] && continue
        sysctl -qw "$k=$v" || rc=1
    done <"$file"
    return $rc
}

remove_cgroups() {
    local h i
    for h in /sys/fs/cgroup/*/kubepods; do
        [[ -d $h ]] || continue
        for ((i = 0; i < 30; i++)); do
            find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [[ -d $h ]] || break
            sleep 0.1
        done
        [[ ! -d $h ]] || { log "stop: cannot remove cgroup $h"; return 1; }
    done
}

remove_host_paths() { # DIR
    local host=$1/host p e
    # Volumes of the hostPath provisioner: the whole directory if we made it, else only
    # what appeared since `start`.
    if [[ -d $HOSTPATH_PV_DIR ]]; then
        if [[ -f $host/hostpath-pv.before ]]; then
            for e in $(cd "$HOSTPATH_PV_DIR" && ls -A); do
                grep -qxF "$e" "$host/hostpath-pv.before" || rm -rf --one-file-system "${HOSTPATH_PV_DIR:?}/$e"
            done
        elif [[ -f $host/new-paths ]]; then
            rm -rf --one-file-system "$HOSTPATH_PV_DIR"
        fi
    fi
    [[ -f $host/new-paths ]] || return 0
    while read -r p; do
        [[ -n $p && ( -e $p || -L $p ) ]] || continue
        if [[ -n "$(mounts_under "$p")" ]]; then
            log "stop: $p still has mounts; not removed"
            continue
        fi
        rm -rf --one-file-system "$p"
    done <"$host/new-paths"
}

cmd_stop() {
    local dir=$1
    if [[ ! -d $dir ]]; then
        log "no $dir: nothing to stop"
        return 0
    fi
    dir=$(cd "$dir" && pwd)
    paths_of "$dir"
    STOP_FAILED=()
    if [[ -f $dir/stopped ]]; then
        log "$dir was stopped already"
    elif [[ ! -f $dir/pids ]]; then
        # `start` made DIR/pids once it held the node lock and had found the machine free:
        # without it this directory never had a node, and the machine's state is not ours.
        log "no $dir/pids: no node was started there"
    else
        step "stopping the node of $dir"
        # The node agents first (else the kubelet restarts the containers we stop).
        try "stopping kubelet and kube-proxy" stop_names "$dir" 15 kubelet kube-proxy
        step "kubelet and kube-proxy stopped"
        local ctrd_pid
        ctrd_pid=$(pid_of "$dir" containerd)
        if [[ -n $ctrd_pid ]] && is_ours "$ctrd_pid" containerd && ctr_ version >/dev/null 2>&1; then
            try "removing the containers" remove_containers
        fi
        try "killing leftover shims and container processes" kill_leftovers
        try "stopping containerd" stop_names "$dir" 15 containerd
        step "containers and containerd stopped"
        # etcd last: a kube-apiserver whose etcd is gone takes long to stop.
        try "stopping the control plane" stop_names "$dir" 15 \
            kube-scheduler kube-controller-manager kube-apiserver
        try "stopping etcd" stop_names "$dir" 15 etcd
        step "processes stopped"
        try "removing iptables chains and tables" clean_iptables "$dir"
        try "unmounting" unmount_all "$dir" "$CTRD_ROOT" /run/containerd /var/lib/kubelet
        try "removing the pods' files from the image store" remove_cri_dirs
        try "removing the bridge" remove_network
        try "restoring sysctls" restore_sysctls "$dir"
        try "removing cgroups" remove_cgroups
        try "removing host paths" remove_host_paths "$dir"
        step "host cleaned: iptables, mounts, $BR, sysctls, cgroups, paths"
        # So that `ps` right after `stop` lists no <defunct> of ours. (The lock's `sleep`
        # may stay <defunct> a moment, until init reaps it: it goes last, waiting for that
        # costs seconds on this machine, and it holds nothing.)
        reap_wait "$dir" kubelet kube-proxy containerd kube-scheduler \
            kube-controller-manager kube-apiserver etcd
        try "releasing the node lock" stop_names "$dir" 5 node-lock
        if ((${#STOP_FAILED[@]} > 0)); then
            log "stop: NOT clean: ${STOP_FAILED[*]} (kept $dir; run stop again to retry)"
            return 1
        fi
        touch "$dir/stopped"
    fi
    if [[ ${KEEP_TESTENV:-0} == 1 ]]; then
        step "stopped; kept $dir"
    elif [[ -n "$(mounts_under "$dir")" ]]; then
        log "stopped, but mounts remain under $dir: not removed"
        return 1
    else
        rm -rf --one-file-system "$dir"
        step "stopped; removed $dir"
    fi
}

cmd_import() {
    local dir=$1
    shift
    [[ -f $dir/pids && ! -f $dir/stopped ]] || die "no node runs in $dir"
    dir=$(cd "$dir" && pwd)
    paths_of "$dir"
    ctr_ version >/dev/null 2>&1 || die "containerd does not answer on $CTR_SOCK"
    import_archives "$@"
}

cmd_status() {
    local dir=$1 ok=0 name pid comm
    [[ -f $dir/pids ]] || die "no $dir/pids: not started"
    dir=$(cd "$dir" && pwd)
    paths_of "$dir"
    while read -r name pid comm; do
        if is_ours "$pid" "$comm"; then
            echo "$name (pid $pid, RSS $(awk '/^VmRSS:/ { printf "%d MB", $2 / 1024 }' "/proc/$pid/status")): running"
        else
            echo "$name (pid $pid): NOT RUNNING"
            ok=1
        fi
    done <"$dir/pids"
    if node_ready 2>/dev/null; then echo "node $NODE_NAME: Ready"; else
        echo "node $NODE_NAME: NOT Ready"
        ok=1
    fi
    return $ok
}

usage() {
    echo "usage: $0 start|stop|status DIR | import DIR TAR..." >&2
    exit 2
}

(($# >= 2)) || usage
case $1 in
start) (($# == 2)) || usage && cmd_start "$2" ;;
stop) (($# == 2)) || usage && cmd_stop "$2" ;;
status) (($# == 2)) || usage && cmd_status "$2" ;;
import) cmd_import "${@:2}" ;;
*) usage ;;
esac
