#!/usr/bin/env bash
# Every check and every test, against real services started for this run and stopped after:
#   formatting, clippy (warnings are errors), rustdoc, the CRD drift check, then `cargo test` for the whole workspace
#   with MariaDB (primary + 2 GTID replicas), Redis (standalone + 6-node cluster), s3s-fs and
#   schemathesis (tests/env/testenv.sh), and a Kubernetes control plane with KWOK nodes
#   (tests/env/control-plane.sh); tools are installed by .ci/install-tools.sh when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export SNS_TOOLS_DIR="${SNS_TOOLS_DIR:-$HOME/.cache/sns-platform}"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
bash .ci/install-tools.sh --with-control-plane

section() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

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
stop_services() {
    bash tests/env/control-plane.sh stop "$cp_dir" || true
    # The fault tests start services of their own and stop them when done; a test process
    # that died before that leaves them behind.
    local leftover
    for leftover in /tmp/sns-fault-*; do
        [[ -d $leftover ]] && { bash tests/env/testenv.sh stop "$leftover" || true; }
    done
    bash tests/env/testenv.sh stop "$env_dir"
}
trap stop_services EXIT
bash tests/env/testenv.sh start "$env_dir" >/dev/null
# KWOK's fake volume provisioner binds the MySQL and Redis volumes.
SNS_K8S_KWOK_VOLUMES=1 bash tests/env/control-plane.sh start "$cp_dir" >/dev/null
# shellcheck disable=SC1091
source "$env_dir/env"
# shellcheck disable=SC1091
source "$cp_dir/env"
export SNS_SCHEMATHESIS="${SNS_SCHEMATHESIS:-$SNS_TOOLS_DIR/venv-schemathesis/bin/schemathesis}"

section "cargo test"
cargo test --workspace --locked

section "README walkthrough (the first command and the walkthrough, as written)"
bash tests/readme-walkthrough.sh
