#!/usr/bin/env bash
# SCIM compliance: the independent suite scim2-tester (PyPI, unmodified, run by `scim2 test` from
# scim2-cli) against a fresh `licensd serve` on SQLite and then on PostgreSQL. For each database
# it starts the built binary (target/debug/licensd, built if missing) on a free port with a fresh
# database, a random bootstrap token (LICENSD_BOOTSTRAP_TOKEN) sent as `Authorization: Bearer`,
# and rate limiting off (the suite sends bursts no identity provider sends), runs the suite and
# fails unless every check succeeds (`scim2 test` exits 1 on any failure or skipped check).
#
# Environment: SCIM_VENV (default target/scim-venv), LICENSD_BINARY (default target/debug/licensd),
# PYTHON (default python3), LICENSD_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test;
# a fresh database is created next to it and dropped afterwards), SCIM_DATABASES (default
# "sqlite postgres"). Without a reachable PostgreSQL the PostgreSQL run is skipped unless
# LICENSD_REQUIRE_POSTGRES=1 (as in CI), which fails instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib/licensd.sh
. tests/lib/licensd.sh
root="$(pwd)"
python="${PYTHON:-python3}"
venv="${SCIM_VENV:-$root/target/scim-venv}"
binary="${LICENSD_BINARY:-$root/target/debug/licensd}"
postgres_url="${LICENSD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
databases="${SCIM_DATABASES:-sqlite postgres}"

if [ ! -x "$binary" ]; then
  cargo build -p licensd
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/scim/requirements.txt

work="$(mktemp -d)"
server=""
dropped_database=""
cleanup() {
  stop_licensd "$server"
  if [ -n "$dropped_database" ]; then
    psql "$postgres_url" -q -c "DROP DATABASE IF EXISTS $dropped_database" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# Runs the suite against a server on database URL $1 (label $2).
run_suite() {
  local database_url="$1" label="$2"
  local log="$work/licensd-$label.log"
  local token
  token="$(new_licensd_token)"
  printf 'rate-limit-per-second = 0\n' >"$work/licensd.toml"
  LICENSD_BOOTSTRAP_TOKEN="$token" "$binary" serve --config "$work/licensd.toml" \
    --database-url "$database_url" --listen 127.0.0.1:0 >"$log" 2>&1 &
  server=$!
  local address
  address="$(wait_for_licensd "$server" "$log" "$label")" || exit 1
  echo "== scim2-tester against http://$address/scim/v2 ($label)"
  local output="$work/scim2-$label.txt"
  local status=0
  SCIM_CLI_HEADERS="Authorization: Bearer $token" \
    "$venv/bin/scim2" --url "http://$address/scim/v2" test >"$output" 2>&1 || status=$?
  local successes failures
  successes="$(grep -c '^SUCCESS' "$output" || true)"
  failures="$(grep -cE '^(ERROR|CRITICAL|SKIPPED|DEVIATION|ACCEPTABLE|COMPLIANT)' "$output" || true)"
  echo "== $label: $successes checks succeeded, $failures did not (scim2 exit status $status)"
  if [ "$status" -ne 0 ] || [ "$successes" -eq 0 ]; then
    grep -vE '^SUCCESS' "$output" | grep -B1 -A6 -E '^(ERROR|CRITICAL|SKIPPED|DEVIATION)' >&2 || cat "$output" >&2
    echo "== licensd log ($label)" >&2
    tail -n 100 "$log" >&2
    exit 1
  fi
  stop_licensd "$server"
  server=""
}

for database in $databases; do
  case "$database" in
    sqlite)
      run_suite "sqlite://$work/licensd.db" sqlite
      ;;
    postgres)
      if ! psql "$postgres_url" -q -c "SELECT 1" >/dev/null 2>&1; then
        if [ "${LICENSD_REQUIRE_POSTGRES:-0}" = "1" ]; then
          echo "PostgreSQL at $postgres_url does not answer" >&2
          exit 1
        fi
        echo "== PostgreSQL at $postgres_url does not answer: skipping the PostgreSQL run"
        continue
      fi
      name="licensd_scim_$(random_hex 6)"
      psql "$postgres_url" -q -c "CREATE DATABASE $name" >/dev/null
      dropped_database="$name"
      run_suite "${postgres_url%/*}/$name" postgres
      psql "$postgres_url" -q -c "DROP DATABASE IF EXISTS $name" >/dev/null
      dropped_database=""
      ;;
    *)
      echo "unknown database '$database' in SCIM_DATABASES" >&2
      exit 2
      ;;
  esac
done
