#!/usr/bin/env bash
# Build the container images the end-to-end suite runs on a real one-node Kubernetes
# (containerd), without Docker and without a registry, as OCI image archives:
#
#   ${SNS_TOOLS_DIR:-~/.cache/sns-platform}/
#     images/base-<key>/rootfs   ONE Debian bookworm root (debootstrap --variant=minbase) with
#                                MariaDB, Redis, Prometheus, Alertmanager, both exporters, curl,
#                                bash, gosu...: every server image's one big shared layer
#                                (layer.tar), and appbase.tar (its glibc, libgcc, CA
#                                certificates and time zones: the apps' distroless-like base)
#     orchestrator-<sha>/        Orchestrator built from ../shared/vendor/orchestrator (beside the clone)
#     images/sns-servers-<key>.tar  the server images below, the base layer stored once
#     images/sns-apps-<key>.tar     sns-api and sns-operator from this workspace's debug build
#
# Prints the archive paths on stdout, one per line, for `ctr -n k8s.io images import`;
# everything else (progress, how long each part took) goes to stderr. Everything is keyed by
# what it is made of (package list, sources, binaries' hashes), so a second run only rebuilds
# the workspace's binaries (cargo, incremental) and takes seconds when they did not change.
#
# Images (run them with imagePullPolicy: Never or IfNotPresent), each with the upstream
# image's entrypoint, user, working directory and ports:
#   localhost/mariadb:10.11        like the official mariadb:10.11 (Debian's 10.11):
#                                  docker-entrypoint.sh + healthcheck.sh (tests/env/images/
#                                  mariadb), root dropping to mysql; 3306; mariadb-backup
#                                  and socat, which the official image ships too (for
#                                  Galera's state transfers; the operator's clone donor)
#   localhost/redis:7.0            like redis:7.0 (Debian's 7.0; protected mode off unless
#                                  configured, as in the official build); /data; 6379
#   localhost/orchestrator:3.2.6   like openarkcode/orchestrator: /usr/local/orchestrator
#                                  (binary + resources/), /entrypoint.sh; 3000, 10008
#   localhost/prometheus:v2        /bin/prometheus, nobody, /prometheus; 9090 (Debian's 2.42)
#   localhost/alertmanager:v0      /bin/alertmanager, nobody, /alertmanager; 9093 (0.25)
#   localhost/mysqld-exporter:v0   /bin/mysqld_exporter, nobody; 9104 (Debian's 0.14, taking
#                                  0.15's --mysqld.address/--mysqld.username, see
#                                  tests/env/images/mysqld-exporter)
#   localhost/redis-exporter:v1    /redis_exporter, 59000; 9121 (Debian's 1.45)
#   localhost/sns-api:dev          /usr/local/bin/sns-api, 65532 (as api-server/Dockerfile)
#   localhost/sns-operator:dev     /usr/local/bin/sns-operator run, 65532 (operator/Dockerfile)
# No ProxySQL and no Grafana: neither is obtainable here.
#
# Needs root (debootstrap), debootstrap (.ci/install-tools.sh installs it), python3,
# go and gcc (Orchestrator uses cgo for SQLite), cargo, objcopy. Cold: a few minutes
# (debootstrap ~2.5 min, Orchestrator ~100 s, the workspace's debug build); warm: seconds.
#
# Environment: SNS_TOOLS_DIR; SNS_DEBIAN_MIRROR (default: the bookworm mirror of
# /etc/apt/sources.list.d); SNS_IMAGES_SKIP_APPS=1 skips sns-api/sns-operator (no cargo);
# SNS_BUILD_NICE / SNS_BUILD_GOMAXPROCS as for build-control-plane.sh.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SNS_TOOLS_DIR="${SNS_TOOLS_DIR:-$HOME/.cache/sns-platform}"
IMAGES="$SNS_TOOLS_DIR/images"
WRITER="$HERE/oci-image.py"
IMAGE_FILES="$HERE/images" # entrypoints and configuration of the images, by image
ORCHESTRATOR_SRC="${SNS_ORCHESTRATOR_SRC:-$REPO/../shared/vendor/orchestrator}" # shared/ lies beside the clone
ORCHESTRATOR_VERSION=3.2.6
NICE="${SNS_BUILD_NICE:-19}"
BUILD_GOMAXPROCS="${SNS_BUILD_GOMAXPROCS:-2}"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

