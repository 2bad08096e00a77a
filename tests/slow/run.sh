#!/usr/bin/env bash
# Slow scenarios, kept out of `cargo test --workspace` so the default run stays under ten minutes
# on two cores: the tests marked `#[ignore = "slow: run by .ci/run"]` (the durability scenarios at
# full size: a kill -9 in the middle of a 100,000-member group on SQLite and PostgreSQL, and 3,000
# memberships added through two instances sharing PostgreSQL while one fails over). Each
# scenario bounds its own waits; the whole step is bounded by SLOW_TESTS_TIMEOUT seconds (default
# 900). The chaos test has its own step (tests/chaos/run.sh).
#
# Environment: LICENSD_TEST_POSTGRES_URL and LICENSD_REQUIRE_POSTGRES as for the default run.
set -euo pipefail
cd "$(dirname "$0")/../.."
timeout "${SLOW_TESTS_TIMEOUT:-900}" \
  cargo test -p licensd --test licensd -- durability::kill_9 durability::two_instances_share_3000 --ignored --test-threads 1
