#!/usr/bin/env bash
# The console's Advisor page at scale (issue 18): a `licensd gen` tenant of 100,000 users (a group
# per 20 users, 50 products, as the HTTP benches generate), served by `licensd serve` on SQLite,
# evaluated to the end, then each page fetched RUNS times with curl: the Advisor as it is served
# (`/advisor`, 25 findings per list and page) and with every finding on one page
# (`/advisor?per_page=5000`, what the page rendered before it was paged), and right after a
# write (the runtime's cached report is computed again: the cost of every view before the
# cache), next to references measured in the same run: `GET /healthz` (the HTTP floor) and the
# overview page `/`. Then a user's pages for a user in error: Diagnosis (every fix predicted) and
# the user page.
# Prints the median time and the bytes of each. Bounded: the tenant's evaluation takes most of it.
#
# Environment: LICENSD_BINARY (default target/release/licensd, built with cargo unless given),
# LICENSD_BENCH_USERS (default 100000), RUNS (default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib/licensd.sh
. tests/lib/licensd.sh
binary="${LICENSD_BINARY:-target/release/licensd}"
users="${LICENSD_BENCH_USERS:-100000}"
runs="${RUNS:-5}"
if [ -z "${LICENSD_BINARY:-}" ]; then
  cargo build -q --release -p licensd
fi

work="$(mktemp -d)"
log="$work/licensd.log"
server=""
finish() {
  stop_licensd "$server"
  rm -rf "$work"
}
trap finish EXIT

database="sqlite://$work/licensd.db"
started=$(date +%s)
"$binary" gen --database-url "$database" --users "$users" --groups $((users / 20)) --skus 50 >/dev/null
token="$(new_licensd_token)"
LICENSD_BOOTSTRAP_TOKEN="$token" "$binary" serve --database-url "$database" --listen 127.0.0.1:0 >"$log" 2>&1 &
server=$!
address="$(wait_for_licensd "$server" "$log" "advisor bench")" || exit 1
base="http://$address"
# Evaluated to the end: the queue is empty.
while :; do
  queued="$(curl -sf -H "Authorization: Bearer $token" "$base/licensd/v1/overview" | sed -n 's/.*"queuedUsers":\([0-9]*\).*/\1/p')"
  [ "$queued" = "0" ] && break
  sleep 1
done
echo "Advisor page, $users users, $((users / 20)) groups, 50 products (SQLite); tenant generated and evaluated in $(( $(date +%s) - started )) s; median of $runs runs"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

measure() {
  local label="$1" path="$2" auth="$3" times=() bytes=""
  for _ in $(seq "$runs"); do
    local out
    if [ "$auth" = "yes" ]; then
      out="$(curl -s -o /dev/null -w '%{time_total} %{size_download} %{http_code}' -H "Authorization: Bearer $token" "$base$path")"
    else
      out="$(curl -s -o /dev/null -w '%{time_total} %{size_download} %{http_code}' "$base$path")"
    fi
    read -r time size code <<<"$out"
    [ "$code" = "200" ] || { echo "$path answered $code" >&2; exit 1; }
    times+=("$time")
    bytes="$size"
  done
  local median
  median="$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")"
  printf '  %-44s %8.1f ms  %10s bytes\n' "$label" "$(echo "$median * 1000" | bc -l)" "$bytes"
}
# The Advisor right after a write (the runtime's cached report no longer applies: computed
# again), RUNS times: before each fetch, an untimed Graph PATCH of a user's display name.
user_id="$(curl -sf -H "Authorization: Bearer $token" "$base/v1.0/users?\$top=1" | grep -o '"id":"[^"]*"' | head -n 1 | cut -d'"' -f4)"
measure_after_write() {
  local label="$1" path="$2" times=() bytes="" run=0
  for _ in $(seq "$runs"); do
    run=$((run + 1))
    curl -sf -o /dev/null -X PATCH -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d "{\"displayName\": \"Advisor bench $run\"}" "$base/v1.0/users/$user_id"
    local out
    out="$(curl -s -o /dev/null -w '%{time_total} %{size_download} %{http_code}' -H "Authorization: Bearer $token" "$base$path")"
    read -r time size code <<<"$out"
    [ "$code" = "200" ] || { echo "$path answered $code" >&2; exit 1; }
    times+=("$time")
    bytes="$size"
  done
  local median
  median="$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")"
  printf '  %-44s %8.1f ms  %10s bytes\n' "$label" "$(echo "$median * 1000" | bc -l)" "$bytes"
}
measure "reference: GET /healthz" /healthz no
measure "reference: the overview page (/)" / yes
measure_after_write "Advisor after a write (computed again)" /advisor
measure "Advisor, paged (/advisor), repeated (cached)" /advisor yes
measure "Advisor, every finding (?per_page=5000)" "/advisor?per_page=5000" yes
# A user's pages for a user in error (the first one the tenant-wide list of users in error shows):
# Diagnosis (each fix predicted: one simulation of the tenant each) and the user page.
error_user="$(curl -sf -H "Authorization: Bearer $token" "$base/users?filter=errors" | grep -o 'href="/users/[0-9a-f-]\{36\}"' | head -n 1 | cut -d/ -f3 | tr -d '"')"
[ -n "$error_user" ] || { echo "no user in error found" >&2; exit 1; }
errors_on_diagnosis="$(curl -sf -H "Authorization: Bearer $token" "$base/users/$error_user/diagnosis" | grep -o 'class="problem"' | wc -l)"
fixes_on_diagnosis="$(curl -sf -H "Authorization: Bearer $token" "$base/users/$error_user/diagnosis" | grep -o '<button type="submit" data-fix=' | wc -l)"
echo "  user in error: $error_user ($errors_on_diagnosis errors, $fixes_on_diagnosis fixes offered on Diagnosis)"
measure "a user in error: Diagnosis" "/users/$error_user/diagnosis" yes
measure "a user in error: the user page" "/users/$error_user" yes
rows="$(curl -s -H "Authorization: Bearer $token" "$base/advisor?per_page=5000" | grep -o '<tr' | wc -l)"
paged_rows="$(curl -s -H "Authorization: Bearer $token" "$base/advisor" | grep -o '<tr' | wc -l)"
echo "  table rows: $paged_rows paged, $rows with every finding"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
