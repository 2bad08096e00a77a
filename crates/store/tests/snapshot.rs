//! Persisted engine snapshots, on both backends: a start from the stored snapshot plus the
//! change log since ([`Store::start_engine`]) builds exactly the engine a full load builds —
//! with the snapshot current, older than several writes of every kind, or taken at random points
//! of random histories — and a snapshot that cannot be used (damaged, of another format, from a
//! future version, older than the log reaches) is ignored for the full load, saying why. SQLite
//! on a temporary file, PostgreSQL at `LICENSD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own per test; when PostgreSQL
//! is unreachable its tests print why and pass unless `LICENSD_REQUIRE_POSTGRES=1`.

// Test code: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use licensd_engine::image::TenantImage;
use licensd_engine::{AssignedLicense, Command, Engine, Timestamp, Uuid};
use licensd_fixtures::generator::{build_engine, GeneratorConfig};
use licensd_store::snapshot::{self, SNAPSHOT_FORMAT};
use licensd_store::{Backend, StartSource, Store, WriteBatch};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::TestDatabase;

on_both_backends!(
    a_start_from_a_snapshot_equals_a_full_load,
    a_snapshot_older_than_several_writes_is_caught_up_through_the_log,
    a_snapshot_that_cannot_be_used_falls_back_to_the_full_load,
    a_snapshot_older_than_the_log_reaches_falls_back_to_the_full_load,
    a_snapshot_too_far_behind_the_tenant_falls_back_to_the_full_load,
    an_older_snapshot_never_replaces_a_newer_one,
    snapshots_taken_anywhere_in_random_histories_start_the_same_engine,
);

/// Runs statements directly on the backend, to tamper with rows.
fn execute(store: &mut Store, sql: &str) {
    match store {
        Store::Sqlite(sqlite) => sqlite.connection().execute_batch(sql).expect("SQLite statement"),
        Store::Postgres(postgres) => postgres
            .client()
            .batch_execute(sql)
            .expect("PostgreSQL statement"),
    }
}

fn full_load(store: &mut Store, tenant_id: Uuid) -> (TenantImage, u64) {
    let (image, version) = store.load_tenant(tenant_id).expect("load the tenant");
    (
        Engine::from_image(image)
            .expect("the stored tenant loads")
            .to_image(),
        version,
    )
}

/// Starts the tenant and checks the engine and version against a full load; returns the source.
fn start_and_compare(store: &mut Store, tenant_id: Uuid) -> StartSource {
    let started = store.start_engine(tenant_id).expect("start the engine");
    let (expected, version) = full_load(store, tenant_id);
    assert_eq!(started.version, version, "version ({:?})", started.source);
    assert_eq!(
        started.engine.to_image(),
        expected,
        "engine ({:?})",
        started.source
    );
    started.source
}

/// A generated tenant of `users` users, processed half way (so it has states, causes and a
/// queue), stored; returns the engine, the stored version and the time of its last command.
fn stored_tenant(store: &mut Store, users: usize, seed: u64) -> (Engine, u64, Timestamp) {
    let (mut engine, summary) = build_engine(&GeneratorConfig::new(users, 12, 8, seed)).expect("generate");
    let at = Timestamp(summary.last_timestamp.0 + 1000);
    engine.process_batch(engine.queued_users() / 2, at);
    let image = engine.to_image();
    let tenant_id = image.settings.tenant_id;
    store.create_tenant(&image.settings).expect("create the tenant");
    let version = store
        .write(tenant_id, &WriteBatch::from_image(image))
        .expect("store");
    (engine, version, at)
}

fn write_snapshot(store: &mut Store, engine: &Engine, version: u64) {
    let blob = snapshot::encode(engine).expect("encode");
    assert!(store
        .write_engine_snapshot(engine.settings().tenant_id, version, &blob)
        .expect("write the snapshot"));
}

/// Applies `command` to the engine and writes it; returns the new version.
fn command(store: &mut Store, engine: &mut Engine, version: u64, command: Command, at: Timestamp) -> u64 {
    let outcome = engine.apply(command, at).expect("the command is accepted");
    let mut batch = WriteBatch::from_command_outcome(&outcome);
    batch.expected_version = Some(version);
    store
        .write(engine.settings().tenant_id, &batch)
        .expect("write the command")
}

/// Processes up to `users` queued users and writes the step; returns the new version.
fn process(store: &mut Store, engine: &mut Engine, version: u64, users: usize, at: Timestamp) -> u64 {
    let report = engine.process_batch_with_images(users, at);
    let mut batch = WriteBatch::from_process_report(report);
    batch.expected_version = Some(version);
    store
        .write(engine.settings().tenant_id, &batch)
        .expect("write the processing step")
}

