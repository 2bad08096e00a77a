//! Nested groups benchmark (issue 17): a tenant whose licensed groups reach their users through
//! nesting (transitive licensing on) processed from scratch, next to the same tenant with the
//! memberships flattened (every user a direct member of every group it reaches, no nesting) built
//! and processed in the same run — the reference. Then one nesting edge change at a time: a leaf
//! group moved under another licensed root, applied and its users processed, timed together.
//!
//! Run with `cargo bench -p licensd-engine --bench nesting`. Sizes from `LICENSD_BENCH_USERS`
//! (default 100,000), `LICENSD_BENCH_LEAVES_PER_BRANCH` (10: 10 roots × 3 × 3 × 10 = 900 leaves,
//! 1,030 groups, depth 4) and `LICENSD_BENCH_EDGE_CHANGES` (200). Without `--bench` on the command
//! line it runs as a smoke test on 2,000 users.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use licensd_engine::{AssignedLicense, Command, Engine, NewUser, Timestamp, Uuid};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, EMS_E3, OFFICE_365_E3};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn group_id(index: usize) -> Uuid {
    Uuid::from_u128(0x9000_0000_0000_4000_8000_0000_0000_0000 | index as u128)
}

fn user_id(index: usize) -> Uuid {
    Uuid::from_u128(0xa000_0000_0000_4000_8000_0000_0000_0000 | index as u128)
}

const ROOTS: usize = 10;
const FANOUT: usize = 3;

/// The group tree: (parent, child) edges and the leaves. Roots are 0..10, then 30 level-2,
/// 90 level-3 and `leaves_per_branch` leaves under each level-3 group (depth 4).
fn tree(leaves_per_branch: usize) -> (usize, Vec<(usize, usize)>, Vec<usize>) {
    let mut edges = Vec::new();
    let mut next = ROOTS;
    let mut level: Vec<usize> = (0..ROOTS).collect();
    for fanout in [FANOUT, FANOUT, leaves_per_branch] {
        let mut below = Vec::new();
        for parent in &level {
            for _ in 0..fanout {
                edges.push((*parent, next));
                below.push(next);
                next += 1;
            }
        }
        level = below;
    }
    (next, edges, level)
}

fn license(sku_id: Uuid) -> Vec<AssignedLicense> {
    vec![AssignedLicense {
        sku_id,
        disabled_plans: Vec::new(),
    }]
}

/// The base tenant: seed products with seats for everyone, the groups, the users, roots
/// licensed (E3 on even roots, EMS on odd ones).
fn base(users: usize, groups: usize) -> SeedWorld {
    let seats = (users * 2) as u32;
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: seats,
        office_365_e3: seats,
        ems_e3: seats,
        workplace_analytics: seats,
    })
    .expect("seed world");
    let at = world.now;
    for index in 0..groups {
        world
            .engine
            .apply_without_images(
                Command::CreateGroup {
                    group_id: group_id(index),
                    display_name: format!("G{index}"),
                },
                at,
            )
            .expect("group");
    }
    for index in 0..users {
        world
            .engine
            .apply_without_images(
                Command::CreateUser(NewUser::new(user_id(index), &format!("u{index}@contoso.com"))),
                at,
            )
            .expect("user");
    }
    for root in 0..ROOTS {
        let sku = if root % 2 == 0 { OFFICE_365_E3 } else { EMS_E3 };
        world
            .engine
            .apply_without_images(
                Command::AssignGroupLicenses {
                    group_id: group_id(root),
                    add_licenses: license(sku),
                    remove_licenses: Vec::new(),
                },
                at,
            )
            .expect("license");
    }
    world
}

/// The leaves a user is a direct member of: one, and for one user in four a second leaf in
/// another root's tree (so two roots reach it).
fn user_leaves(user: usize, leaves: &[usize]) -> Vec<usize> {
    let first = leaves[user % leaves.len()];
    if user % 4 == 0 {
        vec![first, leaves[(user + leaves.len() / 2 + 7) % leaves.len()]]
    } else {
        vec![first]
    }
}

