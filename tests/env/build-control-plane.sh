#!/usr/bin/env bash
# Build the binaries of a real Kubernetes control plane for tests, from Go modules (release
# downloads are unreachable here; the Go module proxy is not), and cache them outside the clone:
#
#   ${SNS_TOOLS_DIR:-~/.cache/sns-platform}/k8s-<K8S_VERSION>/bin/
#       kube-apiserver kube-controller-manager kube-scheduler kubectl   (k8s.io/kubernetes)
#       kubelet kube-proxy     (k8s.io/kubernetes too: the real node of tests/env/node.sh)
#       etcd                                                           (go.etcd.io/etcd/server/v3)
#       kwok                                                           (sigs.k8s.io/kwok)
#       helm                                                           (helm.sh/helm/v3)
#       coredns                                                        (github.com/coredns/coredns)
#   .../stages/   kwok's stock Stage files (kwok v0.8 has no built-in stages)
#
# Only what is missing (or was built from another version) is built, so a run with everything
# present takes about a second and needs no network. A cold build takes a long time (tens of
# minutes on 2 cores) and a few GB of RAM for the links. Recipes: docs/TESTENV-go.md of the
# shared docs.
#
# Builds run one at a time under `nice -n 19` with GOMAXPROCS=2 (the machine may be busy);
# override with SNS_BUILD_NICE / SNS_BUILD_GOMAXPROCS. The Go module and build caches stay at
# their defaults (~/go/pkg/mod, ~/.cache/go-build) so that rebuilds are fast.
set -euo pipefail

SNS_TOOLS_DIR="${SNS_TOOLS_DIR:-$HOME/.cache/sns-platform}"
# v1.36.4 is not on the module proxy (newest 1.36 patch there: v1.36.3). 1.36 matches the
# k8s-openapi feature `v1_36`.
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}" # newest 3.6 (Kubernetes 1.34-1.36 use etcd 3.6)
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}" # the cluster DNS of tests/env/node.sh

PREFIX="$SNS_TOOLS_DIR/k8s-$K8S_VERSION"
BIN="$PREFIX/bin"
STAGES="$PREFIX/stages"
STAMPS="$PREFIX/stamps" # STAMPS/NAME holds the recipe NAME was built from
SRC="$PREFIX/src"       # the throw-away wrapper modules (never in the repository)

NICE="${SNS_BUILD_NICE:-19}"
BUILD_GOMAXPROCS="${SNS_BUILD_GOMAXPROCS:-2}"

# kwok's stock stages: node lifecycle + lease heartbeat, pod ready/complete/delete.
KWOK_STAGE_FILES=(
    kustomize/stage/node/fast/node-initialize.yaml
    kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
    kustomize/stage/pod/fast/pod-ready.yaml
    kustomize/stage/pod/fast/pod-complete.yaml
    kustomize/stage/pod/fast/pod-delete.yaml
)
# kwok's fake volume provisioner (StorageClass kwok-volume): not loaded by control-plane.sh
# unless asked for (see there), copied into stages/volume/.
KWOK_VOLUME_STAGE_FILES=(
    kustomize/stage/volume/fast/storage-class.yaml
    kustomize/stage/volume/fast/pvc-provision.yaml
    kustomize/stage/volume/fast/pv-bind.yaml
    kustomize/stage/volume/fast/pvc-delete.yaml
    kustomize/stage/volume/fast/pv-delete.yaml
)

log() { printf '[build-control-plane %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Timings of this run, printed at the end: "name seconds what".
TIMINGS=()

# step NAME RECIPE FUNCTION ARGS...: unless BIN/NAME exists and was built from RECIPE, run
# FUNCTION ARGS... (which must produce BIN/NAME), record RECIPE and say how long it took.
step() {
    local name=$1 recipe=$2 start_us elapsed_ms secs
    shift 2
    if [[ -x $BIN/$name && "$(cat "$STAMPS/$name" 2>/dev/null)" == "$recipe" ]]; then
        TIMINGS+=("$(printf '%-24s %8s   present (%s)' "$name" - "$recipe")")
        return
    fi
    command -v go >/dev/null || die "$name must be built, and go is not on PATH (Go >= 1.26 needed)"
    log "$name: building ($recipe) with $(GOTOOLCHAIN=local go version | cut -d' ' -f3)"
    start_us=${EPOCHREALTIME/./}
    "$@"
    [[ -x $BIN/$name ]] || die "$name: build finished but $BIN/$name is missing"
    echo "$recipe" >"$STAMPS/$name"
    elapsed_ms=$(((${EPOCHREALTIME/./} - start_us) / 1000))
    secs=$(printf '%d.%01d' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)))
    log "$name: built in $secs s ($(du -h "$BIN/$name" | cut -f1))"
    TIMINGS+=("$(printf '%-24s %8s s built (%s)' "$name" "$secs" "$recipe")")
}