fn a_start_from_a_snapshot_equals_a_full_load(database: TestDatabase) {
    let mut store = database.open();
    let (engine, version, _) = stored_tenant(&mut store, 300, 7);
    let tenant_id = engine.settings().tenant_id;
    // Without a snapshot: the full load, and no reason to report.
    assert_eq!(
        start_and_compare(&mut store, tenant_id),
        StartSource::FullLoad { fallback: None }
    );
    assert_eq!(store.engine_snapshot_version(tenant_id).expect("read"), None);
    let image = engine.to_image();
    assert!(image
        .users
        .iter()
        .any(|user| user.states.iter().any(|state| state.cause.is_some())));
    assert!(!image.queue.is_empty());
    // The blob restores the engine it was made from.
    let blob = snapshot::encode(&engine).expect("encode");
    assert_eq!(snapshot::restore(&blob).expect("restore").to_image(), image);
    write_snapshot(&mut store, &engine, version);
    assert_eq!(
        store.engine_snapshot_version(tenant_id).expect("read"),
        Some(version)
    );
    assert_eq!(
        start_and_compare(&mut store, tenant_id),
        StartSource::Snapshot {
            snapshot_version: version,
            caught_up: false
        }
    );
}

fn a_snapshot_older_than_several_writes_is_caught_up_through_the_log(database: TestDatabase) {
    let mut store = database.open();
    let (mut engine, mut version, mut at) = stored_tenant(&mut store, 200, 3);
    let tenant_id = engine.settings().tenant_id;
    write_snapshot(&mut store, &engine, version);
    let snapshot_version = version;
    let image = engine.to_image();
    let users: Vec<Uuid> = image.users.iter().map(|user| user.id).collect();
    let groups: Vec<Uuid> = image.groups.iter().map(|group| group.id).collect();
    let sku = image.skus[0].sku_id;
    let new_group = Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0001);
    let new_user = Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0002);
    let next = |at: &mut Timestamp| {
        at.0 += 1000;
        *at
    };
    let commands = vec![
        Command::CreateGroup {
            group_id: new_group,
            display_name: "Snapshot group".into(),
        },
        Command::AssignGroupLicenses {
            group_id: new_group,
            add_licenses: vec![AssignedLicense::new(sku)],
            remove_licenses: vec![],
        },
        Command::CreateUser(licensd_engine::NewUser::new(
            new_user,
            "snapshot.user@contoso.com",
        )),
        Command::AddGroupMember {
            group_id: new_group,
            user_id: new_user,
        },
        Command::AddGroupMember {
            group_id: new_group,
            user_id: users[3],
        },
        Command::RemoveGroupMember {
            group_id: image.users[5]
                .memberships
                .first()
                .map_or(groups[0], |m| m.group_id),
            user_id: users[5],
        },
        Command::DeleteUser { user_id: users[7] },
        Command::DeleteGroup {
            group_id: image
                .groups
                .iter()
                .find(|group| group.licenses.is_empty())
                .expect("an unlicensed group")
                .id,
        },
        Command::SetPrepaidUnits {
            sku_id: sku,
            prepaid_units: 1,
        },
        Command::SetDirectoryAttributes {
            object_id: users[9],
            attributes: Some("{\"externalId\":\"9\"}".into()),
        },
    ];
    for (index, each) in commands.into_iter().enumerate() {
        let when = next(&mut at);
        version = command(&mut store, &mut engine, version, each, when);
        if index % 3 == 2 {
            let when = next(&mut at);
            version = process(&mut store, &mut engine, version, 25, when);
        }
    }
    let when = next(&mut at);
    version = process(&mut store, &mut engine, version, usize::MAX, when);
    assert!(
        version > snapshot_version + 10,
        "several writes since the snapshot"
    );
    assert_eq!(
        start_and_compare(&mut store, tenant_id),
        StartSource::Snapshot {
            snapshot_version,
            caught_up: true
        }
    );
    // The started engine is the one that wrote them.
    let started = store.start_engine(tenant_id).expect("start");
    assert_eq!(started.engine.to_image(), engine.to_image());
    assert_eq!(started.version, version);
}

fn fallback_reason(source: StartSource) -> String {
    match source {
        StartSource::FullLoad {
            fallback: Some(reason),
        } => reason,
        other => panic!("expected a full load with a reason, got {other:?}"),
    }
}

