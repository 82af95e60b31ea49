#!/usr/bin/env bash
# Runs the API for local use: starts the local services (once; they keep running between
# runs) in ${SNS_DEV_DIR:-/tmp/sns-dev}, creates the `sns` database, then serves the API on
# http://127.0.0.1:8080 until Ctrl-C. `tests/env/testenv.sh stop /tmp/sns-dev` stops the services.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

dev_dir="${SNS_DEV_DIR:-${TMPDIR:-/tmp}/sns-dev}"
bash .ci/install-tools.sh
if ! bash tests/env/testenv.sh status "$dev_dir" >/dev/null 2>&1; then
    # A directory from an earlier run whose services are gone: clear it before starting.
    if [[ -d $dev_dir ]]; then
        bash tests/env/testenv.sh stop "$dev_dir" >/dev/null 2>&1 || true
    fi
    bash tests/env/testenv.sh start "$dev_dir" >/dev/null
fi
# shellcheck disable=SC1091
source "$dev_dir/env"
mariadb --no-defaults --socket="$SNS_TEST_MYSQL_SOCKET_DIR/n1.sock" -u root \
    -e "CREATE DATABASE IF NOT EXISTS sns CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"

export API_DATABASE_URL="${API_DATABASE_URL:-$SNS_TEST_MYSQL_URL/sns}"
export API_REDIS_URL="${API_REDIS_URL:-$SNS_TEST_REDIS_URL}"
export API_S3_ENDPOINT="${API_S3_ENDPOINT:-$SNS_TEST_S3_ENDPOINT}"
export API_S3_BUCKET="${API_S3_BUCKET:-$SNS_TEST_S3_BUCKET}"
export API_S3_ACCESS_KEY_ID="${API_S3_ACCESS_KEY_ID:-$SNS_TEST_S3_ACCESS_KEY}"
export API_S3_SECRET_ACCESS_KEY="${API_S3_SECRET_ACCESS_KEY:-$SNS_TEST_S3_SECRET_KEY}"
export API_LISTEN="${API_LISTEN:-127.0.0.1:8080}"
# A fixed local key, so tokens survive restarts of this development server.
export API_JWT_SECRET="${API_JWT_SECRET:-local-development-only}"
echo "sns-api: http://$API_LISTEN/api/v1 (OpenAPI: http://$API_LISTEN/openapi.json)"
exec cargo run --quiet --locked -p sns-api --bin sns-api
