//! Dynamic membership groups benchmark, each figure next to a reference measured in the same
//! run: evaluating every rule of 500 dynamic groups on every user from scratch (next to a raw
//! pass reading the same attributes), one attribute change applied with its memberships and
//! licenses settled (p50/p99, next to the same change on a tenant without rules), and the
//! what-if preview of a rule change that moves about 100,000 users (next to cloning the engine).
//! `LICENSD_BENCH_PREVIEW_MOVES` (default 100,000) sets how many users the previewed rule change
//! moves.
//!
//! Run with `cargo bench -p licensd-engine --bench dynamic_groups -- --bench`.
//! `LICENSD_BENCH_USERS` (default 1,000,000) and `LICENSD_BENCH_GROUPS` (default 500) set the
//! size; without `--bench` (`cargo test --benches`) it runs as a smoke test on 2,000 users.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use licensd_engine::{
    AssignedLicense, Command, Engine, NewUser, RuleProcessingState, SkuDefinition, TenantSettings, Timestamp,
    UserAttribute, UserChanges, Uuid, WhatIfOptions,
};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

const DEPARTMENTS: usize = 50;
const CITIES: usize = 200;
const TITLES: usize = 100;
const COMPANIES: usize = 5;

/// The CPU time this thread has run (Linux: `/proc/thread-self/schedstat`), `None` elsewhere: on
/// a loaded machine a wall-clock figure includes the time other processes held the core, the CPU
/// time is what one core spent.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanoseconds))
}

/// Runs `work`, returning its wall-clock and CPU times.
fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let cpu = cpu_time();
    let started = Instant::now();
    let result = work();
    let wall = started.elapsed();
    let cpu = match (cpu, cpu_time()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => Duration::ZERO,
    };
    (result, wall, cpu)
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * fraction) as usize]
}

/// A typical rule of group `index`: departments, cities, title prefixes, combined.
fn rule_of(index: usize) -> String {
    match index % 5 {
        0 => format!("user.department -eq \"Department {}\"", index % DEPARTMENTS),
        1 => format!(
            "user.city -in [\"City {}\", \"City {}\", \"City {}\"]",
            index % CITIES,
            (index + 7) % CITIES,
            (index + 13) % CITIES
        ),
        2 => format!(
            "user.department -eq \"Department {}\" -and user.jobTitle -startsWith \"Title {}\"",
            index % DEPARTMENTS,
            index % 10
        ),
        3 => format!(
            "(user.companyName -eq \"Company {}\" -or user.country -eq \"C{}\") -and user.accountEnabled -eq true",
            index % COMPANIES,
            index % 30
        ),
        _ => format!(
            "user.department -ne \"Department {}\" -and user.city -startsWith \"City {}\"",
            index % DEPARTMENTS,
            index % 20
        ),
    }
}

fn build(users: usize, groups: usize, with_rules: bool) -> (Engine, Vec<Uuid>, Vec<Uuid>) {
    let mut engine = Engine::new(TenantSettings::new(Uuid::from_u128(1), "Bench"));
    let at = Timestamp(0);
    let sku = Uuid::from_u128(0x5c0);
    let plan = Uuid::from_u128(0x91a);
    engine
        .apply_without_images(
            Command::AddSku(SkuDefinition {
                sku_id: sku,
                sku_part_number: "BENCH_SKU".to_string(),
                display_name: "Bench product".to_string(),
                applies_to: licensd_engine::AppliesTo::User,
                service_plans: vec![licensd_engine::ServicePlanDefinition {
                    service_plan_id: plan,
                    service_plan_name: "BENCH_PLAN".to_string(),
                    display_name: "Bench plan".to_string(),
                }],
                prepaid_units: users as u32 * 2,
                capability_status: licensd_engine::CapabilityStatus::Enabled,
            }),
            at,
        )
        .expect("sku");
    let mut group_ids = Vec::new();
    for index in 0..groups {
        let group_id = Uuid::from_u128(0x6000_0000 + index as u128);
        engine
            .apply_without_images(
                Command::CreateGroup {
                    group_id,
                    display_name: format!("Dynamic {index}"),
                },
                at,
            )
            .expect("group");
        if index < 10 {
            engine
                .apply_without_images(
                    Command::AssignGroupLicenses {
                        group_id,
                        add_licenses: vec![AssignedLicense::new(sku)],
                        remove_licenses: Vec::new(),
                    },
                    at,
                )
                .expect("license");
        }
        group_ids.push(group_id);
    }
    let mut user_ids = Vec::with_capacity(users);
    for index in 0..users {
        let user_id = Uuid::from_u128(0x1_0000_0000 + index as u128);
        let mut user = NewUser::new(user_id, &format!("user{index}@contoso.com"));
        let attributes = [
            (
                UserAttribute::DEPARTMENT,
                format!("Department {}", index % DEPARTMENTS),
            ),
            (UserAttribute::CITY, format!("City {}", (index / 7) % CITIES)),
            (
                UserAttribute::JOB_TITLE,
                format!("Title {} level", (index / 3) % TITLES),
            ),
            (
                UserAttribute::COMPANY_NAME,
                format!("Company {}", index % COMPANIES),
            ),
            (UserAttribute::COUNTRY, format!("C{}", (index / 11) % 30)),
        ];
        user.attributes = attributes.into_iter().collect();
        engine
            .apply_without_images(Command::CreateUser(user), at)
            .expect("user");
        user_ids.push(user_id);
    }
    if with_rules {
        for (index, group_id) in group_ids.iter().enumerate() {
            engine
                .apply_without_images(
                    Command::SetMembershipRule {
                        group_id: *group_id,
                        rule: Some(rule_of(index)),
                        processing_state: RuleProcessingState::On,
                    },
                    at,
                )
                .expect("rule");
        }
    }
    engine.process_all(Timestamp(1));
    (engine, user_ids, group_ids)
}