fn a_snapshot_that_cannot_be_used_falls_back_to_the_full_load(database: TestDatabase) {
    let mut store = database.open();
    let (engine, version, _) = stored_tenant(&mut store, 120, 11);
    let tenant_id = engine.settings().tenant_id;
    let blob = snapshot::encode(&engine).expect("encode");
    let tampered = |change: &dyn Fn(&mut Vec<u8>)| {
        let mut copy = blob.clone();
        change(&mut copy);
        copy
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a byte flipped in the middle",
            tampered(&|bytes| {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x40;
            }),
            "checksum",
        ),
        (
            "cut short",
            tampered(&|bytes| bytes.truncate(bytes.len() - 7)),
            "checksum",
        ),
        ("no magic number", tampered(&|bytes| bytes[0] = b'X'), "magic"),
        (
            "an older format",
            tampered(&|bytes| bytes[8..12].copy_from_slice(&(SNAPSHOT_FORMAT - 1).to_le_bytes())),
            "format",
        ),
        (
            "another release",
            tampered(&|bytes| {
                let length = usize::from(bytes[12]);
                bytes[13 + length - 1] ^= 1;
            }),
            "written by licensd-store",
        ),
        ("empty", Vec::new(), "magic"),
    ];
    for (what, bytes, expected) in cases {
        execute(&mut store, "DELETE FROM engine_snapshots");
        assert!(store
            .write_engine_snapshot(tenant_id, version, &bytes)
            .expect("write"));
        let reason = fallback_reason(start_and_compare(&mut store, tenant_id));
        assert!(
            reason.contains(expected),
            "{what}: the reason says what is wrong: {reason}"
        );
    }
    // A blob that is fine but recorded under another format.
    execute(&mut store, "DELETE FROM engine_snapshots");
    write_snapshot(&mut store, &engine, version);
    execute(&mut store, "UPDATE engine_snapshots SET format = format + 1");
    let reason = fallback_reason(start_and_compare(&mut store, tenant_id));
    assert!(reason.contains("format"), "{reason}");
    // A snapshot claiming a version the tenant has not reached (a database restored from an
    // older backup): the log cannot bring it back.
    execute(&mut store, "DELETE FROM engine_snapshots");
    write_snapshot(&mut store, &engine, version + 5);
    let reason = fallback_reason(start_and_compare(&mut store, tenant_id));
    assert!(reason.contains("snapshot's version"), "{reason}");
}

fn a_snapshot_older_than_the_log_reaches_falls_back_to_the_full_load(database: TestDatabase) {
    let mut store = database.open();
    let (mut engine, mut version, mut at) = stored_tenant(&mut store, 80, 5);
    let tenant_id = engine.settings().tenant_id;
    write_snapshot(&mut store, &engine, version);
    let snapshot_version = version;
    for _ in 0..3 {
        at.0 += 1000;
        version = process(&mut store, &mut engine, version, 5, at);
    }
    // The log loses its oldest records since the snapshot (as a compaction would).
    let tenant_key = match store.backend() {
        Backend::Sqlite => format!(
            "(SELECT tenant_key FROM tenants WHERE tenant_id = X'{}')",
            tenant_id.simple()
        ),
        Backend::Postgres => format!("(SELECT tenant_key FROM tenants WHERE tenant_id = '{tenant_id}')"),
    };
    execute(
        &mut store,
        &format!(
            "DELETE FROM tenant_changes WHERE tenant_key = {tenant_key} AND version = {}",
            snapshot_version + 1
        ),
    );
    let reason = fallback_reason(start_and_compare(&mut store, tenant_id));
    assert!(
        reason.contains(&format!("snapshot's version {snapshot_version}")),
        "{reason}"
    );
}

/// A snapshot more versions behind than a start catches up is not read: the full load, saying
/// so; within the limit it is used.
fn a_snapshot_too_far_behind_the_tenant_falls_back_to_the_full_load(database: TestDatabase) {
    let mut store = database.open();
    let (mut engine, mut version, mut at) = stored_tenant(&mut store, 80, 13);
    let tenant_id = engine.settings().tenant_id;
    write_snapshot(&mut store, &engine, version);
    let snapshot_version = version;
    for _ in 0..4 {
        at.0 += 1000;
        version = process(&mut store, &mut engine, version, 5, at);
    }
    let behind = version - snapshot_version;
    assert!(behind >= 4, "{behind} versions since the snapshot");
    let started = store.start_engine_within(tenant_id, behind - 1).expect("start");
    let (expected, _) = full_load(&mut store, tenant_id);
    assert_eq!(started.engine.to_image(), expected);
    let reason = fallback_reason(started.source);
    assert!(reason.contains(&format!("{behind} versions behind")), "{reason}");
    let started = store.start_engine_within(tenant_id, behind).expect("start");
    assert_eq!(
        started.source,
        StartSource::Snapshot {
            snapshot_version,
            caught_up: true
        }
    );
    assert_eq!(started.engine.to_image(), expected);
}

