#!/usr/bin/env bash
# Every check and every test, against real services started for this run and stopped after:
#   formatting, clippy (warnings are errors), rustdoc, the CRD drift check, then `cargo test` for the whole workspace
#   with MariaDB (primary + 2 GTID replicas), Redis (standalone + 6-node cluster), s3s-fs and
#   schemathesis (tests/env/testenv.sh), and a Kubernetes control plane with KWOK nodes
#   (tests/env/control-plane.sh); the README walkthrough; then the end-to-end suite
#   (tests/e2e) on a real one-node Kubernetes (tests/env/node.sh) with the images of
#   tests/env/build-images.sh. Tools are installed by .ci/install-tools.sh when missing.
# Each part's duration is printed as it ends, and all of them at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export SNS_TOOLS_DIR="${SNS_TOOLS_DIR:-$HOME/.cache/sns-platform}"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# section NAME: ends the part that ran before (printing how long it took) and starts NAME.
DURATIONS=()
section_name=
section_start=$SECONDS
run_start=$SECONDS
end_section() {
    if [[ -n $section_name ]]; then
        local took=$((SECONDS - section_start))
        DURATIONS+=("$(printf '%-70s %4d:%02d' "$section_name" $((took / 60)) $((took % 60)))")
        printf '=== %s: %d s\n' "$section_name" "$took"
    fi
    section_name=
}
section() {
    end_section
    section_name=$*
    section_start=$SECONDS
    printf '\n=== %s (%s)\n' "$*" "$(date +%T)"
}
print_durations() {
    end_section
    printf '\n=== durations (min:s)\n'
    printf '%s\n' "${DURATIONS[@]}"
    printf '%-70s %4d:%02d\n' "all" $(((SECONDS - run_start) / 60)) $(((SECONDS - run_start) % 60))
}

section "tools (.ci/install-tools.sh)"
bash .ci/install-tools.sh --with-control-plane

section "cargo fmt --check"
cargo fmt --all --check

section "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

section "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

section "CRD drift (crds/ must be crdgen's output; the chart's copy and manifests/install.yaml follow)"
cargo run --quiet --locked -p sns-operator --bin crdgen |
    diff -u crds/snsclusters.sns-platform.dev.yaml - ||
    { echo "crds/ is stale: cargo run -p sns-operator --bin crdgen > crds/snsclusters.sns-platform.dev.yaml"; exit 1; }
# The chart ships its own copy of the CRD (Helm installs charts/sns-operator/crds/ first).
diff -u crds/snsclusters.sns-platform.dev.yaml charts/sns-operator/crds/snsclusters.sns-platform.dev.yaml ||
    { echo "the chart's CRD is stale: cp crds/snsclusters.sns-platform.dev.yaml charts/sns-operator/crds/"; exit 1; }
# manifests/install.yaml is the chart rendered with its defaults (helm from install-tools.sh).
bash charts/render-install.sh - | diff -u manifests/install.yaml - ||
    { echo "manifests/install.yaml is stale: bash charts/render-install.sh"; exit 1; }

section "test services"
env_dir=$(mktemp -d "${TMPDIR:-/tmp}/sns-testenv.XXXXXX")
cp_dir=$(mktemp -d "${TMPDIR:-/tmp}/sns-k8s.XXXXXX")
node_dir=
services_up=1
stop_services() {
    ((services_up)) || return 0
    services_up=0
    bash tests/env/control-plane.sh stop "$cp_dir" || true
    # The fault tests start services of their own and stop them when done; a test process
    # that died before that leaves them behind.
    local leftover
    for leftover in /tmp/sns-fault-*; do
        [[ -d $leftover ]] && { bash tests/env/testenv.sh stop "$leftover" || true; }
    done
    bash tests/env/testenv.sh stop "$env_dir"
}
stop_all() {
    local rc=$?
    stop_services
    [[ -n $node_dir ]] && { bash tests/env/node.sh stop "$node_dir" || true; }
    print_durations
    exit "$rc"
}
trap stop_all EXIT
bash tests/env/testenv.sh start "$env_dir" >/dev/null
# KWOK's fake volume provisioner binds the MySQL and Redis volumes.
SNS_K8S_KWOK_VOLUMES=1 bash tests/env/control-plane.sh start "$cp_dir" >/dev/null
# shellcheck disable=SC1091
source "$env_dir/env"
# shellcheck disable=SC1091
source "$cp_dir/env"
export SNS_SCHEMATHESIS="${SNS_SCHEMATHESIS:-$SNS_TOOLS_DIR/venv-schemathesis/bin/schemathesis}"

section "cargo test"
cargo test --workspace --locked --exclude sns-e2e

section "README walkthrough (the first command and the walkthrough, as written)"
bash tests/readme-walkthrough.sh

# The real node runs beside nothing else: the services and the KWOK control plane go first.
section "images for the real node (tests/env/build-images.sh)"
stop_services
images=$(bash tests/env/build-images.sh)

section "real node (tests/env/node.sh start, image import)"
node_dir=$(mktemp -d "${TMPDIR:-/tmp}/sns-node.XXXXXX")
node_env=$(bash tests/env/node.sh start "$node_dir")
# shellcheck disable=SC2086 # one archive path per word
bash tests/env/node.sh import "$node_dir" $images
# shellcheck disable=SC1090
source "$node_env"

section "real node smoke checks (tests/env/node-smoke.sh: DNS, Services, volumes, exec, logs)"
bash tests/env/node-smoke.sh "$node_dir"

section "end-to-end suite on the real node (cargo test -p sns-e2e)"
cargo test --locked -p sns-e2e -- --nocapture

section "stop the real node"
bash tests/env/node.sh stop "$node_dir"
node_dir=