SUITE=bookworm
# What the base root is made of. Bump BASE_REVISION when the way it is made changes (the
# package list is part of the key by itself).
BASE_REVISION=1
BASE_PACKAGES=(mariadb-server mariadb-client mariadb-backup socat redis-server redis-tools prometheus
    prometheus-alertmanager prometheus-mysqld-exporter prometheus-redis-exporter
    curl bash procps ca-certificates iproute2 netcat-openbsd tzdata gosu xz-utils)
# Bump when the server or app layers are made differently (their files are keyed already).
LAYERS_REVISION=1

log() { printf '[build-images %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# step NAME FUNCTION ARGS...: run it and say how long it took.
step() {
    local name=$1 start_us elapsed_ms
    shift
    start_us=${EPOCHREALTIME/./}
    "$@"
    elapsed_ms=$(((${EPOCHREALTIME/./} - start_us) / 1000))
    log "$(printf '%-13s done in %d.%01d s' "$name" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)))"
}

sha256_of_string() { printf '%s' "$1" | sha256sum | cut -c1-64; }
sha256_of_file() { sha256sum "$1" | cut -c1-64; }

# The hash of a directory tree: names, modes, symlink targets and contents of every entry.
sha256_of_tree() {
    (
        cd "$1"
        find . -printf '%p %m %y %l\n' | LC_ALL=C sort
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
    ) | sha256sum | cut -c1-64
}

# The Debian mirror apt uses here for bookworm (first deb entry of the suite with main).
debian_mirror() {
    if [[ -n ${SNS_DEBIAN_MIRROR:-} ]]; then
        echo "$SNS_DEBIAN_MIRROR"
        return
    fi
    python3 - "$SUITE" <<'PY'
import glob, re, sys
suite = sys.argv[1]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*")) + ["/etc/apt/sources.list"]:
    try:
        text = open(path).read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[0].isspace():
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
            if ("deb" in fields.get("types", []) and suite in fields.get("suites", [])
                    and "main" in fields.get("components", []) and fields.get("uris")):
                print(fields["uris"][0])
                sys.exit(0)
    elif path.endswith(".list"):
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 4 and words[0] == "deb" and words[2] == suite and "main" in words[3:]:
                print(words[1])
                sys.exit(0)
sys.exit("no deb entry for " + suite + " main in /etc/apt/sources.list*")
PY
}

# ---------------------------------------------------------------------------------------
# The base root: debootstrap, then apt caches, docs, man pages, logs and the data the
# packages' scripts made (MariaDB's data directory) removed.

BASE_DIR= # set by build_base: $IMAGES/base-<key>

build_base() {
    local mirror key packages
    mirror=$(debian_mirror) || die "no Debian mirror found (set SNS_DEBIAN_MIRROR)"
    packages=$(printf '%s\n' "${BASE_PACKAGES[@]}" | LC_ALL=C sort | paste -sd, -)
    key=$(sha256_of_string "$BASE_REVISION $SUITE $mirror $packages" | cut -c1-16)
    BASE_DIR="$IMAGES/base-$key"
    if [[ -f $BASE_DIR/done ]]; then
        log "base: $BASE_DIR present, skipped"
        return
    fi
    command -v debootstrap >/dev/null || die "debootstrap missing: run .ci/install-tools.sh"
    ((EUID == 0)) || die "debootstrap needs root"
    log "base: debootstrap $SUITE from $mirror (about 2.5 minutes)"
    rm -rf "$BASE_DIR"
    mkdir -p "$BASE_DIR"
    local root=$BASE_DIR/rootfs
    if ! debootstrap --variant=minbase --components=main --include="$packages" \
        "$SUITE" "$root" "$mirror" >"$BASE_DIR/debootstrap.log" 2>&1; then
        tail -n 30 "$BASE_DIR/debootstrap.log" >&2
        die "debootstrap failed (log: $BASE_DIR/debootstrap.log)"
    fi
    clean_base "$root"
    printf '%s\n' "$SUITE $mirror" "$packages" >"$BASE_DIR/done"
    log "base: $(du -sh "$root" | cut -f1) in $root"
}

clean_base() {
    local root=$1
    # Package lists and caches, logs, backups of dpkg's state.
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
        "$root"/var/lib/dpkg/*-old "$root"/var/cache/ldconfig/* "$root"/var/log/* \
        "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.bash_history
    mkdir -p "$root"/var/lib/apt/lists/partial "$root"/var/cache/apt/archives/partial
    # Documentation (copyright files stay), man pages, info, translations.
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian \
        "$root"/usr/share/linda
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
    # Past releases of the time zone data of moment-timezone (Prometheus' classic web UI):
    # 210 MB the UI never loads (it uses the bundled .js files).
    rm -rf "$root/usr/share/javascript/moment-timezone/data"
    # The runtime gives every container its own /dev, /proc, /sys, hostname, hosts and DNS.
    rm -rf "${root:?}"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/*
    : >"$root/etc/resolv.conf"
    : >"$root/etc/hostname"
    # Kubernetes mounts its own /etc/hosts; outside it (chroot checks) localhost must resolve.
    printf '%s\n' '127.0.0.1 localhost' '::1 localhost ip6-localhost ip6-loopback' >"$root/etc/hosts"
    rm -f "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
    # MariaDB's package initialised a data directory: the image's entrypoint makes its own.
    rm -rf "${root:?}"/var/lib/mysql/*
    # Redis' package configuration binds to 127.0.0.1: the image's redis-server runs without
    # a configuration file unless given one, like the official image.
}

# The base root as a layer tar, written once: every server image's first layer.
BASE_LAYER=

build_base_layer() {
    BASE_LAYER=$BASE_DIR/layer.tar
    if [[ -f $BASE_LAYER && -s $BASE_LAYER.digest ]]; then
        log "base layer: present, skipped"
        return
    fi
    # The writer prints the layer's digest: the server archive's key includes it.
    python3 "$WRITER" layer "$BASE_LAYER.tmp" "$BASE_DIR/rootfs" >"$BASE_LAYER.digest"
    mv "$BASE_LAYER.tmp" "$BASE_LAYER"
    log "base layer: $(du -h "$BASE_LAYER" | cut -f1)"
}

# ---------------------------------------------------------------------------------------
# Orchestrator from the vendored source (Percona's maintained fork, v3.2.6 + fixes), with cgo
# for SQLite. Cached by the source tarball's hash.

ORCHESTRATOR_DIR= # orchestrator binary and resources/

build_orchestrator() {
    local tarballs=("$ORCHESTRATOR_SRC"/*.tar.gz) tarball sha recipe work
    if ((${#tarballs[@]} != 1)) || [[ ! -f ${tarballs[0]} ]]; then
        die "expected one source tarball in $ORCHESTRATOR_SRC"
    fi
    tarball=${tarballs[0]}
    [[ -f $ORCHESTRATOR_SRC/wrapper/go.mod ]] || die "$ORCHESTRATOR_SRC/wrapper/go.mod missing"
    sha=$(sha256_of_file "$tarball")
    recipe="$(sha256_of_file "$ORCHESTRATOR_SRC/wrapper/go.mod") $(sha256_of_file "$ORCHESTRATOR_SRC/wrapper/go.sum") -ldflags=-s -w -X main.AppVersion=$ORCHESTRATOR_VERSION"
    ORCHESTRATOR_DIR="$SNS_TOOLS_DIR/orchestrator-${sha:0:16}"
    if [[ -x $ORCHESTRATOR_DIR/orchestrator && -d $ORCHESTRATOR_DIR/resources &&
        "$(cat "$ORCHESTRATOR_DIR/recipe" 2>/dev/null)" == "$recipe" ]]; then
        log "orchestrator: $ORCHESTRATOR_DIR present, skipped"
        return
    fi
    command -v go >/dev/null || die "go not found: needed to build Orchestrator"
    command -v gcc >/dev/null || die "gcc not found: Orchestrator needs cgo (SQLite)"
    log "orchestrator: building $(basename "$tarball") (about 100 s cold)"
    mkdir -p "$SNS_TOOLS_DIR"
    work=$(mktemp -d "$SNS_TOOLS_DIR/orchestrator-build.XXXXXX")
    mkdir -p "$work/src"
    tar -xzf "$tarball" -C "$work/src"
    cp -r "$ORCHESTRATOR_SRC/wrapper" "$work/"
    if ! (cd "$work/wrapper" && GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local \
        GOMAXPROCS=$BUILD_GOMAXPROCS CGO_ENABLED=1 nice -n "$NICE" go build -trimpath \
        -ldflags "-s -w -X main.AppVersion=$ORCHESTRATOR_VERSION" -o ../orchestrator \
        github.com/openark/orchestrator/go/cmd/orchestrator) >"$work/build.log" 2>&1; then
        tail -n 30 "$work/build.log" >&2
        die "Orchestrator build failed (log: $work/build.log)"
    fi
    rm -rf "$ORCHESTRATOR_DIR"
    mkdir -p "$ORCHESTRATOR_DIR"
    mv "$work/orchestrator" "$ORCHESTRATOR_DIR/"
    cp -r "$work/src/resources" "$ORCHESTRATOR_DIR/"
    echo "$recipe" >"$ORCHESTRATOR_DIR/recipe"
    rm -rf "$work"
    log "orchestrator: $(du -h "$ORCHESTRATOR_DIR/orchestrator" | cut -f1) binary in $ORCHESTRATOR_DIR"
}

# ---------------------------------------------------------------------------------------
# The server images: one archive, the base layer stored once, a small layer per image.

# uid:gid of NAME in the base root's /etc/passwd.
base_ids() {
    awk -F: -v n="$1" '$1 == n { print $3 ":" $4; found = 1 } END { exit !found }' \
        "$BASE_DIR/rootfs/etc/passwd" || die "no user $1 in the base root"
}

# json_ids UID:GID -> [UID, GID]
json_ids() { echo "[${1%%:*}, ${1##*:}]"; }

# Prepares the small layers' files in $1 and writes the archive's SPEC.json there.
write_servers_spec() {
    local stage=$1 mysql redis nobody
    mysql=$(json_ids "$(base_ids mysql)")
    redis=$(json_ids "$(base_ids redis)")
    nobody=$(json_ids "$(base_ids nobody)")
    cp -r "$IMAGE_FILES"/. "$stage/"
    # Debian's server configuration, with bind-address commented out like the official
    # image does: the server listens on every address of the pod.
    sed -E 's/^(bind-address|log|user[[:space:]])/#&/' \
        "$BASE_DIR/rootfs/etc/mysql/mariadb.conf.d/50-server.cnf" >"$stage/mariadb/50-server.cnf"
    # And like the official image, /etc/mysql/conf.d (the documented mount point) is read
    # last, after mariadb.conf.d: its settings win over the packaged defaults.
    awk '/^!includedir \/etc\/mysql\/conf\.d\/?$/ { held = $0; next } { print }
        END { if (held) print held }' "$BASE_DIR/rootfs/etc/mysql/mariadb.cnf" >"$stage/mariadb/mariadb.cnf"
    grep -q '^!includedir /etc/mysql/conf.d' "$stage/mariadb/mariadb.cnf" ||
        die "no !includedir /etc/mysql/conf.d in the base root's mariadb.cnf"
    cat >"$stage/spec.json" <<EOF
{
  "layers": {
    "base": {"tar": "$BASE_LAYER"},
    "mariadb": {
      "files": {
        "/usr/local/bin/docker-entrypoint.sh": {"source": "mariadb/docker-entrypoint.sh", "mode": "0755"},
        "/usr/local/bin/healthcheck.sh": {"source": "mariadb/healthcheck.sh", "mode": "0755"},
        "/etc/mysql/mariadb.conf.d/05-docker.cnf": {"source": "mariadb/docker.cnf", "mode": "0644"},
        "/etc/mysql/mariadb.conf.d/50-server.cnf": {"source": "mariadb/50-server.cnf", "mode": "0644"},
        "/etc/mysql/mariadb.cnf": {"source": "mariadb/mariadb.cnf", "mode": "0644"}
      },
      "dirs": {
        "/docker-entrypoint-initdb.d": {"mode": "0755"},
        "/etc/mysql/conf.d": {"mode": "0755"},
        "/run/mysqld": {"mode": "1777", "owner": $mysql},
        "/var/lib/mysql": {"mode": "0755", "owner": $mysql}
      }
    },
    "redis": {
      "files": {
        "/usr/local/bin/docker-entrypoint.sh": {"source": "redis/docker-entrypoint.sh", "mode": "0755"},
        "/usr/local/bin/redis-server": {"source": "redis/redis-server", "mode": "0755"}
      },
      "dirs": {"/data": {"mode": "0755", "owner": $redis}}
    },
    "orchestrator-resources": {"dir": "$ORCHESTRATOR_DIR/resources",
                               "prefix": "/usr/local/orchestrator/resources", "owner": [0, 0]},
    "orchestrator": {
      "files": {
        "/usr/local/orchestrator/orchestrator": {"source": "$ORCHESTRATOR_DIR/orchestrator", "mode": "0755"},
        "/entrypoint.sh": {"source": "orchestrator/entrypoint.sh", "mode": "0755"}
      },
      "dirs": {"/var/lib/orchestrator": {"mode": "0755"}, "/run/orchestrator": {"mode": "0755"}}
    },
    "prometheus": {"dirs": {"/prometheus": {"mode": "0755", "owner": $nobody}}},
    "alertmanager": {
      "files": {"/etc/alertmanager/alertmanager.yml": {"source": "$BASE_DIR/rootfs/etc/prometheus/alertmanager.yml", "mode": "0644"}},
      "symlinks": {"/usr/bin/alertmanager": "prometheus-alertmanager"},
      "dirs": {"/alertmanager": {"mode": "0755", "owner": $nobody}}
    },
    "mysqld-exporter": {
      "files": {"/usr/bin/mysqld_exporter": {"source": "mysqld-exporter/mysqld_exporter", "mode": "0755"}}
    },
    "redis-exporter": {"symlinks": {"/redis_exporter": "/usr/bin/prometheus-redis-exporter"}}
  },
  "images": [
    {"ref": "localhost/mariadb:10.11", "layers": ["base", "mariadb"],
     "config": {"Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["mariadbd"],
                "Env": ["LANG=C.UTF-8"], "ExposedPorts": ["3306"], "StopSignal": "SIGTERM"}},
    {"ref": "localhost/redis:7.0", "layers": ["base", "redis"],
     "config": {"Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["redis-server"],
                "WorkingDir": "/data", "ExposedPorts": ["6379"]}},
    {"ref": "localhost/orchestrator:$ORCHESTRATOR_VERSION", "layers": ["base", "orchestrator-resources", "orchestrator"],
     "config": {"Cmd": ["/entrypoint.sh"], "WorkingDir": "/usr/local/orchestrator",
                "ExposedPorts": ["3000", "10008"]}},
    {"ref": "localhost/prometheus:v2", "layers": ["base", "prometheus"],
     "config": {"Entrypoint": ["/bin/prometheus"],
                "Cmd": ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"],
                "User": "65534:65534", "WorkingDir": "/prometheus", "ExposedPorts": ["9090"]}},
    {"ref": "localhost/alertmanager:v0", "layers": ["base", "alertmanager"],
     "config": {"Entrypoint": ["/bin/alertmanager"],
                "Cmd": ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
                "User": "65534:65534", "WorkingDir": "/alertmanager", "ExposedPorts": ["9093"]}},
    {"ref": "localhost/mysqld-exporter:v0", "layers": ["base", "mysqld-exporter"],
     "config": {"Entrypoint": ["/bin/mysqld_exporter"], "User": "65534:65534", "ExposedPorts": ["9104"]}},
    {"ref": "localhost/redis-exporter:v1", "layers": ["base", "redis-exporter"],
     "config": {"Entrypoint": ["/redis_exporter"], "User": "59000:59000", "ExposedPorts": ["9121"]}}
  ]
}
EOF
}

SERVERS_ARCHIVE=

build_servers() {
    local stage key
    mkdir -p "$IMAGES/tmp"
    stage=$(mktemp -d "$IMAGES/tmp/servers.XXXXXX")
    write_servers_spec "$stage"
    key=$(sha256_of_string "$LAYERS_REVISION $(cat "$BASE_LAYER.digest") $(sha256_of_tree "$stage") $(cat "$ORCHESTRATOR_DIR/recipe") $(sha256_of_file "$WRITER")" | cut -c1-16)
    SERVERS_ARCHIVE="$IMAGES/sns-servers-$key.tar"
    if [[ -f $SERVERS_ARCHIVE ]]; then
        rm -rf "$stage"
        log "servers: $SERVERS_ARCHIVE present, skipped"
        return
    fi
    python3 "$WRITER" build "$SERVERS_ARCHIVE.tmp" "$stage/spec.json" >&2
    mv "$SERVERS_ARCHIVE.tmp" "$SERVERS_ARCHIVE"
    rm -rf "$stage"
    prune sns-servers "$SERVERS_ARCHIVE"
    log "servers: $(du -h "$SERVERS_ARCHIVE" | cut -f1) in $SERVERS_ARCHIVE"
}

# prune PREFIX KEEP: remove the older archives PREFIX-*.tar other than KEEP.
prune() {
    local old
    for old in "$IMAGES/$1"-*.tar; do
        [[ $old == "$2" ]] || rm -f "$old"
    done
}

# ---------------------------------------------------------------------------------------
# sns-api and sns-operator: the workspace's debug build, stripped of debug info, on a small
# distroless-like base (glibc, libgcc, CA certificates, time zones, a nonroot user 65532)
# taken from the Debian root, like gcr.io/distroless/cc-debian12:nonroot.

APPBASE_LAYER=

build_appbase() {
    APPBASE_LAYER="$BASE_DIR/appbase.tar"
    if [[ -f $APPBASE_LAYER && -s $APPBASE_LAYER.digest ]]; then
        log "app base: present, skipped"
        return
    fi
    local stage
    mkdir -p "$IMAGES/tmp"
    stage=$(mktemp -d "$IMAGES/tmp/appbase.XXXXXX")
    python3 - "$BASE_DIR/rootfs" "$stage/root" <<'PY'
import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
merged = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
os.makedirs(dst)
for link, target in merged.items():
    os.symlink(target, os.path.join(dst, link))
def canonical(path):
    parts = path.strip("/").split("/", 1)
    if parts[0] in merged:
        parts[0] = merged[parts[0]]
    return "/".join(parts)
paths = []
for pkg in ("libc6:amd64", "libgcc-s1:amd64", "tzdata", "ca-certificates"):
    with open(os.path.join(src, "var/lib/dpkg/info", pkg + ".list")) as f:
        paths += [line.rstrip("\n") for line in f if line.strip() not in ("", "/.")]
paths += ["/etc/ssl/certs/ca-certificates.crt", "/etc/nsswitch.conf", "/etc/os-release",
          "/usr/lib/os-release", "/etc/ld.so.conf", "/etc/ld.so.conf.d"]
for path in sorted(set(paths)):
    rel = canonical(path)
    s, d = os.path.join(src, rel), os.path.join(dst, rel)
    if not os.path.lexists(s) or rel.startswith("usr/share/doc"):
        continue
    os.makedirs(os.path.dirname(d), exist_ok=True)
    if os.path.isdir(s) and not os.path.islink(s):
        os.makedirs(d, exist_ok=True)
        shutil.copystat(s, d)
    elif not os.path.lexists(d):
        shutil.copy2(s, d, follow_symlinks=False)
PY
    local root=$stage/root
    mkdir -p "$root/tmp" "$root/home/nonroot" "$root/etc"
    chmod 1777 "$root/tmp"
    chmod 0700 "$root/home/nonroot"
    chown 65532:65532 "$root/home/nonroot"
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
        'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$root/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$root/etc/group"
    python3 "$WRITER" layer "$APPBASE_LAYER.tmp" "$root" >"$APPBASE_LAYER.digest"
    mv "$APPBASE_LAYER.tmp" "$APPBASE_LAYER"
    rm -rf "$stage"
    log "app base: $(du -h "$APPBASE_LAYER" | cut -f1)"
}

cargo_build() {
    if ! command -v cargo >/dev/null && [[ -f $HOME/.cargo/env ]]; then
        # shellcheck disable=SC1091
        source "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null || die "cargo not found: needed for sns-api and sns-operator"
    (cd "$REPO" && cargo build --locked -p sns-api -p sns-operator --bins) >&2
}

APPS_ARCHIVE=

build_apps() {
    local target api operator key stage
    target=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') ||
        target=$REPO/target
    api=$target/debug/sns-api
    operator=$target/debug/sns-operator
    [[ -x $api && -x $operator ]] || die "no debug build of sns-api and sns-operator in $target"
    key=$(sha256_of_string "$LAYERS_REVISION $(cat "$APPBASE_LAYER.digest") $(sha256_of_file "$api") $(sha256_of_file "$operator") $(sha256_of_file "$WRITER")" | cut -c1-16)
    APPS_ARCHIVE="$IMAGES/sns-apps-$key.tar"
    if [[ -f $APPS_ARCHIVE ]]; then
        log "apps: $APPS_ARCHIVE present, skipped"
        return
    fi
    mkdir -p "$IMAGES/tmp"
    stage=$(mktemp -d "$IMAGES/tmp/apps.XXXXXX")
    objcopy --strip-debug "$api" "$stage/sns-api"
    objcopy --strip-debug "$operator" "$stage/sns-operator"
    cat >"$stage/spec.json" <<EOF
{
  "layers": {
    "appbase": {"tar": "$APPBASE_LAYER"},
    "api": {"files": {"/usr/local/bin/sns-api": {"source": "sns-api", "mode": "0755"}}},
    "operator": {"files": {"/usr/local/bin/sns-operator": {"source": "sns-operator", "mode": "0755"}}}
  },
  "images": [
    {"ref": "localhost/sns-api:dev", "layers": ["appbase", "api"],
     "config": {"Entrypoint": ["/usr/local/bin/sns-api"],
                "Env": ["API_LISTEN=0.0.0.0:8080", "API_LOG_FORMAT=json", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
                "User": "65532:65532", "WorkingDir": "/home/nonroot", "ExposedPorts": ["8080"]}},
    {"ref": "localhost/sns-operator:dev", "layers": ["appbase", "operator"],
     "config": {"Entrypoint": ["/usr/local/bin/sns-operator", "run"],
                "Env": ["OPERATOR_LOG_FORMAT=json", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
                "User": "65532:65532", "WorkingDir": "/home/nonroot"}}
  ]
}
EOF
    python3 "$WRITER" build "$APPS_ARCHIVE.tmp" "$stage/spec.json" >&2
    mv "$APPS_ARCHIVE.tmp" "$APPS_ARCHIVE"
    rm -rf "$stage"
    prune sns-apps "$APPS_ARCHIVE"
    log "apps: $(du -h "$APPS_ARCHIVE" | cut -f1) in $APPS_ARCHIVE"
}

# ---------------------------------------------------------------------------------------

main() {
    [[ -f $WRITER ]] || die "$WRITER missing (the OCI archive writer)"
    mkdir -p "$IMAGES"
    exec 8>"$IMAGES/.lock"
    flock -w 1800 8 || die "another build-images.sh holds $IMAGES/.lock"
    rm -rf "$IMAGES/tmp"
    local total_start=$SECONDS archives=()
    step base build_base
    step base-layer build_base_layer
    step orchestrator build_orchestrator
    step servers build_servers
    archives+=("$SERVERS_ARCHIVE")
    if [[ -z ${SNS_IMAGES_SKIP_APPS:-} ]]; then
        step cargo cargo_build
        step app-base build_appbase
        step apps build_apps
        archives+=("$APPS_ARCHIVE")
    fi
    rmdir "$IMAGES/tmp" 2>/dev/null || true
    log "all images ready in $((SECONDS - total_start)) s"
    printf '%s\n' "${archives[@]}"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
