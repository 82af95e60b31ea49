#!/usr/bin/env bash
# Runs the benchmark harness against real services started for the run (not part of the test
# suite: figures are printed, never asserted). Usage: tests/bench.sh [extra cargo bench args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
bash .ci/install-tools.sh
env_dir=$(mktemp -d "${TMPDIR:-/tmp}/sns-bench.XXXXXX")
trap 'bash tests/env/testenv.sh stop "$env_dir"' EXIT
bash tests/env/testenv.sh start "$env_dir" >/dev/null
# shellcheck disable=SC1091
source "$env_dir/env"
cargo bench --locked -p sns-api --bench feed "$@"
