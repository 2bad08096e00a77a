#!/usr/bin/env bash
# "Fresh machine" check: the README's two commands work as written.
#
# 1. Runs the README's first command (the first line of the first ```sh block under "## Two
#    commands", taken from README.md, not copied here) exactly as written, in the background: it
#    builds licensd in release mode (minutes on a small machine; target/ is shared with the rest of
#    CI) and serves the demo tenant on its default address, 127.0.0.1:8080. Then checks that
#    /healthz answers, that the console sends a visitor to its sign-in page, that the token the
#    demo printed opens the API (GET /v1.0/users) and the console, and that the demo shows every
#    license error of the seed (GET /licensd/v1/overview and `licensd errors --json`).
# 2. Checks that the README's second command (the tests) is literally a line of .ci/run, which
#    runs it, so the two cannot drift apart.
#
# Environment: FRESH_WAIT_SECONDS (default 1200) bounds the build and start-up.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() {
  echo "tests/fresh: $*" >&2
  exit 1
}

# The README's two commands: the first two lines of the first ```sh block after "## Two commands",
# without their trailing comments.
commands="$(awk '
  /^## Two commands/ { section = 1; next }
  section && /^## / { exit }
  section && /^```sh$/ { block = 1; next }
  block && /^```/ { exit }
  block && NF { print }
' README.md)"
first="$(sed -n 1p <<<"$commands")"
second="$(sed -n 2p <<<"$commands" | sed -E 's/[[:space:]]+#.*$//')"
[ -n "$first" ] && [ -n "$second" ] || fail "README.md has no \`\`\`sh block with two commands under '## Two commands'"
echo "README's first command:  $first"
echo "README's second command: $second"

# The second command is what .ci/run runs.
grep -qxF "$second" .ci/run || fail ".ci/run does not run the README's second command '$second' (as a line of its own)"
echo "ok: .ci/run runs '$second'"

# The first command serves on licensd demo's default address; it must be free.
case "$first" in
  *--listen*) fail "the README's first command chooses its address; this script expects the default 127.0.0.1:8080" ;;
esac
address=127.0.0.1
port=8080
base="http://$address:$port"
if (exec 3<>"/dev/tcp/$address/$port") 2>/dev/null; then
  fail "$address:$port is already in use: stop what listens there (the README's command serves on it)"
fi

work="$(mktemp -d)"
log="$work/demo.out"
demo=""
stop_demo() {
  if [ -n "$demo" ]; then
    # The command runs in its own process group (cargo and the licensd it started).
    kill -TERM -- "-$demo" 2>/dev/null || true
    wait "$demo" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop_demo EXIT

# As written: no token given, the demo prints the one it creates.
echo "== running the README's first command (builds in release mode; this can take several minutes)"
(
  unset LICENSD_BOOTSTRAP_TOKEN LICENSD_TOKEN LICENSD_SERVER
  exec setsid bash -c "$first" >"$log" 2>&1 </dev/null
) &
demo=$!

wait_seconds="${FRESH_WAIT_SECONDS:-1200}"
deadline=$((SECONDS + wait_seconds))
until curl -fsS -o /dev/null "$base/healthz" 2>/dev/null; do
  if ! kill -0 "$demo" 2>/dev/null; then
    tail -n 40 "$log" >&2
    fail "the README's first command exited before serving"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    tail -n 40 "$log" >&2
    fail "the README's first command did not serve $base within $wait_seconds s"
  fi
  sleep 2
done
echo "ok: serving after ${SECONDS} s"

[ "$(curl -fsS "$base/healthz")" = ok ] || fail "/healthz did not answer ok"
echo "ok: /healthz"

# The console asks for a token first.
location="$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$base/")"
case "$location" in
  "303 $base/login"*) echo "ok: the console redirects to sign-in ($location)" ;;
  *) fail "GET / answered '$location', not a redirect to /login" ;;
esac

# The token the demo printed ("For the CLI: export LICENSD_TOKEN=lsd_…").
token=""
for _ in $(seq 1 50); do
  token="$(sed -nE 's/^For the CLI: export LICENSD_TOKEN=(lsd_[0-9a-f]{32}_[0-9a-f]{64})$/\1/p' "$log" | head -n 1)"
  [ -n "$token" ] && break
  sleep 0.2
done
[ -n "$token" ] || { tail -n 40 "$log" >&2; fail "the demo printed no token"; }
echo "ok: the demo printed a token"

status="$(curl -sS -o "$work/users.json" -w '%{http_code}' -H "Authorization: Bearer $token" "$base/v1.0/users?\$top=1")"
[ "$status" = 200 ] || fail "GET /v1.0/users with the printed token answered $status: $(cat "$work/users.json")"
grep -q '"userPrincipalName"' "$work/users.json" || fail "GET /v1.0/users returned no user: $(cat "$work/users.json")"
status="$(curl -sS -o /dev/null -w '%{http_code}' "$base/v1.0/users?\$top=1")"
[ "$status" = 401 ] || fail "GET /v1.0/users without a token answered $status, not 401"
echo "ok: the token opens the API (and nothing opens it without one)"

# Sign in to the console with it, as a browser would.
jar="$work/cookies"
status="$(curl -sS -o /dev/null -w '%{http_code}' -c "$jar" -X POST -H "Origin: $base" \
  -H 'Sec-Fetch-Site: same-origin' --data-urlencode "token=$token" "$base/login")"
[ "$status" = 303 ] || fail "signing in to the console answered $status, not 303"
curl -fsS -b "$jar" "$base/" >"$work/overview.html" || fail "the console's overview failed after signing in"
grep -q 'Licenses overview' "$work/overview.html" || fail "the console's overview does not show 'Licenses overview'"
echo "ok: the token signs in to the console"

# Every error kind of the seed, through the API and through the CLI the build produced.
curl -fsS -H "Authorization: Bearer $token" "$base/licensd/v1/overview" >"$work/overview.json"
LICENSD_TOKEN="$token" target/release/licensd errors --json --server "$base" >"$work/errors.json" \
  || fail "licensd errors --json failed"
for kind in CountViolation MutuallyExclusiveViolation DependencyViolation \
  ProhibitedInUsageLocationViolation UniquenessViolation; do
  grep -q "\"$kind\": *[1-9]" "$work/overview.json" || fail "the demo's overview has no $kind: $(cat "$work/overview.json")"
  grep -q "\"$kind\"" "$work/errors.json" || fail "licensd errors --json has no $kind"
done
grep -q '"usersWithErrors": 22,' "$work/errors.json" \
  || fail "licensd errors --json does not report the 22 users in error docs/user-guide.md states"
echo "ok: the demo shows every error of the seed (22 users in error)"

echo "fresh machine check passed"
