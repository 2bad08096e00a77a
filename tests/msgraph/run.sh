#!/usr/bin/env bash
# Client compatibility suite: Microsoft's msgraph-sdk (from PyPI, unmodified) against a fresh
# `licensd serve` on a temporary SQLite database and a free port. Creates (or reuses) a virtualenv
# with the pinned requirements, starts the built binary (target/debug/licensd, built if missing),
# seeds the seed's products through /licensd/v1, runs pytest, then restarts the server on the same
# database and runs test_after_restart.py (a deltaLink saved before the restart must still work),
# and stops the server.
#
# Environment: MSGRAPH_VENV (default target/msgraph-venv), LICENSD_BINARY (default
# target/debug/licensd), PYTHON (default python3). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib/licensd.sh
. tests/lib/licensd.sh
root="$(pwd)"
python="${PYTHON:-python3}"
venv="${MSGRAPH_VENV:-$root/target/msgraph-venv}"
binary="${LICENSD_BINARY:-$root/target/debug/licensd}"

if [ ! -x "$binary" ]; then
  cargo build -p licensd
fi

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/msgraph/requirements.txt

work="$(mktemp -d)"
log="$work/licensd.log"
# A Global Administrator token chosen here (licensd's format: lsd_<32 hex>_<64 hex>), given to the
# server as its bootstrap token and to the tests.
LICENSD_TOKEN="$(new_licensd_token)"
export LICENSD_TOKEN
server=""
# Starts the server on the suite's database (again after a restart) and sets LICENSD_URL.
start_server() {
  : >"$log"
  LICENSD_BOOTSTRAP_TOKEN="$LICENSD_TOKEN" "$binary" serve --database-url "sqlite://$work/licensd.db" --listen 127.0.0.1:0 >"$log" 2>&1 &
  server=$!
  address="$(wait_for_licensd "$server" "$log")" || exit 1
  export LICENSD_URL="http://$address"
}
stop_server() {
  stop_licensd "$server"
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

start_server
echo "== msgraph-sdk suite against $LICENSD_URL"

cd tests/msgraph
export PYTHONDONTWRITEBYTECODE=1
"$venv/bin/python" seed.py
# test_sync.py saves a deltaLink here; test_after_restart.py reads it after the restart below.
export LICENSD_RESTART_STATE="$work/restart.json"
if ! "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"; then
  echo "== licensd log" >&2
  tail -n 200 "$log" >&2
  exit 1
fi

if [ -s "$LICENSD_RESTART_STATE" ]; then
  echo "== restarting licensd on the same database: delta tokens survive"
  stop_server
  start_server
  if ! LICENSD_AFTER_RESTART=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider test_after_restart.py; then
    echo "== licensd log" >&2
    tail -n 200 "$log" >&2
    exit 1
  fi
fi