# gobuild ARGS...: the go command, niced, with our settings (one build at a time).
gobuild() {
    GOTOOLCHAIN=local GOMAXPROCS="$BUILD_GOMAXPROCS" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
        nice -n "$NICE" go "$@"
}

# Path of a file of the module cache, downloading the module if needed.
module_file() { # MODULE@VERSION FIELD (GoMod or Dir)
    local json
    json=$(cd "$SRC" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go mod download -json "$1") ||
        die "go mod download $1 failed (is the version on the module proxy? go list -m -versions ${1%@*})"
    sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}$/\1/p" <<<"$json"
}

# ---------------------------------------------------------------------------------------
# Kubernetes: `go install k8s.io/kubernetes/cmd/...@v` is refused (its go.mod maps the 33
# staging modules to ./staging/... with replace lines), so build from a wrapper module that
# requires k8s.io/kubernetes and replaces each staging module by its published v0.MINOR.PATCH.

k8s_wrapper() { # -> SRC/kubebins, written once per run
    [[ -n ${K8S_WRAPPER_DONE:-} ]] && return
    local gomod dir="$SRC/kubebins" mod_version="v0.${K8S_VERSION#v1.}"
    gomod=$(module_file "k8s.io/kubernetes@$K8S_VERSION" GoMod)
    [[ -f $gomod ]] || die "no go.mod for k8s.io/kubernetes@$K8S_VERSION"
    mkdir -p "$dir"
    {
        echo "module example.local/kubebins"
        echo
        # Same language version and GODEBUG defaults as the upstream build (godebug lines
        # only count in the main module).
        grep -E '^go [0-9]' "$gomod"
        echo
        grep -E '^godebug ' "$gomod" || true
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        # "	k8s.io/api => ./staging/src/k8s.io/api" -> "	k8s.io/api => k8s.io/api v0.36.3"
        sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/k8s\.io/.*$#\t\1 => \1 '"$mod_version"'#p' "$gomod"
        echo ")"
    } >"$dir/go.mod.new"
    (($(grep -c ' => k8s.io/' "$dir/go.mod.new") > 20)) ||
        die "found too few staging replaces in $gomod: is its layout different?"
    # Keep go.sum (it makes the next build faster) unless go.mod changed.
    if ! cmp -s "$dir/go.mod.new" "$dir/go.mod"; then
        mv "$dir/go.mod.new" "$dir/go.mod"
        rm -f "$dir/go.sum"
    else
        rm "$dir/go.mod.new"
    fi
    K8S_WRAPPER_DONE=1
}

