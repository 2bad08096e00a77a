# Shared by the client suites' run.sh scripts (sourced, not run): a token in licensd's format,
# waiting for a `licensd serve` started in the background to bind its address, and stopping it.
# One copy of the start-up protocol: the server logs "licensd is serving address=IP:PORT".

# Prints a random access token in licensd's format (`lsd_<id>_<secret>`), for
# LICENSD_BOOTSTRAP_TOKEN.
new_licensd_token() {
  echo "lsd_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')_$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
}

# wait_for_licensd PID LOG [LABEL]: prints the address the server bound, within 30 s. Fails (with
# the server's log on stderr) if it exits, does not start, or binds anything but loopback: the
# suites talk to loopback only. Use as `address="$(wait_for_licensd "$server" "$log")" || exit 1`.
wait_for_licensd() {
  local pid="$1" log="$2" label="${3:+ ($3)}" address=""
  for _ in $(seq 1 300); do
    address="$(sed -n 's/.*licensd is serving address=\([0-9.:]*\).*/\1/p' "$log" | head -n 1)"
    [ -n "$address" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "licensd serve$label exited:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  if [ -z "$address" ]; then
    echo "licensd serve$label did not start:" >&2
    cat "$log" >&2
    return 1
  fi
  case "$address" in
    127.*) ;;
    *) echo "refusing to test a non-loopback address: $address" >&2; return 1 ;;
  esac
  echo "$address"
}

# stop_licensd PID: stops the server (SIGTERM, then waits for it); nothing if PID is empty.
stop_licensd() {
  [ -n "${1:-}" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