fn change_department(engine: &mut Engine, user_id: Uuid, department: usize, at: Timestamp) -> Duration {
    let started = Instant::now();
    engine
        .apply(
            Command::UpdateUser {
                user_id,
                changes: UserChanges {
                    attributes: [(
                        UserAttribute::DEPARTMENT,
                        Some(format!("Department {department}")),
                    )]
                    .into(),
                    ..UserChanges::default()
                },
            },
            at,
        )
        .expect("change");
    engine.process_all(at);
    started.elapsed()
}

fn main() {
    let benchmarking = std::env::args().any(|argument| argument == "--bench");
    let (users, groups) = if benchmarking {
        (
            env_or("LICENSD_BENCH_USERS", 1_000_000usize),
            env_or("LICENSD_BENCH_GROUPS", 500usize),
        )
    } else {
        (2_000, 20)
    };
    // The per-user evaluator (the evaluator before the sets) is compared when the tenant has at
    // most 200,000 users, or with LICENSD_BENCH_PER_USER=1 (at 1M users it takes minutes).
    let per_user_pass = env_or("LICENSD_BENCH_PER_USER", u8::from(users <= 200_000)) == 1;
    let ((mut engine, user_ids, group_ids), wall, cpu) = timed(|| build(users, groups, true));
    println!(
        "dynamic_groups: {users} users, {groups} dynamic groups (10 licensed), built in {wall:.1?} (CPU {cpu:.1?})"
    );

    // LICENSD_BENCH_ONLY_PREVIEW=1 skips parts 1 and 2 (to profile the preview alone).
    let only_preview = env_or("LICENSD_BENCH_ONLY_PREVIEW", 0u8) == 1;
    let runs = if benchmarking { 3 } else { 1 };
    if !only_preview {
        // 1. Every rule from scratch (each comparison once per distinct value, a set of users per
        // rule), next to the raw passes reading the same attributes, and to the per-user evaluator.
        let (mut scratch, mut scratch_cpu) = (Vec::new(), Vec::new());
        let (mut once, mut once_cpu) = (Vec::new(), Vec::new());
        let mut matches = 0;
        for _ in 0..runs {
            let (found, wall, cpu) = timed(|| engine.evaluate_every_rule_from_scratch());
            matches = found;
            scratch.push(wall);
            scratch_cpu.push(cpu);
            let (total, wall, cpu) = timed(|| engine.read_rule_attributes_once());
            black_box(total);
            once.push(wall);
            once_cpu.push(cpu);
        }
        let (total, raw, raw_cpu) = timed(|| engine.read_every_rule_attribute());
        black_box(total);
        println!(
            "every rule from scratch: median {:.3?} (CPU {:.3?}; {} rule evaluations, {matches} matches); \
             references: every user's rule attributes read once (lower-cased): median {:.3?} (CPU {:.3?}); \
             raw pass reading each rule's attributes for every user: {raw:.3?} (CPU {raw_cpu:.3?})",
            percentile(&mut scratch, 0.5),
            percentile(&mut scratch_cpu, 0.5),
            users * groups,
            percentile(&mut once, 0.5),
            percentile(&mut once_cpu, 0.5),
        );
        if per_user_pass {
            let (per_user_matches, wall, cpu) = timed(|| engine.evaluate_every_rule_per_user());
            assert_eq!(matches, per_user_matches, "both evaluators select the same users");
            println!(
                "per-user evaluator (every rule interpreted on every user, the same {per_user_matches} matches): \
                 {wall:.3?} (CPU {cpu:.3?})"
            );
        }

        // 2. One attribute change -> memberships -> licenses, next to a tenant without rules.
        let samples = if benchmarking { 2_000 } else { 50 };
        let mut with_rules = Vec::with_capacity(samples);
        for sample in 0..samples {
            let user_id = user_ids[(sample * 7919) % user_ids.len()];
            with_rules.push(change_department(
                &mut engine,
                user_id,
                sample % DEPARTMENTS,
                Timestamp(10 + sample as i64),
            ));
        }
        let (mut plain, plain_users, _) = build(users.min(200_000), groups, false);
        let mut without_rules = Vec::with_capacity(samples);
        for sample in 0..samples {
            let user_id = plain_users[(sample * 7919) % plain_users.len()];
            without_rules.push(change_department(
                &mut plain,
                user_id,
                sample % DEPARTMENTS,
                Timestamp(10 + sample as i64),
            ));
        }
        drop(plain);
        println!(
            "one department change, memberships and licenses settled (engine, {samples} changes): p50 {:.3?} \
             p99 {:.3?}; reference without rules ({} users): p50 {:.3?} p99 {:.3?}",
            percentile(&mut with_rules, 0.5),
            percentile(&mut with_rules, 0.99),
            users.min(200_000),
            percentile(&mut without_rules, 0.5),
            percentile(&mut without_rules, 0.99),
        );
    }

    // 3. Preview of a rule change moving about LICENSD_BENCH_PREVIEW_MOVES users (default
    // 100,000, at most every user): group 0 (licensed, `Department 0`) takes more departments.
    let wanted_moves = env_or("LICENSD_BENCH_PREVIEW_MOVES", 100_000usize).min(users);
    let per_department = (users / DEPARTMENTS).max(1);
    let departments = wanted_moves.div_ceil(per_department).clamp(1, DEPARTMENTS - 1);
    let group_id = group_ids[0];
    let widened: Vec<String> = (0..departments)
        .map(|department| format!("\"Department {}\"", department + 1))
        .collect();
    let change = Command::SetMembershipRule {
        group_id,
        rule: Some(format!("user.department -in [{}]", widened.join(", "))),
        processing_state: RuleProcessingState::On,
    };
    let (mut previews, mut previews_cpu) = (Vec::new(), Vec::new());
    let (mut clones, mut clones_cpu) = (Vec::new(), Vec::new());
    let mut report = None;
    for _ in 0..runs {
        let (preview, wall, cpu) = timed(|| {
            engine
                .what_if(
                    std::slice::from_ref(&change),
                    Timestamp(1_000_000),
                    WhatIfOptions::default(),
                )
                .expect("preview")
        });
        report = Some(preview);
        previews.push(wall);
        previews_cpu.push(cpu);
        let (copy, wall, cpu) = timed(|| engine.clone());
        drop(black_box(copy));
        clones.push(wall);
        clones_cpu.push(cpu);
    }
    let report = report.expect("a preview ran");
    let parts: Vec<String> = engine
        .copy_cost_by_part()
        .into_iter()
        .map(|(part, cost)| format!("{part} {cost:.1?}"))
        .collect();
    println!(
        "copying (and dropping) each part of the engine once: {}",
        parts.join("; ")
    );
    let moved: usize = report
        .memberships
        .iter()
        .map(|membership| membership.joined + membership.left)
        .sum();
    println!(
        "preview of a rule change moving {moved} users ({} users' licenses change): median {:.3?} (CPU {:.3?}); \
         reference engine clone: median {:.3?} (CPU {:.3?})",
        report.changed_users,
        percentile(&mut previews, 0.5),
        percentile(&mut previews_cpu, 0.5),
        percentile(&mut clones, 0.5),
        percentile(&mut clones_cpu, 0.5),
    );
}