build_k8s() { # NAME: k8s.io/kubernetes/cmd/NAME
    local name=$1 minor ldf p
    k8s_wrapper
    minor=${K8S_VERSION#v1.}
    minor=${minor%%.*}
    # Only /version and `kubectl version` read these; behaviour follows the source.
    ldf="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldf+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
        ldf+=" -X $p.gitTreeState=clean"
    done
    # -mod=mod: the wrapper has only a go.mod; go resolves the dependencies (from
    # k8s.io/kubernetes's requirements) and records their sums in go.sum as it builds.
    (cd "$SRC/kubebins" && gobuild build -mod=mod -trimpath -ldflags "$ldf" -o "$BIN/.$name.tmp" \
        "k8s.io/kubernetes/cmd/$name")
    mv -f "$BIN/.$name.tmp" "$BIN/$name"
}

# etcd: go.etcd.io/etcd/server/v3 is the etcd main package; its go.mod replaces its sibling
# modules with ../api etc., so it too is built from a wrapper. The siblings are required at
# the same published version, so the wrapper needs no replace lines.
build_etcd() {
    local dir="$SRC/etcdbin" gomod
    gomod=$(module_file "go.etcd.io/etcd/server/v3@$ETCD_VERSION" GoMod)
    mkdir -p "$dir"
    {
        echo "module example.local/etcdbin"
        echo
        grep -E '^go [0-9]' "$gomod"
        echo
        echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    } >"$dir/go.mod.new"
    if ! cmp -s "$dir/go.mod.new" "$dir/go.mod"; then
        mv "$dir/go.mod.new" "$dir/go.mod"
        rm -f "$dir/go.sum"
    else
        rm "$dir/go.mod.new"
    fi
    (cd "$dir" && gobuild build -mod=mod -trimpath -ldflags "-s -w" -o "$BIN/.etcd.tmp" \
        go.etcd.io/etcd/server/v3)
    mv -f "$BIN/.etcd.tmp" "$BIN/etcd"
}

# kwok and helm have no replace lines: plain `go install`, into a temporary GOBIN (so that a
# half-written binary never sits in BIN).
go_install() { # NAME PACKAGE@VERSION LDFLAGS
    local name=$1 pkg=$2 ldf=$3 gobin="$BIN/.gobin.$1"
    rm -rf "$gobin"
    mkdir -p "$gobin"
    (cd "$SRC" && GOBIN="$gobin" gobuild install -trimpath -ldflags "$ldf" "$pkg")
    mv -f "$gobin/$name" "$BIN/$name"
    rmdir "$gobin"
}

build_kwok() { go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "-s -w"; }

# CoreDNS's go.mod has no replace lines either. Static (CGO_ENABLED=0): it goes alone into
# an image layer (tests/env/node.sh).
build_coredns() { go_install coredns "github.com/coredns/coredns@$COREDNS_VERSION" "-s -w"; }

build_helm() {
    local minor=${K8S_VERSION#v1.} ldf="-s -w" p
    minor=${minor%%.*}
    # What helm's Makefile sets: its version, and the Kubernetes version that offline
    # `helm template` / `helm lint` assume (else 1.20): ours.
    ldf+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ldf+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
        ldf+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
    done
    go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$ldf"
}

copy_stages() {
    local want=("${KWOK_STAGE_FILES[@]}" "${KWOK_VOLUME_STAGE_FILES[@]}") f missing=0
    for f in "${KWOK_STAGE_FILES[@]}"; do
        [[ -f $STAGES/$(basename "$f") ]] || missing=1
    done
    for f in "${KWOK_VOLUME_STAGE_FILES[@]}"; do
        [[ -f $STAGES/volume/$(basename "$f") ]] || missing=1
    done
    if ((missing == 0)) && [[ "$(cat "$STAMPS/stages" 2>/dev/null)" == "kwok $KWOK_VERSION" ]]; then
        TIMINGS+=("$(printf '%-24s %8s   present (kwok %s)' stages - "$KWOK_VERSION")")
        return
    fi
    local dir
    dir=$(module_file "sigs.k8s.io/kwok@$KWOK_VERSION" Dir)
    [[ -d $dir ]] || die "no module directory for sigs.k8s.io/kwok@$KWOK_VERSION"
    mkdir -p "$STAGES/volume"
    for f in "${want[@]}"; do
        [[ -f $dir/$f ]] || die "kwok $KWOK_VERSION has no $f"
    done
    # The module cache is read-only: install gives the copies normal permissions.
    for f in "${KWOK_STAGE_FILES[@]}"; do install -m 0644 "$dir/$f" "$STAGES/"; done
    for f in "${KWOK_VOLUME_STAGE_FILES[@]}"; do install -m 0644 "$dir/$f" "$STAGES/volume/"; done
    echo "kwok $KWOK_VERSION" >"$STAMPS/stages"
    TIMINGS+=("$(printf '%-24s %8s   copied from %s' stages - "$dir")")
}

# ---------------------------------------------------------------------------------------

total_start=$SECONDS
mkdir -p "$BIN" "$STAMPS" "$SRC"
# Two runs at once would build the same things twice on a busy machine: one waits.
exec 9>"$PREFIX/.build.lock"
flock -w 7200 9 || die "another build holds $PREFIX/.build.lock"

step etcd "etcd $ETCD_VERSION" build_etcd
# kubelet and kube-proxy (the real node) share most of the build cache with the others: about
# 1.5 minutes more once those are built.
for name in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
    step "$name" "kubernetes $K8S_VERSION" build_k8s "$name"
done
step kwok "kwok $KWOK_VERSION" build_kwok
step helm "helm $HELM_VERSION (kube $K8S_VERSION)" build_helm
step coredns "coredns $COREDNS_VERSION" build_coredns
copy_stages

for line in "${TIMINGS[@]}"; do log "$line"; done
log "all present in $BIN ($((SECONDS - total_start)) s in all)"
echo "$BIN"