fn time_processing(engine: &mut Engine) -> (Duration, usize) {
    let started = Instant::now();
    let mut evaluated = 0;
    loop {
        let report = engine.process_batch(10_000, Timestamp(2_000_000_000_000));
        evaluated += report.evaluated_users;
        if report.remaining_users == 0 {
            break;
        }
    }
    (started.elapsed(), evaluated)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

fn main() {
    let full = std::env::args().any(|argument| argument == "--bench");
    let users = if full {
        env_or("LICENSD_BENCH_USERS", 100_000)
    } else {
        2_000
    };
    let leaves_per_branch = env_or("LICENSD_BENCH_LEAVES_PER_BRANCH", 10);
    let edge_changes = if full {
        env_or("LICENSD_BENCH_EDGE_CHANGES", 200)
    } else {
        20
    };
    let (groups, edges, leaves) = tree(leaves_per_branch);
    println!(
        "nested groups: {users} users, {groups} groups ({} leaves, depth 4), {} memberships",
        leaves.len(),
        (0..users)
            .map(|user| user_leaves(user, &leaves).len())
            .sum::<usize>()
    );

    // The nested tenant: edges, transitive licensing on, then the users in their leaves.
    let mut nested = base(users, groups);
    let at = nested.now;
    for (parent, child) in &edges {
        nested
            .engine
            .apply_without_images(
                Command::AddGroupMemberGroup {
                    group_id: group_id(*parent),
                    member_group_id: group_id(*child),
                },
                at,
            )
            .expect("edge");
    }
    nested
        .engine
        .apply_without_images(Command::SetTransitiveLicensing { enabled: true }, at)
        .expect("setting");
    for user in 0..users {
        for leaf in user_leaves(user, &leaves) {
            nested
                .engine
                .apply_without_images(
                    Command::AddGroupMember {
                        group_id: group_id(leaf),
                        user_id: user_id(user),
                    },
                    at,
                )
                .expect("member");
        }
    }

    // The reference: every user a direct member of each group it reaches, no nesting.
    let mut flat = base(users, groups);
    let mut flat_memberships = 0;
    for user in 0..users {
        for reached in nested
            .engine
            .user_transitive_member_of(user_id(user))
            .expect("user")
        {
            flat.engine
                .apply_without_images(
                    Command::AddGroupMember {
                        group_id: reached,
                        user_id: user_id(user),
                    },
                    at,
                )
                .expect("member");
            flat_memberships += 1;
        }
    }

    let (flat_time, flat_evaluated) = time_processing(&mut flat.engine);
    let (nested_time, nested_evaluated) = time_processing(&mut nested.engine);
    assert_eq!(flat_evaluated, nested_evaluated);
    for sku in [OFFICE_365_E3, EMS_E3] {
        assert_eq!(
            nested.engine.sku_usage(sku).expect("sku").consumed_units,
            flat.engine.sku_usage(sku).expect("sku").consumed_units,
            "the flattened tenant licenses the same users"
        );
    }
    println!(
        "processing from scratch: nested {:.0} ms, flattened reference ({flat_memberships} direct memberships) {:.0} ms: ratio {:.2} (target ≤ 2)",
        nested_time.as_secs_f64() * 1000.0,
        flat_time.as_secs_f64() * 1000.0,
        nested_time.as_secs_f64() / flat_time.as_secs_f64()
    );

    // One nesting edge change at a time: a leaf moves from its level-3 parent to the same-shaped
    // place under the next root (its users lose one root's product and gain the other's), its
    // users processed; apply + processing timed together.
    let mut latencies = Vec::with_capacity(edge_changes);
    let mut users_moved = 0;
    let parent_of = |leaf: usize| {
        edges
            .iter()
            .find(|(_, child)| *child == leaf)
            .map(|(parent, _)| *parent)
    };
    let level3: Vec<usize> = edges
        .iter()
        .filter(|(_, child)| leaves.contains(child))
        .map(|(parent, _)| *parent)
        .collect();
    for change in 0..edge_changes {
        let leaf = leaves[(change * 37) % leaves.len()];
        let from = nested
            .engine
            .group_member_of(group_id(leaf))
            .expect("leaf")
            .first()
            .copied()
            .or_else(|| parent_of(leaf).map(group_id))
            .expect("a parent");
        let to = group_id(level3[(change * 53 + level3.len() / 2) % level3.len()]);
        if to == from {
            continue;
        }
        let now = Timestamp(2_000_000_000_000 + change as i64);
        let started = Instant::now();
        nested
            .engine
            .apply(
                Command::RemoveGroupMemberGroup {
                    group_id: from,
                    member_group_id: group_id(leaf),
                },
                now,
            )
            .expect("remove edge");
        nested
            .engine
            .apply(
                Command::AddGroupMemberGroup {
                    group_id: to,
                    member_group_id: group_id(leaf),
                },
                now,
            )
            .expect("add edge");
        let report = nested.engine.process_all(now);
        latencies.push(started.elapsed());
        users_moved += report.evaluated_users;
    }
    latencies.sort();
    println!(
        "one nesting edge moved (remove + add, ~{} users re-evaluated each): median {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} changes",
        users_moved / latencies.len().max(1),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        latencies.len()
    );
}
