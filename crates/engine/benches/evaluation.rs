//! Evaluation benchmark of the licensing engine on a synthetic tenant (see
//! `licensd_fixtures::generator`): full evaluation of every user, one membership change at a time,
//! and memory per user, each printed with the figures it is judged against.
//!
//! Run with `cargo bench -p licensd-engine --bench evaluation`. The size comes from environment
//! variables: `LICENSD_BENCH_USERS` (default 1,000,000), `LICENSD_BENCH_GROUPS` (5,000),
//! `LICENSD_BENCH_SKUS` (50), `LICENSD_BENCH_GROUPS_PER_USER` (3.0), `LICENSD_BENCH_SEED` (1),
//! `LICENSD_BENCH_CHANGES` (10,000 membership changes) and `LICENSD_BENCH_BATCHED` (0 not to
//! time process_all, which keeps every change in one list, on a second, freshly built tenant).
//!
//! The full evaluation is printed next to a reference measured in the same run: a raw pass over
//! the same memberships that only computes each user's union of group plan sets, without any
//! rule. Machines are noisy; the ratio between the two is the figure to compare across runs.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use licensd_engine::catalog::Catalog;
use licensd_engine::{Command, LicenseErrorKind, PlanRef, PlanSet, Timestamp, Uuid};
use licensd_fixtures::generator::{build_engine, generate, GeneratorConfig};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// `VmHWM` (peak resident set) and `VmRSS` (current resident set) of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total_kib: u64 = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{model}, {cpus} CPUs available, {:.1} GiB RAM",
        total_kib as f64 / 1024.0 / 1024.0
    )
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// The memberships of the generated tenant (user → group indices) and every group's enabled
/// plans, rebuilt from the same command stream the engine received.
struct Reference {
    /// `offsets[u]..offsets[u + 1]` indexes `members` for user `u`.
    offsets: Vec<u32>,
    members: Vec<u32>,
    group_plans: Vec<PlanSet>,
    licensed_groups: Vec<usize>,
}

impl Reference {
    fn build(config: &GeneratorConfig) -> Reference {
        let mut plan_refs: HashMap<Uuid, PlanRef> = HashMap::new();
        let mut sku_plans: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        let mut group_index: HashMap<Uuid, u32> = HashMap::new();
        let mut user_index: HashMap<Uuid, u32> = HashMap::new();
        let mut group_plans = Vec::new();
        let mut licensed_groups = Vec::new();
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for command in generate(config) {
            match command {
                Command::AddSku(definition) => {
                    for plan in &definition.service_plans {
                        let next = PlanRef(plan_refs.len() as u16);
                        plan_refs.entry(plan.service_plan_id).or_insert(next);
                    }
                    sku_plans.insert(
                        definition.sku_id,
                        definition
                            .service_plans
                            .iter()
                            .map(|p| p.service_plan_id)
                            .collect(),
                    );
                }
                Command::CreateGroup { group_id, .. } => {
                    group_index.insert(group_id, group_plans.len() as u32);
                    group_plans.push(PlanSet::EMPTY);
                }
                Command::AssignGroupLicenses {
                    group_id,
                    add_licenses,
                    ..
                } => {
                    let index = group_index[&group_id] as usize;
                    for license in add_licenses {
                        for plan in &sku_plans[&license.sku_id] {
                            if !license.disabled_plans.contains(plan) {
                                group_plans[index].insert(plan_refs[plan]);
                            }
                        }
                    }
                    licensed_groups.push(index);
                }
                Command::CreateUser(user) => {
                    let next = user_index.len() as u32;
                    user_index.insert(user.id, next);
                }
                Command::AddGroupMember { group_id, user_id } => {
                    pairs.push((user_index[&user_id], group_index[&group_id]));
                }
                _ => {}
            }
        }
        pairs.sort_unstable();
        let mut offsets = Vec::with_capacity(user_index.len() + 1);
        let mut members = Vec::with_capacity(pairs.len());
        let mut cursor = 0;
        for user in 0..user_index.len() as u32 {
            offsets.push(members.len() as u32);
            while cursor < pairs.len() && pairs[cursor].0 == user {
                members.push(pairs[cursor].1);
                cursor += 1;
            }
        }
        offsets.push(members.len() as u32);
        Reference {
            offsets,
            members,
            group_plans,
            licensed_groups,
        }
    }

