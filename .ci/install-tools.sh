#!/usr/bin/env bash
# Install what the tests need on a fresh Debian 12 machine; quick when it is all there already.
#   - Debian packages: MariaDB, Redis, Prometheus tooling (promtool, amtool), curl, python3-venv,
#     wrk (the benchmark's HTTP load), debootstrap (the e2e images' Debian root,
#     tests/env/build-images.sh); containerd, runc, CNI plugins, iptables, nftables, gcc and
#     the static libc, busybox-static (the real node of tests/env/node.sh and its smoke test)
#   - s3s-fs (an S3 server over a directory) built by cargo, cached outside the clone
#   - schemathesis in a venv, cached outside the clone
#   - with --with-control-plane: a Kubernetes control plane built from Go modules
#     (tests/env/build-control-plane.sh)
# Tools are cached under SNS_TOOLS_DIR (default ~/.cache/sns-platform), keyed by version.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# mariadbd lives in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

SNS_TOOLS_DIR="${SNS_TOOLS_DIR:-$HOME/.cache/sns-platform}"
S3S_FS_VERSION=0.14.1 # newer versions need a newer rustc than ours
S3S_FS_ROOT="$SNS_TOOLS_DIR/s3s-fs-$S3S_FS_VERSION"
# Newest release at the time of writing; installs on Debian 12's Python 3.11.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV="$SNS_TOOLS_DIR/venv-schemathesis"

APT_PACKAGES=(mariadb-server mariadb-client mariadb-backup socat redis-server redis-tools prometheus
    prometheus-alertmanager curl ca-certificates python3-venv openssl util-linux wrk debootstrap
    containerd runc containernetworking-plugins iptables nftables gcc libc6-dev busybox-static)

log() { printf '[install-tools %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# step NAME FUNCTION: run FUNCTION and say how long it took.
step() {
    local name=$1 start_us elapsed_ms
    shift
    start_us=${EPOCHREALTIME/./}
    "$@"
    elapsed_ms=$(((${EPOCHREALTIME/./} - start_us) / 1000))
    log "$(printf '%-12s done in %d.%01d s' "$name" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)))"
}

# Python for the venv: Debian's own (python3-venv is installed for it), else whatever is on PATH.
python_for_venv() {
    if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3; fi
}

install_apt() {
    local missing=() b
    # openssl and flock (util-linux) serve the control-plane script (certificates, port lock).
    # mariadb-backup, mbstream and socat: the MySQL pods' clone donor, tested against the
    # test services' MariaDB (operator/tests/dataplane.rs).
    for b in mariadbd mariadb mariadb-install-db mariadb-backup mbstream socat redis-server redis-cli \
        promtool amtool curl openssl flock wrk debootstrap; do
        command -v "$b" >/dev/null || missing+=("$b")
    done
    # The real node (tests/env/node.sh): containerd and runc run the pods, the CNI plugins
    # wire them to the bridge, iptables and nft set up and clean up its rules, gcc and the
    # static libc build the pause image; node-smoke.sh's test image is the static busybox.
    for b in containerd containerd-shim-runc-v2 runc ctr iptables nft gcc busybox; do
        command -v "$b" >/dev/null || missing+=("$b")
    done
    [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
    [[ "$(gcc -print-file-name=libc.a 2>/dev/null)" == /* ]] || missing+=(libc6-dev)
    # The venv step needs ensurepip, which Debian ships separately (python3-venv).
    if ! py=$(python_for_venv) || ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    if ((${#missing[@]} == 0)); then
        log "apt: all present, skipped"
        return
    fi
    log "apt: missing ${missing[*]}: installing"
    apt-get update -q || apt-get update -q
    # The image's apt clean-up hook can delete downloaded .deb files in the middle of an
    # install ("cannot access archive"): a second run of the same command then succeeds.
    apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}" ||
        apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
    for b in mariadbd redis-server redis-cli promtool amtool curl wrk debootstrap \
        containerd runc ctr iptables nft gcc busybox; do
        command -v "$b" >/dev/null || die "$b still missing after apt-get install"
    done
    [[ -x /usr/lib/cni/bridge ]] || die "/usr/lib/cni/bridge still missing after apt-get install"
}

install_s3s_fs() {
    if [[ -x $S3S_FS_ROOT/bin/s3s-fs ]]; then
        log "s3s-fs $S3S_FS_VERSION: present, skipped"
        return
    fi
    if ! command -v cargo >/dev/null && [[ -f $HOME/.cargo/env ]]; then
        # shellcheck disable=SC1091
        source "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null || die "cargo not found: needed to build s3s-fs"
    log "s3s-fs $S3S_FS_VERSION: building with cargo install (about 2 minutes)"
    mkdir -p "$S3S_FS_ROOT"
    # --force: a tracking file from an interrupted or partly deleted install could otherwise
    # make cargo say "already installed" without the binary.
    cargo install "s3s-fs@$S3S_FS_VERSION" --locked --features binary --force --root "$S3S_FS_ROOT"
    [[ -x $S3S_FS_ROOT/bin/s3s-fs ]] || die "cargo install did not produce $S3S_FS_ROOT/bin/s3s-fs"
}

schemathesis_installed_version() {
    "$SCHEMATHESIS_VENV/bin/python" -c \
        'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null
}

install_schemathesis() {
    if [[ "$(schemathesis_installed_version || true)" == "$SCHEMATHESIS_VERSION" ]] &&
        [[ -x $SCHEMATHESIS_VENV/bin/schemathesis ]]; then
        log "schemathesis $SCHEMATHESIS_VERSION: present, skipped"
        return
    fi
    log "schemathesis $SCHEMATHESIS_VERSION: installing into $SCHEMATHESIS_VENV"
    rm -rf "$SCHEMATHESIS_VENV" # a half-made or other-version venv: start clean
    mkdir -p "$SNS_TOOLS_DIR"
    "$(python_for_venv)" -m venv "$SCHEMATHESIS_VENV"
    "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION"
    [[ "$(schemathesis_installed_version)" == "$SCHEMATHESIS_VERSION" ]] ||
        die "schemathesis $SCHEMATHESIS_VERSION not importable after pip install"
}

total_start=$SECONDS
step apt install_apt
step s3s-fs install_s3s_fs
step schemathesis install_schemathesis
# etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok and helm from Go modules
# (about 20 minutes cold on 2 cores; cached afterwards): only the full test run needs them.
if [[ "${1:-}" == "--with-control-plane" ]]; then
    step control-plane bash "$(dirname "${BASH_SOURCE[0]}")/../tests/env/build-control-plane.sh"
fi
log "all tools ready in $((SECONDS - total_start)) s (SNS_TOOLS_DIR=$SNS_TOOLS_DIR)"
