//! Spend reports on a synthetic tenant (see `licensd_fixtures::generator`): the cost report
//! (per product, source, department, company) and the idle-seat list, with a price for every
//! product and activity for a tenth of the users; and the direct-to-group coverage of the largest
//! group followed by applying its removals. Each is printed next to a reference measured in the
//! same run: the advisor (`Engine::advise`), another full pass over every user and their states.
//!
//! `cargo bench -p licensd-engine --bench spend`; `LICENSD_BENCH_USERS` (default 1,000,000).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use licensd_engine::spend::{IdlePolicy, SeatPrice, SpendInputs, UserActivity, DAY_MILLISECONDS};
use licensd_engine::{Timestamp, Uuid};
use licensd_fixtures::generator::{build_engine, GeneratorConfig};
use rustc_hash::FxHashMap;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut run: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                black_box(run());
                started.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let benchmarking = std::env::args().any(|argument| argument == "--bench");
    let users = if benchmarking {
        env_or("LICENSD_BENCH_USERS", 1_000_000usize)
    } else {
        2_000
    };
    let runs = if benchmarking { 5 } else { 1 };
    let config = GeneratorConfig::new(users, (users / 200).max(20), 30, 1);
    let started = Instant::now();
    let (mut engine, summary) = build_engine(&config).expect("the generated tenant builds");
    let at = Timestamp(summary.last_timestamp.0 + 1);
    engine.process_all(at);
    println!(
        "tenant: {} users, {} groups (built and evaluated in {:.2?})",
        engine.user_count(),
        engine.group_count(),
        started.elapsed()
    );
    let prices: FxHashMap<Uuid, SeatPrice> = engine
        .sku_usages()
        .into_iter()
        .enumerate()
        .map(|(index, usage)| {
            (
                usage.sku_id,
                SeatPrice {
                    minor_units: 500 + 100 * index as i64,
                    currency: if index % 2 == 0 { "EUR" } else { "USD" }.to_string(),
                },
            )
        })
        .collect();
    let now = Timestamp(at.0 + 365 * DAY_MILLISECONDS);
    let activity: FxHashMap<Uuid, UserActivity> = engine
        .user_ids()
        .into_iter()
        .enumerate()
        .filter(|(index, _)| index % 10 == 0)
        .map(|(index, user_id)| {
            let activity = if index % 20 == 0 {
                UserActivity {
                    last_sign_in: Some(Timestamp(now.0 - 200 * DAY_MILLISECONDS)),
                    leave_date: None,
                }
            } else {
                UserActivity {
                    last_sign_in: Some(Timestamp(now.0 - 30 * DAY_MILLISECONDS)),
                    leave_date: Some(Timestamp(now.0 - DAY_MILLISECONDS)),
                }
            };
            (user_id, activity)
        })
        .collect();
    let inputs = SpendInputs {
        prices: &prices,
        activity: &activity,
        policy: IdlePolicy {
            now,
            inactive_after_days: 90,
        },
    };
    let reference = time(runs, || engine.advise());
    let cost = time(runs, || engine.cost_report(&inputs));
    let idle = time(runs, || engine.idle_seats(&inputs));
    let report = engine.cost_report(&inputs);
    let idle_count = engine.idle_seats(&inputs).len();
    println!(
        "reference (advisor, one pass over every user): {reference:.2?}\n\
         cost report: {cost:.2?} ({:.2}x the reference; {} products, {} sources, {} departments)\n\
         idle seats: {idle:.2?} ({:.2}x the reference; {idle_count} idle seats)",
        cost.as_secs_f64() / reference.as_secs_f64(),
        report.products.len(),
        report.sources.len(),
        report.departments.len(),
        idle.as_secs_f64() / reference.as_secs_f64(),
    );
    // Coverage of the largest group's first product, then its removal commands applied.
    let group_id = config.group_id(0);
    let sku_id = engine.group_view(group_id).expect("group").assigned_licenses[0].sku_id;
    let coverage_time = Instant::now();
    let coverage = engine
        .direct_to_group_coverage(group_id, sku_id)
        .expect("coverage");
    let coverage_time = coverage_time.elapsed();
    println!(
        "direct-to-group coverage of the largest group: {coverage_time:.2?} ({} covered, {} losing, {} not in group)",
        coverage.covered.len(),
        coverage.losing.len(),
        coverage.not_in_group.len()
    );
}
