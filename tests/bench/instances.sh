#!/usr/bin/env bash
# N instances serve N× the tenants (issue 14), measured from outside as an operator sees it:
# separate `licensd serve` processes on one PostgreSQL database, each its own process with its own
# memory. TENANTS `licensd gen` tenants of USERS users each are evaluated once; then, for N = 1 to
# MAX_INSTANCES, N instances are started together, twice:
#
# - **every tenant** (the default: each instance holds every tenant) — the reference;
# - **on demand** (`tenant-idle-eviction-s`): each instance holds the tenants its processor owns
#   and those asked about recently.
#
# Each tenant's requests are sent to the instance that processes it — what a tenant-affine load
# balancer in front does, with the rule licensd shares tenants out by (rendezvous hashing: the
# live instance with the highest SHA-256 of tenant id bytes + instance id): READS reads of users
# with their license states per tenant, each checked (200, the user's states present). Then each
# instance's resident set size (VmRSS), the tenants and users it holds (`/metrics`) are printed,
# next to the reference of the same run. Bounded (each phase waits at most 120 s); loopback only.
#
# Environment: LICENSD_BINARY (default target/release/licensd, built with cargo unless given),
# LICENSD_BENCH_TENANTS (6), LICENSD_BENCH_USERS (50000 per tenant), LICENSD_BENCH_INSTANCES (3),
# LICENSD_BENCH_READS (200 per tenant), LICENSD_BENCH_POSTGRES (the server to create a scratch
# database on, default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib/licensd.sh
. tests/lib/licensd.sh
binary="${LICENSD_BINARY:-target/release/licensd}"
tenants="${LICENSD_BENCH_TENANTS:-6}"
users="${LICENSD_BENCH_USERS:-50000}"
max_instances="${LICENSD_BENCH_INSTANCES:-3}"
reads="${LICENSD_BENCH_READS:-200}"
postgres="${LICENSD_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
if [ -z "${LICENSD_BINARY:-}" ]; then
  cargo build -q --release -p licensd
fi