    /// One raw pass: every user's union of its groups' plan sets. Returns the total number of
    /// (user, plan) grants so that the work cannot be optimized away.
    fn pass(&self) -> u64 {
        let mut grants = 0u64;
        for user in 0..self.offsets.len() - 1 {
            let mut plans = PlanSet::EMPTY;
            for group in &self.members[self.offsets[user] as usize..self.offsets[user + 1] as usize] {
                plans.union_with(&self.group_plans[*group as usize]);
            }
            grants += black_box(&plans).len() as u64;
        }
        grants
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other run (`cargo test --benches`) is a smoke test on a
    // small tenant unless a size is given explicitly.
    let bench_mode = std::env::args().any(|argument| argument == "--bench");
    let default_users = if bench_mode { 1_000_000 } else { 2_000 };
    let users: usize = env_or("LICENSD_BENCH_USERS", default_users);
    let groups: usize = env_or("LICENSD_BENCH_GROUPS", if bench_mode { 5_000 } else { 200 });
    let skus: usize = env_or("LICENSD_BENCH_SKUS", 50);
    let groups_per_user: f64 = env_or("LICENSD_BENCH_GROUPS_PER_USER", 3.0);
    let seed: u64 = env_or("LICENSD_BENCH_SEED", 1);
    let change_count: usize = env_or("LICENSD_BENCH_CHANGES", if bench_mode { 10_000 } else { 200 });
    let batched: u32 = env_or("LICENSD_BENCH_BATCHED", 1);
    let mut config = GeneratorConfig::new(users, groups, skus, seed);
    config.mean_groups_per_user = groups_per_user;

    println!(
        "licensd-engine evaluation benchmark{}",
        if bench_mode {
            ""
        } else {
            " (smoke test: run with cargo bench for figures)"
        }
    );
    println!("machine: {}", machine());
    println!(
        "tenant: {users} users, {groups} groups, {skus} SKUs, {groups_per_user} groups per user (mean), \
         seed {seed}"
    );
    if Catalog::bundled().is_err() {
        eprintln!("the bundled catalog does not load");
        std::process::exit(1);
    }

    // ----- build and memory ---------------------------------------------------------------
    let (_, rss_before) = memory_kib();
    let started = Instant::now();
    let (mut engine, summary) = match build_engine(&config) {
        Ok(built) => built,
        Err(error) => {
            eprintln!("building the tenant failed: {error}");
            std::process::exit(1);
        }
    };
    let build_time = started.elapsed();
    let (hwm_built, rss_built) = memory_kib();
    println!(
        "build: {} commands in {:.2} s ({} memberships, {} licensed groups, {} direct licenses)",
        summary.commands,
        build_time.as_secs_f64(),
        summary.memberships,
        summary.licensed_groups,
        summary.direct_assignments
    );

    // ----- full evaluation ------------------------------------------------------------------
    let at = Timestamp(summary.last_timestamp.0 + 1);
    // As `licensd serve` runs it: bounded batches, each batch's changes handed on and dropped.
    let started = Instant::now();
    let mut state_changes = 0;
    let mut evaluated = 0;
    loop {
        let report = engine.process_batch(10_000, at);
        state_changes += report.changes.len();
        evaluated += report.evaluated_users;
        if report.remaining_users == 0 {
            break;
        }
    }
    let evaluation = started.elapsed();
    let drop_time = Duration::ZERO;
    let (hwm_evaluated, rss_evaluated) = memory_kib();
    let overview = engine.tenant_overview();

    let scarce: Vec<String> = summary
        .skus
        .iter()
        .filter(|sku| sku.scarce)
        .filter_map(|sku| {
            let usage = engine.sku_usage(sku.sku_id).ok()?;
            Some(format!(
                "{} {}/{} seats used, {} waiting",
                usage.sku_part_number, usage.consumed_units, usage.prepaid_units, usage.waiting_users
            ))
        })
        .collect();

    // ----- reference pass over the same memberships ----------------------------------------
    let reference = Reference::build(&config);
    let mut reference_times = Vec::new();
    let mut grants = 0;
    for _ in 0..7 {
        let started = Instant::now();
        grants = black_box(reference.pass());
        reference_times.push(started.elapsed());
    }
    reference_times.sort_unstable();
    let reference_time = reference_times[reference_times.len() / 2];

    println!();
    println!("full evaluation (process_batch of 10,000 until the queue is empty, single thread)");
    println!(
        "  evaluated {evaluated} users in {:.3} s = {:.2} us/user; {state_changes} state changes returned{}",
        evaluation.as_secs_f64(),
        micros(evaluation) / evaluated.max(1) as f64,
        if drop_time.is_zero() { "" } else { " (and dropped)" }
    );
    println!(
        "  reference (raw union of group plan sets, median of 7): {:.4} s ({grants} user-plan grants)",
        reference_time.as_secs_f64()
    );
    println!(
        "  ratio evaluation / reference: {:.1}x",
        evaluation.as_secs_f64() / reference_time.as_secs_f64().max(1e-9)
    );
    let kinds: Vec<String> = LicenseErrorKind::ALL
        .iter()
        .map(|kind| {
            format!(
                "{}={}",
                kind.as_str(),
                overview.errors_by_kind.get(kind).unwrap_or(&0)
            )
        })
        .collect();
    println!(
        "  outcome: {} users with errors, {} groups with errors; errors by kind: {}",
        overview.users_with_errors,
        overview.groups_with_errors,
        kinds.join(", ")
    );

    println!(
        "  {} scarce products, e.g. {}",
        scarce.len(),
        scarce.iter().take(4).cloned().collect::<Vec<_>>().join("; ")
    );

    // ----- one membership change at a time --------------------------------------------------
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x00c4_a46e);
    let warm_up = change_count / 20;
    let mut add_times = Vec::with_capacity(change_count);
    let mut added = Vec::with_capacity(change_count);
    let mut evaluated_by_changes = 0;
    let mut now = at.0;
    while add_times.len() < change_count && !reference.licensed_groups.is_empty() && users > 0 {
        let user = config.user_id(rng.random_range(0..users));
        let group =
            config.group_id(reference.licensed_groups[rng.random_range(0..reference.licensed_groups.len())]);
        now += 1;
        let started = Instant::now();
        let accepted = engine.apply(
            Command::AddGroupMember {
                group_id: group,
                user_id: user,
            },
            Timestamp(now),
        );
        if accepted.is_err() {
            continue;
        }
        let report = engine.process_batch(1, Timestamp(now));
        let elapsed = started.elapsed();
        evaluated_by_changes += report.evaluated_users;
        drop(report);
        added.push((group, user));
        if added.len() > warm_up {
            add_times.push(elapsed);
        }
    }
    let mut remove_times = Vec::with_capacity(added.len());
    for (group, user) in added.iter().rev() {
        now += 1;
        let started = Instant::now();
        let accepted = engine.apply(
            Command::RemoveGroupMember {
                group_id: *group,
                user_id: *user,
            },
            Timestamp(now),
        );
        let report = engine.process_batch(1, Timestamp(now));
        let elapsed = started.elapsed();
        drop(report);
        if accepted.is_ok() {
            remove_times.push(elapsed);
        }
    }
    add_times.sort_unstable();
    remove_times.sort_unstable();
    println!();
    println!(
        "one membership change (AddGroupMember to a licensed group + process_batch(1)), {} changes \
         after {warm_up} warm-up, {evaluated_by_changes} users evaluated",
        add_times.len()
    );
    println!(
        "  add:    median {:.2} us, p90 {:.2} us, p99 {:.2} us, max {:.2} us",
        micros(percentile(&add_times, 0.5)),
        micros(percentile(&add_times, 0.9)),
        micros(percentile(&add_times, 0.99)),
        micros(percentile(&add_times, 1.0))
    );
    println!(
        "  remove: median {:.2} us, p90 {:.2} us, p99 {:.2} us, max {:.2} us ({} changes)",
        micros(percentile(&remove_times, 0.5)),
        micros(percentile(&remove_times, 0.9)),
        micros(percentile(&remove_times, 0.99)),
        micros(percentile(&remove_times, 1.0)),
        remove_times.len()
    );

