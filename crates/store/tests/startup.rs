//! The start-up path, [`Store::load_engine`], on both backends: it builds exactly the engine
//! that `Engine::from_image` builds from [`Store::load_tenant`], however the users are split
//! into chunks, and it refuses what the old path refuses — a row of a user that is not stored,
//! an image the engine cannot be rebuilt from — instead of dropping it or hanging. SQLite on a
//! temporary file, PostgreSQL at `LICENSD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own per test; when PostgreSQL
//! is unreachable its tests print why and pass unless `LICENSD_REQUIRE_POSTGRES=1`.

// Test code: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use licensd_engine::{Engine, Timestamp, Uuid};
use licensd_fixtures::generator::{build_engine, GeneratorConfig};
use licensd_store::{Backend, Store, StoreError, WriteBatch};
use support::TestDatabase;

on_both_backends!(
    load_engine_builds_the_engine_from_image_builds,
    a_row_of_a_user_that_is_not_stored_is_refused,
    an_image_the_engine_refuses_is_an_error_not_a_hang,
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

/// A single integer read directly from the backend.
fn integer(store: &mut Store, sql: &str) -> i64 {
    match store {
        Store::Sqlite(sqlite) => sqlite
            .connection()
            .query_row(sql, [], |row| row.get(0))
            .expect("SQLite integer"),
        Store::Postgres(postgres) => postgres
            .client()
            .query_one(sql, &[])
            .expect("PostgreSQL integer")
            .get(0),
    }
}

fn tenant_key(store: &mut Store, tenant_id: Uuid) -> i64 {
    let sql = match store.backend() {
        Backend::Sqlite => format!(
            "SELECT tenant_key FROM tenants WHERE tenant_id = X'{}'",
            tenant_id.simple()
        ),
        Backend::Postgres => format!("SELECT tenant_key FROM tenants WHERE tenant_id = '{tenant_id}'"),
    };
    integer(store, &sql)
}

/// A generated tenant of `users` users, processed half way (so it has states and a queue),
/// with a few users deleted (so the user keys have gaps), stored; returns the engine and the
/// stored version.
fn stored_tenant(store: &mut Store, users: usize) -> (Engine, u64) {
    let (mut engine, summary) = build_engine(&GeneratorConfig::new(users, 12, 8, 7)).expect("generate");
    let at = Timestamp(summary.last_timestamp.0 + 1000);
    engine.process_batch(engine.queued_users() / 2, at);
    let image = engine.to_image();
    let tenant_id = image.settings.tenant_id;
    store.create_tenant(&image.settings).expect("create the tenant");
    let mut version = store
        .write(tenant_id, &WriteBatch::from_image(image))
        .expect("store");
    let doomed: Vec<Uuid> = engine
        .to_image()
        .users
        .iter()
        .step_by(17)
        .take(5)
        .map(|user| user.id)
        .collect();
    for (index, user_id) in doomed.into_iter().enumerate() {
        let outcome = engine
            .apply(
                licensd_engine::Command::DeleteUser { user_id },
                Timestamp(at.0 + 10 + index as i64),
            )
            .expect("delete a user");
        let mut batch = WriteBatch::from_command_outcome(&outcome);
        batch.expected_version = Some(version);
        version = store.write(tenant_id, &batch).expect("write the deletion");
    }
    (engine, version)
}

fn load_engine_builds_the_engine_from_image_builds(database: TestDatabase) {
    let mut store = database.open();
    let (engine, version) = stored_tenant(&mut store, 300);
    let tenant_id = engine.settings().tenant_id;
    let expected = engine.to_image();
    assert!(
        expected.users.iter().any(|user| !user.states.is_empty()),
        "the tenant has states"
    );
    assert!(!expected.queue.is_empty(), "the tenant has a queue");
    let (image, image_version) = store.load_tenant(tenant_id).expect("load_tenant");
    assert_eq!(image_version, version);
    let old_path = Engine::from_image(image).expect("from_image").to_image();
    assert_eq!(old_path, expected, "the old path rebuilds the engine");
    // One user per chunk, chunks that do not divide the users, one chunk, the default.
    for chunk_users in [1, 7, 64, 1_000_000] {
        let mut phases = Vec::new();
        let (started, started_version) = store
            .load_engine_with_phases(tenant_id, chunk_users, &mut |phase| phases.push(phase))
            .expect("load_engine");
        assert_eq!(started_version, version, "version, chunks of {chunk_users}");
        assert_eq!(started.to_image(), old_path, "engine, chunks of {chunk_users}");
        assert_eq!(phases.last(), Some(&"engine"));
    }
    let (started, started_version) = store.load_engine(tenant_id).expect("load_engine");
    assert_eq!((started.to_image(), started_version), (old_path, version));
}

fn a_row_of_a_user_that_is_not_stored_is_refused(database: TestDatabase) {
    let mut store = database.open();
    let (engine, _) = stored_tenant(&mut store, 40);
    let tenant_id = engine.settings().tenant_id;
    let key = tenant_key(&mut store, tenant_id);
    // Below every user key, in a gap a deleted user left, and above every key: each range of
    // the chunked load must see it.
    let gap = integer(
        &mut store,
        &format!(
            "SELECT min(user_key) + 1 FROM users u WHERE tenant_key = {key} AND NOT EXISTS
             (SELECT 1 FROM users v WHERE v.tenant_key = {key} AND v.user_key = u.user_key + 1)"
        ),
    );
    let highest = integer(
        &mut store,
        &format!("SELECT max(user_key) FROM users WHERE tenant_key = {key}"),
    );
    assert!(gap < highest, "the deletions left a gap");
    for orphan in [-5_i64, gap, highest + 1_000] {
        execute(
            &mut store,
            &format!("INSERT INTO memberships (tenant_key, user_key, position, group_key, since) VALUES ({key}, {orphan}, 0, 1, 1)"),
        );
        for chunk_users in [1, 5, 1_000] {
            match store.load_engine_with_phases(tenant_id, chunk_users, &mut |_| {}) {
                Err(StoreError::Corrupt { what }) => assert!(
                    what.contains(&format!("user key {orphan}")),
                    "the error names the row: {what}"
                ),
                Err(other) => panic!("orphan {orphan}: unexpected error {other}"),
                Ok(_) => panic!("a membership of user key {orphan}, not stored, was loaded silently"),
            }
        }
        assert!(matches!(
            store.load_tenant(tenant_id),
            Err(StoreError::Corrupt { .. })
        ));
        execute(
            &mut store,
            &format!("DELETE FROM memberships WHERE tenant_key = {key} AND user_key = {orphan}"),
        );
    }
    store
        .load_engine(tenant_id)
        .expect("loads again once the rows are gone");
}

fn an_image_the_engine_refuses_is_an_error_not_a_hang(database: TestDatabase) {
    let mut store = database.open();
    let (engine, _) = stored_tenant(&mut store, 200);
    let tenant_id = engine.settings().tenant_id;
    let key = tenant_key(&mut store, tenant_id);
    // Two users whose principal names differ only in case: the store's unique index is case
    // sensitive, the engine's is not, so only the rebuild refuses it — early, while the reader
    // still has chunks to send.
    execute(
        &mut store,
        &format!(
            "UPDATE users SET user_principal_name = 'Twin@contoso.com' WHERE tenant_key = {key} AND user_key = 2;
             UPDATE users SET user_principal_name = 'twin@contoso.com' WHERE tenant_key = {key} AND user_key = 3"
        ),
    );
    let (image, _) = store.load_tenant(tenant_id).expect("the rows themselves decode");
    let refused = Engine::from_image(image).expect_err("from_image refuses the image");
    for chunk_users in [1, 1_000] {
        match store.load_engine_with_phases(tenant_id, chunk_users, &mut |_| {}) {
            Err(StoreError::Restore(error)) => assert_eq!(error, refused),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("an image from_image refuses was loaded"),
        }
    }
}
