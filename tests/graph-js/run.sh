#!/usr/bin/env bash
# Client compatibility suite: Microsoft's @microsoft/microsoft-graph-client (from npm, pinned,
# unmodified) against a fresh `licensd serve` over TLS — a self-signed certificate made here with
# openssl and trusted through NODE_EXTRA_CA_CERTS — on a temporary SQLite database and a free
# port. Runs the tests with Node's built-in test runner and stops the server.
#
# Environment: LICENSD_BINARY (default target/debug/licensd), GRAPH_JS_MODULES (where npm installs,
# default target/graph-js). Needs node (18 or later: built-in fetch and node:test), npm, openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib/licensd.sh
. tests/lib/licensd.sh
root="$(pwd)"
binary="${LICENSD_BINARY:-$root/target/debug/licensd}"
modules="${GRAPH_JS_MODULES:-$root/target/graph-js}"

if [ ! -x "$binary" ]; then
  cargo build -p licensd
fi

# The suite runs from a copy under target/ so node_modules never lands in the source tree.
mkdir -p "$modules"
cp tests/graph-js/package.json tests/graph-js/graph.test.mjs "$modules/"
(cd "$modules" && npm install --no-audit --no-fund --silent)

work="$(mktemp -d)"
log="$work/licensd.log"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
LICENSD_TOKEN="$(new_licensd_token)"
export LICENSD_TOKEN
LICENSD_BOOTSTRAP_TOKEN="$LICENSD_TOKEN" "$binary" serve --database-url "sqlite://$work/licensd.db" \
  --listen 127.0.0.1:0 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" >"$log" 2>&1 &
server=$!
stop_server() {
  stop_licensd "$server"
  rm -rf "$work"
}
trap stop_server EXIT

address="$(wait_for_licensd "$server" "$log")" || exit 1
export LICENSD_URL="https://localhost:${address##*:}"
export NODE_EXTRA_CA_CERTS="$work/cert.pem"
echo "== @microsoft/microsoft-graph-client suite against $LICENSD_URL"

# The seed's products, so subscribedSkus has something to show.
curl --silent --show-error --fail --cacert "$work/cert.pem" -H "Authorization: Bearer $LICENSD_TOKEN" \
  -H "Content-Type: application/json" -X POST "$LICENSD_URL/licensd/v1/catalog/import" \
  -d "{\"products\":[{\"skuId\":\"6fd2c87f-b296-42f0-b197-1e91e994b900\",\"prepaidUnits\":5}]}" >/dev/null

if ! (cd "$modules" && node --test graph.test.mjs); then
  echo "== licensd log" >&2
  tail -n 200 "$log" >&2
  exit 1
fi
