#!/usr/bin/env bash
# /metrics read by the Prometheus project's own parser (prometheus_client's strict OpenMetrics
# parser, from PyPI): a fresh `licensd serve` on a temporary SQLite database with a metrics
# address, a group with E3 for three users and two seats (one CountViolation), then check.py
# scrapes both addresses and checks the figures. Loopback only.
#
# Environment: PROMETHEUS_VENV (default target/prometheus-venv), LICENSD_BINARY (default
# target/debug/licensd), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib/licensd.sh
. tests/lib/licensd.sh
root="$(pwd)"
python="${PYTHON:-python3}"
venv="${PROMETHEUS_VENV:-$root/target/prometheus-venv}"
binary="${LICENSD_BINARY:-$root/target/debug/licensd}"

if [ ! -x "$binary" ]; then
  cargo build -p licensd
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/prometheus/requirements.txt

work="$(mktemp -d)"
log="$work/licensd.log"
LICENSD_TOKEN="$(new_licensd_token)"
export LICENSD_TOKEN
# A free loopback port for the metrics address.
metrics_port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
LICENSD_BOOTSTRAP_TOKEN="$LICENSD_TOKEN" "$binary" serve --database-url "sqlite://$work/licensd.db" \
  --listen 127.0.0.1:0 --metrics-listen "127.0.0.1:$metrics_port" >"$log" 2>&1 &
server=$!
cleanup() {
  stop_licensd "$server"
  rm -rf "$work"
}
trap cleanup EXIT
address="$(wait_for_licensd "$server" "$log")" || exit 1
export LICENSD_URL="http://$address"
export LICENSD_METRICS_URL="http://127.0.0.1:$metrics_port"
echo "== /metrics of $LICENSD_URL and $LICENSD_METRICS_URL read by prometheus_client"

api() {
  curl -fsS -X "$1" "$LICENSD_URL$2" -H "Authorization: Bearer $LICENSD_TOKEN" -H "Content-Type: application/json" ${3:+-d "$3"}
}
api POST /licensd/v1/catalog/import '{"products": [{"skuPartNumber": "ENTERPRISEPACK", "prepaidUnits": 2}]}' >/dev/null
group="$(api POST /v1.0/groups '{"displayName": "Metrics", "mailEnabled": false, "mailNickname": "metrics", "securityEnabled": true}' | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
api POST "/v1.0/groups/$group/assignLicense" '{"addLicenses": [{"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "disabledPlans": []}], "removeLicenses": []}' >/dev/null
for n in 1 2 3; do
  user="$(api POST /v1.0/users "{\"displayName\": \"m$n\", \"userPrincipalName\": \"m$n@contoso.com\", \"mailNickname\": \"m$n\", \"usageLocation\": \"US\", \"accountEnabled\": true}" | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
  api POST "/v1.0/groups/$group/members/\$ref" "{\"@odata.id\": \"https://graph.microsoft.com/v1.0/directoryObjects/$user\"}" >/dev/null
  api GET "/v1.0/users/$user" >/dev/null
done
# Until the processor has evaluated the three members.
for _ in $(seq 1 100); do
  queued="$(api GET /licensd/v1/overview | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["queuedUsers"])')"
  [ "$queued" = "0" ] && break
  sleep 0.1
done
PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" tests/prometheus/check.py