    // ----- memory ---------------------------------------------------------------------------
    println!();
    println!(
        "memory (VmRSS / VmHWM from /proc/self/status); size of StateRecord {} B, StateChange {} B, \
         PlanSet {} B",
        std::mem::size_of::<licensd_engine::StateRecord>(),
        std::mem::size_of::<licensd_engine::StateChange>(),
        std::mem::size_of::<PlanSet>()
    );
    println!(
        "  before build: RSS {:.1} MiB; after build: RSS {:.1} MiB, peak {:.1} MiB; after evaluation: \
         RSS {:.1} MiB, peak {:.1} MiB",
        mib(rss_before),
        mib(rss_built),
        mib(hwm_built),
        mib(rss_evaluated),
        mib(hwm_evaluated)
    );
    let per_user = |kib: u64| (kib.saturating_sub(rss_before) as f64 * 1024.0) / users.max(1) as f64;
    println!(
        "  bytes per user: {:.0} B after build (queued, no states), {:.0} B after evaluation (states), \
         {:.0} B at the peak",
        per_user(rss_built),
        per_user(rss_evaluated),
        per_user(hwm_evaluated)
    );
    drop(engine);

    // ----- optional: everything in one call, every change kept in one list ------------------
    if batched == 1 {
        // Reset the peak so the figure below is this run's own.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let (mut engine, summary) = match build_engine(&config) {
            Ok(built) => built,
            Err(error) => {
                eprintln!("building the tenant failed: {error}");
                std::process::exit(1);
            }
        };
        let at = Timestamp(summary.last_timestamp.0 + 1);
        let started = Instant::now();
        let report = engine.process_all(at);
        let elapsed = started.elapsed();
        let evaluated = report.evaluated_users;
        let changes = report.changes.len();
        let (hwm, _) = memory_kib();
        drop(report);
        println!();
        println!(
            "full evaluation in one process_all call (all {changes} changes kept in one list): {evaluated} \
             users in {:.3} s = {:.2} us/user, ratio {:.1}x; peak RSS {:.1} MiB",
            elapsed.as_secs_f64(),
            micros(elapsed) / evaluated.max(1) as f64,
            elapsed.as_secs_f64() / reference_time.as_secs_f64().max(1e-9),
            mib(hwm)
        );
    }
}