fn an_older_snapshot_never_replaces_a_newer_one(database: TestDatabase) {
    let mut store = database.open();
    let (mut engine, version, mut at) = stored_tenant(&mut store, 40, 9);
    let tenant_id = engine.settings().tenant_id;
    let old_blob = snapshot::encode(&engine).expect("encode");
    at.0 += 1000;
    let newer = process(&mut store, &mut engine, version, 5, at);
    write_snapshot(&mut store, &engine, newer);
    assert!(!store
        .write_engine_snapshot(tenant_id, version, &old_blob)
        .expect("write"));
    assert_eq!(
        store.engine_snapshot_version(tenant_id).expect("read"),
        Some(newer)
    );
    assert_eq!(
        start_and_compare(&mut store, tenant_id),
        StartSource::Snapshot {
            snapshot_version: newer,
            caught_up: false
        }
    );
}

/// Random tenants and random histories of commands and processing steps, with a snapshot taken
/// at a random point: the start from it equals the full load at the end.
fn snapshots_taken_anywhere_in_random_histories_start_the_same_engine(database: TestDatabase) {
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        1u64..1_000,
        5usize..40,
        proptest::collection::vec((0usize..6, 0usize..64, 0usize..64), 0..24),
        0usize..24,
    );
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&strategy, |(seed, users, steps, snapshot_at)| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // A fresh database per case: one tenant id per generated tenant.
            let database = match database.url.starts_with("postgres") {
                true => TestDatabase::postgres(&format!("snapshot_random_{case}")).expect("PostgreSQL"),
                false => TestDatabase::sqlite(),
            };
            let mut store = database.open();
            let (mut engine, mut version, mut at) = stored_tenant(&mut store, users, seed);
            let tenant_id = engine.settings().tenant_id;
            let image = engine.to_image();
            let user_ids: Vec<Uuid> = image.users.iter().map(|user| user.id).collect();
            let group_ids: Vec<Uuid> = image.groups.iter().map(|group| group.id).collect();
            let sku_ids: Vec<Uuid> = image.skus.iter().map(|sku| sku.sku_id).collect();
            let mut snapshot_version = None;
            for (index, (kind, a, b)) in steps.iter().enumerate() {
                if index == snapshot_at {
                    write_snapshot(&mut store, &engine, version);
                    snapshot_version = Some(version);
                }
                at.0 += 1000;
                let user = user_ids[a % user_ids.len()];
                let group = group_ids[b % group_ids.len()];
                let sku = sku_ids[b % sku_ids.len()];
                let candidate = match kind {
                    0 => Command::AddGroupMember { group_id: group, user_id: user },
                    1 => Command::RemoveGroupMember { group_id: group, user_id: user },
                    2 => Command::AssignUserLicenses {
                        user_id: user,
                        add_licenses: vec![AssignedLicense::new(sku)],
                        remove_licenses: vec![],
                    },
                    3 => Command::SetPrepaidUnits { sku_id: sku, prepaid_units: (*a % 5) as u32 },
                    4 => Command::DeleteUser { user_id: user },
                    _ => {
                        version = process(&mut store, &mut engine, version, 1 + a % 10, at);
                        continue;
                    }
                };
                let Ok(outcome) = engine.apply(candidate, at) else { continue };
                let mut batch = WriteBatch::from_command_outcome(&outcome);
                batch.expected_version = Some(version);
                version = store.write(tenant_id, &batch).expect("write");
            }
            if snapshot_version.is_none() {
                write_snapshot(&mut store, &engine, version);
                snapshot_version = Some(version);
            }
            let source = start_and_compare(&mut store, tenant_id);
            prop_assert!(
                matches!(source, StartSource::Snapshot { snapshot_version: used, .. } if Some(used) == snapshot_version),
                "started from the snapshot: {:?}",
                source
            );
            Ok(())
        })
        .expect("every random history starts the same engine from its snapshot");
}

/// The encoding of a fixed tenant, pinned: when it changes (an engine image type or the
/// snapshot's own types changed), `SNAPSHOT_FORMAT` must be bumped with the new checksum here,
/// so that a binary never misreads a snapshot an older one wrote.
#[test]
fn the_snapshot_encoding_is_pinned() {
    let (mut engine, summary) = build_engine(&GeneratorConfig::new(60, 12, 8, 42)).expect("generate");
    engine.process_batch(40, Timestamp(summary.last_timestamp.0 + 1000));
    let blob = snapshot::encode(&engine).expect("encode");
    let length = usize::from(blob[12]);
    let body = &blob[13 + length + 4..];
    let checksum = crc32(body);
    assert_eq!(
        (SNAPSHOT_FORMAT, body.len(), checksum),
        (3, 28_147, 899_517_434),
        "the snapshot encoding changed: bump SNAPSHOT_FORMAT and pin the new length and checksum"
    );
}

/// CRC-32 (IEEE), bit by bit: the test does not trust the code it checks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
