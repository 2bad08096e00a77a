//! What-if benchmark: the prediction of a change to a 100,000-member group on a tenant of
//! 200,000 users (a synthetic tenant of `licensd_fixtures::generator` whose largest group holds
//! half of the users), printed next to two references measured in the same run: cloning the
//! engine (the floor of a copy-based simulation) and applying the same change for real
//! (`apply` + `process_all` on a copy prepared outside the timing).
//!
//! Run with `cargo bench -p licensd-engine --bench whatif`. `LICENSD_BENCH_USERS` (default
//! 200,000) sets the size; without `--bench` on the command line (`cargo test --benches`) it
//! runs as a smoke test on 2,000 users.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use licensd_engine::{AssignedLicense, Command, Engine, Timestamp, Uuid, WhatIfOptions};
use licensd_fixtures::generator::{build_engine, GeneratorConfig};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A change to the largest group that the engine accepts and that changes every member's
/// granted plans: one more plan disabled in its first product.
fn group_change(engine: &Engine, group_id: Uuid, at: Timestamp) -> Option<Command> {
    let view = engine.group_view(group_id).ok()?;
    let license = view.assigned_licenses.first()?;
    let plans = engine.sku_usage(license.sku_id).ok()?.service_plans;
    plans
        .iter()
        .map(|(plan, _, _)| *plan)
        .filter(|plan| !license.disabled_plans.contains(plan))
        .map(|plan| {
            let mut disabled = license.disabled_plans.clone();
            disabled.push(plan);
            Command::AssignGroupLicenses {
                group_id,
                add_licenses: vec![AssignedLicense::with_disabled_plans(license.sku_id, disabled)],
                remove_licenses: Vec::new(),
            }
        })
        .find(|command| engine.clone().apply(command.clone(), at).is_ok())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let benchmarking = std::env::args().any(|argument| argument == "--bench");
    let users = if benchmarking {
        env_or("LICENSD_BENCH_USERS", 200_000usize)
    } else {
        2_000
    };
    let mut config = GeneratorConfig::new(users, (users / 200).max(20), 30, 1);
    config.largest_group_fraction = 0.5;
    let started = Instant::now();
    let (mut engine, summary) = match build_engine(&config) {
        Ok(built) => built,
        Err(error) => panic!("the generated tenant does not build: {error}"),
    };
    let at = Timestamp(summary.last_timestamp.0 + 1);
    engine.process_all(at);
    let group_id = config.group_id(0);
    let members = engine.group_members(group_id).map_or(0, |members| members.len());
    println!(
        "tenant: {} users, {} groups, largest group {} members (built and evaluated in {:.2?})",
        engine.user_count(),
        engine.group_count(),
        members,
        started.elapsed()
    );
    let Some(change) = group_change(&engine, group_id, at) else {
        panic!("no accepted change to the largest group");
    };
    let changes = vec![change];
    let options = WhatIfOptions::default();
    let report = match engine.what_if(&changes, at, options) {
        Ok(report) => report,
        Err(error) => panic!("the what-if is refused: {error}"),
    };
    println!(
        "what-if: {} users evaluated, {} change, {} fixed, {} newly broken",
        report.evaluated_users, report.changed_users, report.fixed_users, report.newly_broken_users
    );

    // The three figures, measured the same way in the same run (median of 7).
    let rounds = if benchmarking { 7 } else { 2 };
    let what_if = median(
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                black_box(engine.what_if(&changes, at, options).ok());
                start.elapsed()
            })
            .collect(),
    );
    let clone = median(
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                black_box(engine.clone());
                start.elapsed()
            })
            .collect(),
    );
    let for_real = median(
        (0..rounds)
            .map(|_| {
                let mut copy = engine.clone();
                let start = Instant::now();
                for command in &changes {
                    black_box(copy.apply(command.clone(), at).ok());
                }
                black_box(copy.process_all(at).evaluated_users);
                start.elapsed()
            })
            .collect(),
    );
    println!("what-if of a change to the {members}-member group: {what_if:.2?} (median of {rounds})");
    println!(
        "reference, engine clone: {clone:.2?} (what-if / clone = {:.2}x)",
        what_if.as_secs_f64() / clone.as_secs_f64()
    );
    println!(
        "reference, applying for real (apply + process_all): {for_real:.2?} (what-if / real = {:.2}x)",
        what_if.as_secs_f64() / for_real.as_secs_f64()
    );

    if benchmarking {
        let mut criterion = Criterion::default()
            .sample_size(10)
            .measurement_time(Duration::from_secs(20))
            .configure_from_args();
        criterion.bench_function("whatif/largest_group_change", |bencher| {
            bencher.iter(|| black_box(engine.what_if(&changes, at, options).ok()))
        });
        criterion.bench_function("reference/engine_clone", |bencher| {
            bencher.iter(|| black_box(engine.clone()))
        });
        criterion.bench_function("reference/apply_for_real", |bencher| {
            bencher.iter_batched(
                || engine.clone(),
                |mut copy| {
                    for command in &changes {
                        black_box(copy.apply(command.clone(), at).ok());
                    }
                    black_box(copy.process_all(at).evaluated_users)
                },
                BatchSize::LargeInput,
            )
        });
        criterion.final_summary();
    }
}