work="$(mktemp -d)"
name="licensd_instances_bench_$$"
database="$postgres/$name"
servers=()
stop_all() {
  for pid in "${servers[@]}"; do stop_licensd "$pid"; done
  servers=()
}
finish() {
  stop_all
  psql -q "$postgres/postgres" -c "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap finish EXIT
psql -q "$postgres/postgres" -c "CREATE DATABASE $name" >/dev/null

tenant_ids=()
tokens=()
started=$(date +%s)
for seed in $(seq "$tenants"); do
  out="$("$binary" gen --database-url "$database" --users "$users" --groups $((users / 20)) --skus 50 \
    --seed "$seed" --token)"
  tenant_ids+=("$(echo "$out" | sed -n 's/^tenant \([0-9a-f-]*\):.*/\1/p')")
  tokens+=("$(echo "$out" | sed -n 's/^token //p')")
done
echo "instances bench: $tenants tenants x $users users (PostgreSQL), generated in $(( $(date +%s) - started )) s"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# start_instances MODE N: starts N instances (ids MODE-N-1..N), fills `servers`, `addresses`,
# `metrics` and `ids`.
addresses=()
metrics=()
ids=()
start_instances() {
  local mode="$1" count="$2"
  addresses=()
  metrics=()
  ids=()
  local k
  for k in $(seq "$count"); do
    local id="$mode-$count-$k" config="$work/$mode-$count-$k.toml" port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    {
      echo "instance-id = \"$id\""
      echo "processing-lease-ms = 2000"
      [ "$mode" = "on-demand" ] && echo "tenant-idle-eviction-s = 5"
    } >"$config"
    "$binary" serve --database-url "$database" --listen 127.0.0.1:0 --config "$config" \
      --metrics-listen "127.0.0.1:$port" >"$work/$id.log" 2>&1 &
    servers+=("$!")
    ids+=("$id")
    metrics+=("127.0.0.1:$port")
  done
  for k in $(seq 0 $((count - 1))); do
    addresses+=("$(wait_for_licensd "${servers[$k]}" "$work/${ids[$k]}.log" "${ids[$k]}")") || exit 1
  done
}

# owner TENANT: the index in `ids` of the instance that processes TENANT.
owner() {
  python3 - "$1" "${ids[@]}" <<'PY'
import hashlib, sys, uuid
tenant = uuid.UUID(sys.argv[1]).bytes
ids = sys.argv[2:]
print(max(range(len(ids)), key=lambda i: (hashlib.sha256(tenant + ids[i].encode()).digest(), ids[i])))
PY
}

# gauge K NAME: the value of NAME in instance K's /metrics.
gauge() {
  local text
  text="$(curl -sf "http://${metrics[$1]}/metrics")"
  awk -v name="$2" '$1 == name { print $2; exit }' <<<"$text"
}

# wait_until_owned MODE: on demand, each instance settles on the tenants it owns (those it
# loaded while the others were starting are evicted after 5 idle seconds); at most 120 s.
wait_until_owned() {
  local mode="$1" k deadline=$(( $(date +%s) + 120 ))
  local expected=()
  for k in "${!ids[@]}"; do expected[k]=0; done
  for t in "${!tenant_ids[@]}"; do
    k="$(owner "${tenant_ids[$t]}")"
    expected[k]=$(( expected[k] + 1 ))
  done
  while :; do
    local settled=yes
    for k in "${!ids[@]}"; do
      local want="$tenants"
      [ "$mode" = "on-demand" ] && want="${expected[$k]}"
      [ "$(gauge "$k" licensd_tenants_resident)" = "$want" ] || settled=no
    done
    [ "$settled" = yes ] && return 0
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "instances did not settle within 120 s" >&2
      for k in "${!ids[@]}"; do echo "${ids[$k]}: $(gauge "$k" licensd_tenants_resident) resident, ${expected[$k]} owned" >&2; done
      exit 1
    fi
    sleep 1
  done
}

# serve: READS reads of each tenant's users through the instance that processes it, each checked.
serve() {
  local t k user
  for t in "${!tenant_ids[@]}"; do
    k="$(owner "${tenant_ids[$t]}")"
    local base="http://${addresses[$k]}" auth="Authorization: Bearer ${tokens[$t]}"
    local ids_json
    ids_json="$(curl -sf -H "$auth" "$base/v1.0/users?\$top=$reads&\$select=id")"
    for user in $(echo "$ids_json" | grep -o '"id":"[^"]*"' | cut -d'"' -f4); do
      curl -sf -H "$auth" "$base/v1.0/users/$user?\$select=licenseAssignmentStates" | grep -q '"licenseAssignmentStates"' \
        || { echo "reading user $user of tenant ${tenant_ids[$t]} through ${ids[$k]} failed" >&2; exit 1; }
    done
  done
}

# The tenants evaluated once (every user is queued after `gen`), by one instance.
start_instances every-tenant 1
deadline=$(( $(date +%s) + 600 ))
for t in "${!tenant_ids[@]}"; do
  while :; do
    queued="$(curl -sf -H "Authorization: Bearer ${tokens[$t]}" "http://${addresses[0]}/licensd/v1/overview" | sed -n 's/.*"queuedUsers":\([0-9]*\).*/\1/p')"
    [ "$queued" = "0" ] && break
    [ "$(date +%s)" -gt "$deadline" ] && { echo "tenants not evaluated within 600 s" >&2; exit 1; }
    sleep 1
  done
done
stop_all
echo "tenants evaluated in $(( $(date +%s) - started )) s (with generation)"
echo
printf '%-13s %-2s %-40s %-12s %-12s %s\n' "residency" "N" "per instance: tenants (users), RSS" "max RSS" "sum RSS" "reads"
for mode in every-tenant on-demand; do
  for count in $(seq "$max_instances"); do
    start_instances "$mode" "$count"
    wait_until_owned "$mode"
    read_started=$(date +%s.%N)
    serve
    read_seconds="$(echo "$(date +%s.%N) - $read_started" | bc -l)"
    wait_until_owned "$mode"
    cells=""
    max=0
    sum=0
    for k in "${!ids[@]}"; do
      rss_kb="$(awk '/^VmRSS:/ { print $2 }' "/proc/${servers[$k]}/status")"
      cells="$cells$(gauge "$k" licensd_tenants_resident) ($(gauge "$k" licensd_resident_users)), $((rss_kb / 1024)) MB; "
      [ "$rss_kb" -gt "$max" ] && max="$rss_kb"
      sum=$((sum + rss_kb))
    done
    printf '%-13s %-2s %-40s %-12s %-12s %s\n' "$mode" "$count" "${cells%; }" "$((max / 1024)) MB" "$((sum / 1024)) MB" \
      "$((tenants * reads)) ok in $(printf '%.1f' "$read_seconds") s"
    stop_all
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
