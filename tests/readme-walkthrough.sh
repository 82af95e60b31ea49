#!/usr/bin/env bash
# Runs the README's first command and its walkthrough exactly as written, the way a newcomer
# would: the command marked `readme-check: serve` starts the API on its embedded default, then
# every block marked `readme-check: walkthrough` runs in one bash session (`set -e`), and each
# block's expected output lines (comment lines `# => text`) must appear in what it printed.
#
# The server runs from target/readme-walkthrough/ (inside the workspace, so `cargo run` finds
# it, and outside the sources, so its sns-data/ directory starts empty every run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

# The fenced block that follows each `<!-- readme-check: KIND -->` line.
blocks() {
    awk -v kind="$1" '
        $0 ~ "<!-- readme-check: " kind " -->" { armed = 1; next }
        armed && /^```/ { if (inside) { inside = 0; armed = 0; print "" } else { inside = 1 }; next }
        inside { print }
    ' README.md
}

serve=$(blocks serve)
walkthrough=$(blocks walkthrough)
[[ -n $serve ]] || { echo "README.md has no readme-check: serve block"; exit 1; }
[[ -n $walkthrough ]] || { echo "README.md has no readme-check: walkthrough block"; exit 1; }
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
    echo "port 8080 is in use: the README's API address must be free for this check"
    exit 1
fi

work=$repo/target/readme-walkthrough
rm -rf "$work"
mkdir -p "$work"
cd "$work"
# Build first so the wait below measures the start, not the compile.
cargo build --quiet --locked -p sns-api
server_log=$work/server.log
echo "\$ $serve"
# A session of its own, so stopping it stops `cargo run`'s child too.
setsid bash -c "$serve" >"$server_log" 2>&1 &
server=$!
stop() {
    kill -INT -- "-$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 1 300); do
    curl -fsS http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$server_log"; echo "the server exited"; exit 1; }
    sleep 0.2
done
curl -fsS http://127.0.0.1:8080/readyz >/dev/null || { cat "$server_log"; echo "not ready"; exit 1; }
grep -q "http://127.0.0.1:8080" "$server_log" ||
    { cat "$server_log"; echo "the server did not print its URL"; exit 1; }

output=$work/walkthrough.out
if ! (cd "$work" && bash -euo pipefail -c "$walkthrough") >"$output" 2>&1; then
    cat "$output"
    echo "--- server log"
    tail -50 "$server_log"
    echo "the README walkthrough failed"
    exit 1
fi
cat "$output"
missing=0
while IFS= read -r expected; do
    if ! grep -qF -- "$expected" "$output"; then
        echo "expected output not found: $expected"
        missing=1
    fi
done < <(printf '%s\n' "$walkthrough" | sed -n 's/^# => //p')
[[ $missing == 0 ]] || exit 1
echo "README walkthrough: ok"
