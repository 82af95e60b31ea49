#!/usr/bin/env bash
# Smoke checks of a node started by tests/env/node.sh, for CI and for a look by hand:
#
#   node-smoke.sh DIR     (DIR as given to `node.sh start DIR`)
#
# In a namespace of its own (deleted at the end): a one-layer busybox image made from the
# host's /bin/busybox (Debian package busybox-static) is imported; a StatefulSet with a PVC
# of the default StorageClass runs busybox httpd; then: node and CoreDNS Ready, the volume
# bound and its data surviving the pod's deletion, DNS (the `kubernetes` Service, a headless
# Service and a pod's own name), a ClusterIP Service from the host and from the pod itself
# (hairpin), the API server from a pod through the `kubernetes` Service, `kubectl exec`,
# `logs` and `port-forward`, no default route in pods, and the volume's directory deleted
# with its claim. Prints one line per check and "N passed, N failed" at the end; exit 1 if a
# check failed. No traffic leaves the machine: every address used is the node's.
set -euo pipefail

(($# == 1)) || {
    echo "usage: $0 DIR" >&2
    exit 2
}
DIR=$(cd "$1" && pwd)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_TAG=node-smoke
WAIT_POLL_S=0.5
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"
[[ -f $DIR/env ]] || die "no $DIR/env: start the node first (node.sh start $DIR)"
# shellcheck disable=SC1091
source "$DIR/env"
SNS_TOOLS_DIR="${SNS_TOOLS_DIR:-$HOME/.cache/sns-platform}"
NS=sns-smoke
IMAGE=localhost/busybox:sns-smoke
BUSYBOX=${BUSYBOX:-/bin/busybox}
T0=$SECONDS
PASSED=0
FAILED=0
PF_PID=

k() { kubectl --request-timeout=20s -n "$NS" "$@"; }

pass() {
    PASSED=$((PASSED + 1))
    log "ok   $* [$((SECONDS - T0)) s]"
}
fail() {
    FAILED=$((FAILED + 1))
    log "FAIL $* [$((SECONDS - T0)) s]"
}
# check DESCRIPTION CMD...: CMD must succeed; tried up to 5 times, a second apart (a change
# takes a moment to reach the Service rules and DNS).
check() {
    local what=$1 out try
    shift
    for try in 1 2 3 4 5; do
        if out=$("$@" 2>&1); then
            ((try == 1)) || what+=" (try $try)"
            pass "$what"
            return
        fi
        sleep 1
    done
    fail "$what"
    printf '%s\n' "$out" | tail -n 15 >&2
}

cleanup() {
    [[ -n $PF_PID ]] && kill "$PF_PID" 2>/dev/null
    kubectl --request-timeout=20s delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The busybox image: /bin/busybox, a symlink per applet, /tmp. Cached by content.
busybox_image() {
    [[ -x $BUSYBOX ]] || die "$BUSYBOX not found (Debian package busybox-static)"
    if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is not static (busybox-static)"; fi
    local key tar spec applet
    key=$(cat "$BUSYBOX" "$HERE/oci-image.py" | sha256sum | cut -c1-16)
    mkdir -p "$SNS_TOOLS_DIR/node-images"
    tar=$SNS_TOOLS_DIR/node-images/busybox-smoke-$key.tar
    if [[ ! -f $tar ]]; then
        spec=$(mktemp)
        {
            printf '{"layers": {"bb": {"files": {"/bin/busybox": "%s"}, "dirs": {"/tmp": {"mode": "1777"}, "/www": {}}, "symlinks": {' "$BUSYBOX"
            "$BUSYBOX" --list | grep -vx busybox | while read -r applet; do
                printf '"/bin/%s": "busybox", ' "$applet"
            done
            printf '"/bin/.busybox": "busybox"}}},\n'
            printf ' "images": [{"ref": "%s", "layers": ["bb"], "config": {"Cmd": ["/bin/sh"]}}]}\n' "$IMAGE"
        } >"$spec"
        python3 "$HERE/oci-image.py" build "$tar" "$spec" >/dev/null
        rm -f "$spec"
    fi
    echo "$tar"
}

manifests() {
    cat <<EOF
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-vip}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: $IMAGE
        imagePullPolicy: Never
        command: [sh, -c, 'echo "boot \$(date +%T) on \$(hostname)" >> /data/boots; mkdir -p /www; echo "hello from \$(hostname)" > /www/index.html; echo booted; cat /data/boots; exec httpd -f -p 8080 -h /www']
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
        resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {memory: 64Mi}}
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
EOF
}

