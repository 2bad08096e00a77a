#!/usr/bin/env bash
# Browser tests of the web console: real headless Chromium (Debian's `chromium`, installed with apt
# when missing) driven by playwright-core from npm (pinned in package-lock.json; it downloads no
# browser), against `target/debug/licensd demo` on a free port (the demo tenant stored in a
# temporary SQLite database and served). Walks the seed's steps in the console and saves
# screenshots of the main pages under target/screenshots/.
#
# Environment: LICENSD_BINARY (default target/debug/licensd, built with cargo unless given),
# CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default target/screenshots);
# LICENSD_UPDATE_DOCS_SCREENSHOT=1 also copies the screenshots the docs show (the group Licenses
# pane with users in error, a user's error and fixes, Diagnosis, the plan editor, the filtered
# users in error, Advisor, Activity, the overview on a phone; from groups.test.mjs a new dynamic
# group's preview, a nesting cycle refused, a user's path through nesting, converting a dynamic
# group to static, a user's attribute change previewed; the users in error on a phone) to
# docs/screenshots/. scale.test.mjs runs against a third server holding a generated tenant of
# 2,000 users (LICENSD_LARGE_URL). phone-fixes.test.mjs starts fresh demo tenants of its own
# (LICENSD_DEMO_BINARY) and completes every fix at 390 px. Extra arguments
# go to node --test.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib/licensd.sh
. tests/lib/licensd.sh
root="$(pwd)"
binary="${LICENSD_BINARY:-$root/target/debug/licensd}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-$root/target/screenshots}"

if [ ! -x "$CHROMIUM" ]; then
  echo "== installing Chromium (apt)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
"$CHROMIUM" --version 2>/dev/null | head -n 1 || true

if [ -z "${LICENSD_BINARY:-}" ]; then
  cargo build -q -p licensd
fi

echo "== npm ci (playwright-core)"
(cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)

work="$(mktemp -d)"
log="$work/licensd.log"
server=""
empty_server=""
large_server=""
stop_server() {
  stop_licensd "$server"
  stop_licensd "$empty_server"
  stop_licensd "$large_server"
  rm -rf "$work"
}
trap stop_server EXIT

# `licensd demo` stores the demo tenant in a SQLite database in $work and serves it, with this
# Global Administrator token (the tests sign in to the console with it).
LICENSD_TOKEN="$(new_licensd_token)"
export LICENSD_TOKEN
LICENSD_BOOTSTRAP_TOKEN="$LICENSD_TOKEN" "$binary" demo --listen 127.0.0.1:0 --data-dir "$work" >"$log" 2>&1 &
server=$!
address="$(wait_for_licensd "$server" "$log" "demo")" || exit 1
export LICENSD_URL="http://$address"
# A fresh `licensd serve` (an empty tenant, same token) for the first-run page.
mkdir -p "$work/empty"
empty_log="$work/empty.log"
LICENSD_BOOTSTRAP_TOKEN="$LICENSD_TOKEN" "$binary" serve --listen 127.0.0.1:0 \
  --database-url "sqlite://$work/empty/licensd.db" --data-dir "$work/empty" >"$empty_log" 2>&1 &
empty_server=$!
empty_address="$(wait_for_licensd "$empty_server" "$empty_log" "empty tenant")" || exit 1
export LICENSD_EMPTY_URL="http://$empty_address"
# A generated tenant of 2,000 users (`licensd gen`: long product names and part numbers, counts
# in the thousands) for the pages at scale.
mkdir -p "$work/large"
"$binary" gen --database-url "sqlite://$work/large/licensd.db" --users 2000 --groups 40 --skus 20 >/dev/null
large_log="$work/large.log"
LICENSD_BOOTSTRAP_TOKEN="$LICENSD_TOKEN" "$binary" serve --listen 127.0.0.1:0 \
  --database-url "sqlite://$work/large/licensd.db" --data-dir "$work/large" >"$large_log" 2>&1 &
large_server=$!
large_address="$(wait_for_licensd "$large_server" "$large_log" "generated tenant")" || exit 1
export LICENSD_LARGE_URL="http://$large_address"
# phone-fixes.test.mjs starts fresh demo tenants of its own (each fix on an unfixed tenant).
export LICENSD_DEMO_BINARY="$binary"
mkdir -p "$SCREENSHOT_DIR"
echo "== console browser tests against $LICENSD_URL (screenshots in $SCREENSHOT_DIR)"

cd tests/browser
if ! node --test --test-concurrency=1 "$@" console.test.mjs groups.test.mjs scale.test.mjs phone-fixes.test.mjs; then
  echo "== licensd log" >&2
  tail -n 100 "$log" >&2
  exit 1
fi
cd "$root"
if [ "${LICENSD_UPDATE_DOCS_SCREENSHOT:-}" = "1" ]; then
  mkdir -p docs/screenshots
  # The pages docs/user-guide.md and the README show.
  for name in group-licenses-errors user-error-and-fixes diagnosis plan-editor-suggested \
    group-users-in-error-filtered group-plan-preview advisor activity phone-overview first-run \
    group-new-dynamic-preview group-nesting-cycle user-nested-path \
    group-convert-static-preview user-attributes-preview \
    bulk-fix-preview group-add-products-preview phone-users-in-error phone-every-fix; do
    cp "$SCREENSHOT_DIR/$name.png" "docs/screenshots/$name.png"
    echo "== updated docs/screenshots/$name.png"
  done
fi
