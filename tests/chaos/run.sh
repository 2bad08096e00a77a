#!/usr/bin/env bash
# The chaos test of issue 14: three `licensd serve` instances on one PostgreSQL database, random
# writes through all three, one instance `kill -9`ed and restarted every few seconds; at the end
# every instance agrees, no product is over-allocated, nothing queued is forgotten and no
# acknowledged write is lost (crates/licensd/tests/licensd/chaos.rs). Loopback only; the chaos
# lasts LICENSD_CHAOS_SECONDS (default 60) and the whole step is bounded by CHAOS_TIMEOUT seconds.
#
# Environment: LICENSD_TEST_POSTGRES_URL and LICENSD_REQUIRE_POSTGRES as for the default run.
set -euo pipefail
cd "$(dirname "$0")/../.."
timeout "${CHAOS_TIMEOUT:-600}" \
  cargo test -p licensd --test licensd chaos -- --ignored --nocapture --test-threads 1