pod_ready() { [[ "$(k get pod "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
pod_uid_changed() { # POD OLD_UID
    local uid
    uid=$(k get pod "$1" -o jsonpath='{.metadata.uid}') && [[ -n $uid && $uid != "$2" ]] && pod_ready "$1"
}
gone() { ! [[ -e $1 ]]; }
pv_gone() { [[ -z "$(kubectl get pv "$1" -o name 2>/dev/null)" ]]; }
expect() { # WANT CMD...: CMD's output contains WANT
    local want=$1 out
    shift
    out=$("$@" 2>&1) || { printf '%s\n' "$out"; return 1; }
    grep -qF -- "$want" <<<"$out" || { printf 'wanted %s in:\n%s\n' "$want" "$out"; return 1; }
}

# ---------------------------------------------------------------------------------------

check "node $SNS_NODE_NAME Ready" expect True kubectl get node "$SNS_NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}'
check "CoreDNS Ready" kubectl -n kube-system rollout status deployment/coredns --timeout=60s
check "StorageClass standard is the default" expect standard kubectl get storageclass \
    -o jsonpath='{range .items[?(@.metadata.annotations.storageclass\.kubernetes\.io/is-default-class=="true")]}{.metadata.name}{end}'

tar=$(busybox_image)
check "import $IMAGE" "$HERE/node.sh" import "$DIR" "$tar"

kubectl delete namespace "$NS" --ignore-not-found --timeout=60s >/dev/null
kubectl create namespace "$NS" >/dev/null
manifests | k apply -f - >/dev/null
if wait_for "pod web-0 Ready" 90 /dev/null pod_ready web-0; then
    pass "StatefulSet web (busybox, PVC of the default class) Ready"
else
    fail "StatefulSet web Ready"
    k describe pod web-0 >&2 || true
    exit 1
fi

pvc_phase=$(k get pvc data-web-0 -o jsonpath='{.status.phase}')
pv=$(k get pvc data-web-0 -o jsonpath='{.spec.volumeName}')
pv_path=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
if [[ $pvc_phase == Bound && $pv_path == /tmp/hostpath_pv/* && -d $pv_path ]]; then
    pass "PVC data-web-0 Bound to $pv ($pv_path)"
else
    fail "PVC data-web-0 Bound (phase '$pvc_phase', PV '$pv', path '$pv_path')"
fi

check "kubectl exec" expect marker-1 k exec web-0 -- sh -c 'echo marker-1 > /data/marker && cat /data/marker'
check "kubectl logs" expect booted k logs web-0

old_uid=$(k get pod web-0 -o jsonpath='{.metadata.uid}')
k delete pod web-0 --wait=false >/dev/null
if wait_for "web-0 back" 90 /dev/null pod_uid_changed web-0 "$old_uid"; then
    check "the volume's data survives the pod's deletion" expect marker-1 k exec web-0 -- cat /data/marker
    check "the pod booted twice on the same volume" expect 2 sh -c \
        "kubectl -n $NS exec web-0 -- cat /data/boots | wc -l"
else
    fail "web-0 recreated after deletion"
fi

pod_ip=$(k get pod web-0 -o jsonpath='{.status.podIP}')
vip=$(k get service web-vip -o jsonpath='{.spec.clusterIP}')
endpoint_is_pod() {
    [[ "$(k get endpointslices -l kubernetes.io/service-name=web-vip \
        -o jsonpath='{.items[*].endpoints[?(@.conditions.ready==true)].addresses[*]}')" == "$pod_ip" ]]
}
wait_for "Service web-vip's endpoint = $pod_ip" 30 /dev/null endpoint_is_pod ||
    fail "Service web-vip has the new pod as its endpoint"
check "DNS: kubernetes.default.svc.cluster.local" expect 10.0.0.1 \
    k exec web-0 -- nslookup kubernetes.default.svc.cluster.local
check "DNS: headless Service web.$NS.svc.cluster.local" expect "$pod_ip" \
    k exec web-0 -- nslookup "web.$NS.svc.cluster.local"
check "DNS: pod web-0.web.$NS.svc.cluster.local" expect "$pod_ip" \
    k exec web-0 -- nslookup "web-0.web.$NS.svc.cluster.local"
check "DNS: ClusterIP Service web-vip.$NS.svc.cluster.local" expect "$vip" \
    k exec web-0 -- nslookup "web-vip.$NS.svc.cluster.local"
# busybox's nslookup does not use the search list; the pod's resolv.conf has it for others.
check "DNS: pods' resolv.conf (10.0.0.10, search $NS.svc.cluster.local)" sh -c \
    "kubectl -n $NS exec web-0 -- cat /etc/resolv.conf | grep -q 'search $NS.svc.cluster.local' &&
     kubectl -n $NS exec web-0 -- cat /etc/resolv.conf | grep -q 'nameserver 10.0.0.10'"
check "DNS: a name outside the cluster is NXDOMAIN (no upstream)" expect NXDOMAIN \
    sh -c "kubectl -n $NS exec web-0 -- nslookup example.com 2>&1 || true"
check "ClusterIP $vip from the host" expect "hello from web-0" curl -fsS --max-time 5 "http://$vip/"
check "pod IP $pod_ip from the host" expect "hello from web-0" curl -fsS --max-time 5 "http://$pod_ip:8080/"
# (busybox-static's wget crashes in its static libc's resolver: nc instead.)
check "ClusterIP from the pod behind it (hairpin)" expect "hello from web-0" \
    k exec web-0 -- sh -c "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $vip 80"
# The API server's port answers through the `kubernetes` Service (TLS: a connect is enough).
check "API server from a pod via kubernetes.default.svc.cluster.local:443" \
    k exec web-0 -- sh -c 'echo | nc -w 5 kubernetes.default.svc.cluster.local 443'
check "no default route in pods" sh -c "! kubectl -n $NS exec web-0 -- ip route | grep -q default"

read -r pf_port <<<"$(free_ports 1)"
kubectl -n "$NS" port-forward pod/web-0 "$pf_port:8080" >"$DIR/logs/smoke-port-forward.log" 2>&1 &
PF_PID=$!
if wait_for "port-forward on 127.0.0.1:$pf_port" 20 "$DIR/logs/smoke-port-forward.log" \
    curl -fsS --max-time 2 "http://127.0.0.1:$pf_port/"; then
    check "kubectl port-forward" expect "hello from web-0" curl -fsS --max-time 5 "http://127.0.0.1:$pf_port/"
else
    fail "kubectl port-forward"
fi
kill "$PF_PID" 2>/dev/null || true
wait "$PF_PID" 2>/dev/null || true
PF_PID=

# reclaimPolicy Delete: the PV and its directory go with the claim.
k delete statefulset web --wait=true --timeout=60s >/dev/null
k delete pvc data-web-0 --wait=true --timeout=60s >/dev/null
if wait_for "PV $pv deleted" 60 /dev/null pv_gone "$pv" && wait_for "$pv_path removed" 30 /dev/null gone "$pv_path"; then
    pass "PV and directory deleted with the claim"
else
    fail "PV $pv / $pv_path deleted with the claim"
fi

log "$((SECONDS - T0)) s in all"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
