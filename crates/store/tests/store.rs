//! The storage test suite, written once and run against both backends: SQLite on a temporary
//! file, and PostgreSQL at `LICENSD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a schema of its own so tests run in
//! parallel. When PostgreSQL is unreachable its tests print why and pass.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::time::Duration;

use licensd_engine::image::{CauseImage, TenantImage, UserImage};
use licensd_engine::{
    AssignedLicense, AssignmentSource, CapabilityStatus, Command, CommandOutcome, CountryCode, Engine,
    NewUser, ProxyAddress, RuleProcessingState, TenantSettings, Timestamp, UserAttribute, UserChanges, Uuid,
};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, EMS_E3, OFFICE_365_E1, OFFICE_365_E3};
use licensd_store::{
    AccessTokenRecord, AuditQuery, AuditRecord, Backend, ModifiedProperty, StateKey, Store, StoreError,
    WriteBatch, SCHEMA_VERSION,
};
use support::TestDatabase;

// ----- fixture --------------------------------------------------------------------------------

on_both_backends!(
    migrations_are_applied_once_and_a_newer_schema_is_refused,
    the_demo_tenant_round_trips_through_the_store,
    incremental_writes_keep_the_store_equal_to_the_engine,
    the_queue_is_first_in_first_out,
    deleting_users_and_groups_leaves_no_rows_behind,
    a_write_with_a_stale_version_writes_nothing,
    an_invalid_batch_writes_nothing,
    processing_leases_are_exclusive_and_expire,
    processing_instances_are_live_until_they_expire_or_withdraw,
    tenants_are_isolated,
    change_records_say_what_each_write_changed,
    bulk_state_writes_round_trip,
    access_tokens_belong_to_one_tenant_and_revocation_is_stored,
    audit_records_are_written_with_their_change_filtered_and_paged,
    a_tenant_created_with_its_contents_is_stored_whole_or_not_at_all,
    an_error_naming_a_deleted_group_survives_a_reload,
    a_user_recreated_through_another_connection_is_written_under_its_new_key,
    edits_of_a_user_write_only_the_rows_they_change,
    several_batches_share_one_transaction_all_or_nothing,
    merged_batches_write_what_their_commands_wrote,
    nested_groups_and_transitive_licensing_round_trip,
    user_attributes_round_trip_set_changed_and_cleared,
    dynamic_groups_round_trip_with_their_rules_and_memberships,
);

// ----- helpers --------------------------------------------------------------------------------

/// Runs a statement directly on the backend, for tests that inspect or tamper with rows.
fn execute(store: &mut Store, sql: &str) {
    match store {
        Store::Sqlite(sqlite) => {
            sqlite.connection().execute_batch(sql).expect("SQLite statement");
        }
        Store::Postgres(postgres) => {
            postgres
                .client()
                .batch_execute(sql)
                .expect("PostgreSQL statement");
        }
    }
}

/// A GUID as a SQL literal of the backend.
fn literal(store: &Store, id: Uuid) -> String {
    match store.backend() {
        Backend::Sqlite => format!("X'{}'", id.simple()),
        Backend::Postgres => format!("'{id}'::uuid"),
    }
}

/// `SELECT count(*) ...` (or any single integer) directly on the backend.
fn count(store: &mut Store, sql: &str) -> i64 {
    match store {
        Store::Sqlite(sqlite) => sqlite
            .connection()
            .query_row(sql, [], |row| row.get(0))
            .expect("SQLite count"),
        Store::Postgres(postgres) => postgres
            .client()
            .query_one(sql, &[])
            .expect("PostgreSQL count")
            .get(0),
    }
}

fn tenant_settings(tenant_id: Uuid, name: &str) -> TenantSettings {
    let mut settings = TenantSettings::new(tenant_id, name);
    settings.default_usage_location = Some(CountryCode::parse("US").expect("US"));
    settings
}

fn plain_user(id: Uuid, name: &str) -> UserImage {
    UserImage {
        id,
        user_principal_name: format!("{name}@contoso.com"),
        display_name: name.to_string(),
        usage_location: None,
        proxy_addresses: vec![ProxyAddress::parse(&format!("SMTP:{name}@contoso.com")).expect("address")],
        account_enabled: true,
        attributes: Default::default(),
        direct_licenses: Vec::new(),
        memberships: Vec::new(),
        states: Vec::new(),
    }
}

/// Compares two images part by part, so a failure names the part that differs.
fn assert_images_equal(actual: &TenantImage, expected: &TenantImage) {
    assert_eq!(actual.settings, expected.settings, "settings");
    assert_eq!(actual.clock, expected.clock, "clock");
    assert_eq!(actual.service_plans, expected.service_plans, "service plans");
    assert_eq!(actual.skus, expected.skus, "products");
    assert_eq!(actual.groups, expected.groups, "groups");
    assert_eq!(
        actual.users.iter().map(|user| user.id).collect::<Vec<_>>(),
        expected.users.iter().map(|user| user.id).collect::<Vec<_>>(),
        "user order"
    );
    for (actual_user, expected_user) in actual.users.iter().zip(&expected.users) {
        assert_eq!(
            actual_user, expected_user,
            "user {}",
            expected_user.user_principal_name
        );
    }
    assert_eq!(actual.queue, expected.queue, "queue");
    assert_eq!(actual, expected);
}

/// Loads the tenant, rebuilds an engine from it and checks that it is the engine's tenant.
fn assert_store_holds(store: &mut Store, engine: &Engine, version: u64) {
    let tenant_id = engine.settings().tenant_id;
    let (image, loaded_version) = store.load_tenant(tenant_id).expect("load the tenant");
    assert_eq!(loaded_version, version, "version");
    let expected = engine.to_image();
    assert_eq!(image.queue, expected.queue, "queue in the loaded image");
    let rebuilt = Engine::from_image(image).expect("the loaded image rebuilds an engine");
    assert_images_equal(&rebuilt.to_image(), &expected);
    assert_eq!(rebuilt.license_snapshot(), engine.license_snapshot());
    // The start-up path builds the same engine, whether the users come in one chunk or many.
    for chunk_users in [1, 3, usize::MAX] {
        let (started, started_version) = store
            .load_engine_with_phases(tenant_id, chunk_users, &mut |_| {})
            .expect("load the tenant into an engine");
        assert_eq!(started_version, version, "version of load_engine");
        assert_images_equal(&started.to_image(), &expected);
    }
    assert_eq!(store.queue(tenant_id).expect("queue"), engine.queued_user_ids());
    assert_eq!(
        store.queue_len(tenant_id).expect("queue length"),
        engine.queued_user_ids().len() as u64
    );
}

/// Stores a tenant's whole engine as it is now and returns the version.
fn store_engine(store: &mut Store, engine: &Engine) -> u64 {
    let image = engine.to_image();
    store.create_tenant(&image.settings).expect("create the tenant");
    store
        .write(image.settings.tenant_id, &WriteBatch::from_image(image))
        .expect("store the image")
}

// ----- cases ----------------------------------------------------------------------------------

fn migrations_are_applied_once_and_a_newer_schema_is_refused(database: TestDatabase) {
    let mut store = database.open();
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    drop(store);
    let mut store = database.open();
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    assert_eq!(
        count(&mut store, "SELECT count(*) FROM schema_migrations"),
        SCHEMA_VERSION as i64
    );
    if store.backend() == Backend::Sqlite {
        let Store::Sqlite(sqlite) = &mut store else {
            unreachable!("checked above")
        };
        let mode: String = sqlite
            .connection()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .expect("journal mode");
        assert_eq!(mode.to_lowercase(), "wal");
        let foreign_keys: i64 = sqlite
            .connection()
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .expect("foreign keys");
        assert_eq!(foreign_keys, 1);
    }
    let newer = SCHEMA_VERSION + 5;
    execute(
        &mut store,
        &format!("INSERT INTO schema_migrations (version, name) VALUES ({newer}, 'from the future')"),
    );
    drop(store);
    match Store::open(&database.url) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (newer, SCHEMA_VERSION));
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

fn the_demo_tenant_round_trips_through_the_store(database: TestDatabase) {
    let (mut world, directory) = SeedWorld::demo().expect("demo");
    // Leave users queued, so the queue is part of the round trip.
    world
        .apply(Command::ReprocessGroup {
            group_id: directory.mobility_ems,
        })
        .expect("reprocess");
    world.engine.process_batch(17, world.now);
    assert!(!world.engine.queued_user_ids().is_empty());
    let mut store = database.open();
    let version = store_engine(&mut store, &world.engine);
    assert_eq!(version, 1);
    let expected = world.engine.to_image();
    let (loaded, loaded_version) = store.load_tenant(expected.settings.tenant_id).expect("load");
    assert_eq!(loaded_version, 1);
    // Everything but the order of each user's states comes back exactly as written.
    let mut sorted_loaded = loaded.clone();
    let mut sorted_expected = expected.clone();
    for image in [&mut sorted_loaded, &mut sorted_expected] {
        for user in &mut image.users {
            user.states
                .sort_by_key(|state| (state.sku_id, state.assigned_by_group));
        }
    }
    assert_images_equal(&sorted_loaded, &sorted_expected);
    let rebuilt = Engine::from_image(loaded).expect("rebuild");
    assert_images_equal(&rebuilt.to_image(), &expected);
    assert_eq!(rebuilt.license_snapshot(), world.engine.license_snapshot());
    assert_eq!(rebuilt.tenant_overview(), world.engine.tenant_overview());
    assert_eq!(
        store.tenant_ids().expect("tenants"),
        vec![expected.settings.tenant_id]
    );
}

/// Applies one command to the world and writes what it changed.
fn apply_and_write(
    world: &mut SeedWorld,
    store: &mut Store,
    version: &mut u64,
    command: Command,
) -> CommandOutcome {
    let outcome = world.apply(command.clone()).expect("the command is accepted");
    let mut batch = WriteBatch::from_command_outcome(&outcome);
    batch.expected_version = Some(*version);
    *version = store
        .write(world.engine.settings().tenant_id, &batch)
        .unwrap_or_else(|error| panic!("writing {} failed: {error}", command.name()));
    assert_store_holds(store, &world.engine, *version);
    outcome
}

/// Processes in batches of `batch_size` users, writing each step, until the queue is empty or
/// `max_steps` steps ran. Returns how many users the steps queued again.
fn process_and_write(
    world: &mut SeedWorld,
    store: &mut Store,
    version: &mut u64,
    batch_size: usize,
    max_steps: usize,
) -> usize {
    let mut requeued = 0;
    for _ in 0..max_steps {
        if world.engine.queued_users() == 0 {
            break;
        }
        world.now = Timestamp(world.now.0 + 1000);
        let report = world.engine.process_batch_with_images(batch_size, world.now);
        requeued += report.requeued.len();
        let mut batch = WriteBatch::from_process_report(report);
        batch.expected_version = Some(*version);
        *version = store
            .write(world.engine.settings().tenant_id, &batch)
            .expect("write a processing step");
        assert_store_holds(store, &world.engine, *version);
    }
    requeued
}

fn incremental_writes_keep_the_store_equal_to_the_engine(database: TestDatabase) {
    let mut world = SeedWorld::new(SeedSeats {
        ems_e3: 3,
        ..SeedSeats::default()
    })
    .expect("seed world");
    let mut store = database.open();
    let mut version = store_engine(&mut store, &world.engine);
    assert_store_holds(&mut store, &world.engine, version);

    let mut users = Vec::new();
    for number in 1..=8 {
        let id = world.next_id();
        let mut user = NewUser::new(id, &format!("person{number}@contoso.com"));
        user.usage_location = match number {
            1 => None,
            8 => Some(CountryCode::parse("CU").expect("CU")),
            _ => Some(CountryCode::parse("US").expect("US")),
        };
        user.proxy_addresses =
            vec![ProxyAddress::parse(&format!("SMTP:person{number}@contoso.com")).expect("address")];
        apply_and_write(&mut world, &mut store, &mut version, Command::CreateUser(user));
        users.push(id);
    }
    let sales = world.next_id();
    let mobility = world.next_id();
    for (group_id, name) in [(sales, "Sales"), (mobility, "Mobility")] {
        apply_and_write(
            &mut world,
            &mut store,
            &mut version,
            Command::CreateGroup {
                group_id,
                display_name: name.to_string(),
            },
        );
    }
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::AssignGroupLicenses {
            group_id: sales,
            add_licenses: vec![AssignedLicense::new(OFFICE_365_E3)],
            remove_licenses: vec![],
        },
    );
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::AssignGroupLicenses {
            group_id: mobility,
            add_licenses: vec![AssignedLicense::new(EMS_E3)],
            remove_licenses: vec![],
        },
    );
    for user_id in &users[..6] {
        for group_id in [sales, mobility] {
            apply_and_write(
                &mut world,
                &mut store,
                &mut version,
                Command::AddGroupMember {
                    group_id,
                    user_id: *user_id,
                },
            );
        }
    }
    process_and_write(&mut world, &mut store, &mut version, 2, 100);
    // A direct license is applied at once.
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::AssignUserLicenses {
            user_id: users[6],
            add_licenses: vec![AssignedLicense::new(OFFICE_365_E1)],
            remove_licenses: vec![],
        },
    );
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::UpdateUser {
            user_id: users[2],
            changes: UserChanges {
                usage_location: Some(Some(CountryCode::parse("CU").expect("CU"))),
                proxy_addresses: Some(vec![
                    ProxyAddress::parse("SMTP:person3@contoso.com").expect("address"),
                    ProxyAddress::parse("smtp:third@contoso.com").expect("address"),
                ]),
                ..UserChanges::default()
            },
        },
    );
    // More seats: waiting users are handed a unit (self-healing queues them).
    let outcome = apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::SetPrepaidUnits {
            sku_id: EMS_E3,
            prepaid_units: 5,
        },
    );
    assert!(
        !outcome.newly_queued.is_empty(),
        "freed seats queue waiting users"
    );
    process_and_write(&mut world, &mut store, &mut version, 1, 100);
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::SetDefaultUsageLocation {
            usage_location: Some(CountryCode::parse("NL").expect("NL")),
        },
    );
    let teams = licensd_fixtures::seed_world::MICROSOFT_TEAMS_PLAN;
    let mut rules = world.engine.service_plan_rules(teams).expect("rules");
    rules.unavailable_in.push(CountryCode::parse("NL").expect("NL"));
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::SetServicePlanRules {
            service_plan_id: teams,
            rules,
        },
    );
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::SetCapabilityStatus {
            sku_id: OFFICE_365_E1,
            capability_status: CapabilityStatus::Warning,
        },
    );
    process_and_write(&mut world, &mut store, &mut version, 3, 100);
    // Two holders leave Mobility: processing frees their units and hands them to the users
    // still waiting, who are queued again within the same step.
    for user_id in [users[0], users[1]] {
        apply_and_write(
            &mut world,
            &mut store,
            &mut version,
            Command::RemoveGroupMember {
                group_id: mobility,
                user_id,
            },
        );
    }
    let requeued = process_and_write(&mut world, &mut store, &mut version, 1, 100);
    assert!(requeued > 0, "processing handed freed units to waiting users");
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::RemoveGroupMember {
            group_id: sales,
            user_id: users[0],
        },
    );
    let temporary = world.next_id();
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::CreateGroup {
            group_id: temporary,
            display_name: "Temporary".to_string(),
        },
    );
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::AddGroupMember {
            group_id: temporary,
            user_id: users[3],
        },
    );
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::DeleteGroup { group_id: temporary },
    );
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::DeleteUser { user_id: users[4] },
    );
    process_and_write(&mut world, &mut store, &mut version, 2, 100);
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::SetSelfHealing { enabled: false },
    );
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::ReprocessGroup { group_id: mobility },
    );
    // Stop half way: the rest of the queue must survive as it is.
    process_and_write(&mut world, &mut store, &mut version, 2, 1);
    assert!(world.engine.queued_users() > 0);
    let changes = store
        .changes_since(world.engine.settings().tenant_id, 0)
        .expect("changes");
    assert_eq!(changes.len() as u64, version);
}

fn the_queue_is_first_in_first_out(database: TestDatabase) {
    let mut store = database.open();
    let tenant_id = Uuid::from_u128(0x7e57_0001);
    store
        .create_tenant(&tenant_settings(tenant_id, "Queue"))
        .expect("tenant");
    let ids: Vec<Uuid> = (1..=5).map(|number| Uuid::from_u128(0x5000 + number)).collect();
    let users = ids
        .iter()
        .enumerate()
        .map(|(index, id)| plain_user(*id, &format!("queued{index}")))
        .collect();
    store
        .write(
            tenant_id,
            &WriteBatch {
                users,
                enqueue: vec![ids[2], ids[0], ids[1]],
                ..WriteBatch::default()
            },
        )
        .expect("first enqueue");
    assert_eq!(
        store.queue(tenant_id).expect("queue"),
        vec![ids[2], ids[0], ids[1]]
    );
    // A queued user keeps its place; duplicates in one batch make one entry.
    store
        .write(
            tenant_id,
            &WriteBatch {
                enqueue: vec![ids[0], ids[3], ids[3]],
                ..WriteBatch::default()
            },
        )
        .expect("second enqueue");
    assert_eq!(
        store.queue(tenant_id).expect("queue"),
        vec![ids[2], ids[0], ids[1], ids[3]]
    );
    // Dequeue happens before enqueue: a dequeued and re-enqueued user goes to the back.
    store
        .write(
            tenant_id,
            &WriteBatch {
                dequeue: vec![ids[0], ids[4]],
                enqueue: vec![ids[0]],
                ..WriteBatch::default()
            },
        )
        .expect("dequeue");
    assert_eq!(
        store.queue(tenant_id).expect("queue"),
        vec![ids[2], ids[1], ids[3], ids[0]]
    );
    assert_eq!(store.queue_len(tenant_id).expect("length"), 4);
    let (image, _) = store.load_tenant(tenant_id).expect("load");
    assert_eq!(image.queue, vec![ids[2], ids[1], ids[3], ids[0]]);
    // A queue entry needs a user.
    let error = store
        .write(
            tenant_id,
            &WriteBatch {
                enqueue: vec![Uuid::from_u128(0xdead)],
                ..WriteBatch::default()
            },
        )
        .expect_err("unknown user");
    assert!(matches!(error, StoreError::InvalidBatch { .. }), "{error}");
    assert_eq!(store.queue_len(tenant_id).expect("length"), 4);
}

fn deleting_users_and_groups_leaves_no_rows_behind(database: TestDatabase) {
    let (mut world, directory) = SeedWorld::demo().expect("demo");
    let mut store = database.open();
    let mut version = store_engine(&mut store, &world.engine);
    // User 1 has direct licenses, memberships and states; queue them so the queue entry goes too.
    let user = directory.users[0];
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::ReprocessUser { user_id: user },
    );
    let user_literal = literal(&store, user);
    let user_key = count(
        &mut store,
        &format!("SELECT user_key FROM users WHERE user_id = {user_literal}"),
    );
    for table in ["memberships", "direct_licenses", "license_states", "work_queue"] {
        let rows = count(
            &mut store,
            &format!("SELECT count(*) FROM {table} WHERE user_key = {user_key}"),
        );
        assert!(rows > 0, "user 1 has rows in {table}");
    }
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::DeleteUser { user_id: user },
    );
    for table in [
        "users",
        "memberships",
        "direct_licenses",
        "license_states",
        "work_queue",
    ] {
        let rows = count(
            &mut store,
            &format!("SELECT count(*) FROM {table} WHERE user_key = {user_key}"),
        );
        assert_eq!(rows, 0, "{table} still holds rows of the deleted user");
    }
    // A group without licenses and with members can be deleted; its memberships go with it.
    let group = world.next_id();
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::CreateGroup {
            group_id: group,
            display_name: "Book club".to_string(),
        },
    );
    for member in &directory.users[1..4] {
        apply_and_write(
            &mut world,
            &mut store,
            &mut version,
            Command::AddGroupMember {
                group_id: group,
                user_id: *member,
            },
        );
    }
    let group_literal = literal(&store, group);
    let group_key = count(
        &mut store,
        &format!("SELECT group_key FROM groups WHERE group_id = {group_literal}"),
    );
    assert_eq!(
        count(
            &mut store,
            &format!("SELECT count(*) FROM memberships WHERE group_key = {group_key}")
        ),
        3
    );
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::DeleteGroup { group_id: group },
    );
    for table in ["groups", "memberships", "group_licenses"] {
        let rows = count(
            &mut store,
            &format!("SELECT count(*) FROM {table} WHERE group_key = {group_key}"),
        );
        assert_eq!(rows, 0, "{table} still holds rows of the deleted group");
    }
    process_and_write(&mut world, &mut store, &mut version, 50, 100);
}

fn a_write_with_a_stale_version_writes_nothing(database: TestDatabase) {
    let mut store = database.open();
    let tenant_id = Uuid::from_u128(0x7e57_0002);
    store
        .create_tenant(&tenant_settings(tenant_id, "Conflicts"))
        .expect("tenant");
    let first = Uuid::from_u128(0x6001);
    let second = Uuid::from_u128(0x6002);
    let version = store
        .write(
            tenant_id,
            &WriteBatch {
                expected_version: Some(0),
                users: vec![plain_user(first, "first")],
                clock: Some(7),
                ..WriteBatch::default()
            },
        )
        .expect("first write");
    assert_eq!(version, 1);
    // Another instance still believes the tenant is at version 0.
    let error = store
        .write(
            tenant_id,
            &WriteBatch {
                expected_version: Some(0),
                users: vec![plain_user(second, "second")],
                enqueue: vec![second],
                clock: Some(8),
                ..WriteBatch::default()
            },
        )
        .expect_err("stale version");
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                expected: 0,
                found: 1
            }
        ),
        "{error}"
    );
    let (image, loaded_version) = store.load_tenant(tenant_id).expect("load");
    assert_eq!(loaded_version, 1);
    assert_eq!(image.clock, 7);
    assert_eq!(
        image.users.iter().map(|user| user.id).collect::<Vec<_>>(),
        vec![first]
    );
    assert!(image.queue.is_empty());
    assert_eq!(store.changes_since(tenant_id, 0).expect("changes").len(), 1);
    // Without an expected version the write goes through.
    assert_eq!(
        store
            .write(
                tenant_id,
                &WriteBatch {
                    users: vec![plain_user(second, "second")],
                    ..WriteBatch::default()
                },
            )
            .expect("unconditional write"),
        2
    );
}

fn an_invalid_batch_writes_nothing(database: TestDatabase) {
    let (world, directory) = SeedWorld::demo().expect("demo");
    let mut store = database.open();
    let version = store_engine(&mut store, &world.engine);
    let tenant_id = world.engine.settings().tenant_id;
    let mut with_states = world.engine.user_image(directory.users[0]).expect("user");
    assert!(!with_states.states.is_empty());
    with_states.display_name = "Changed".to_string();
    let error = store
        .write(
            tenant_id,
            &WriteBatch {
                users: vec![with_states],
                ..WriteBatch::default()
            },
        )
        .expect_err("states inside a user image");
    assert!(matches!(error, StoreError::InvalidBatch { .. }), "{error}");
    // A state naming a plan the tenant does not have fails the whole write, after other rows of
    // the same batch were already written inside the transaction.
    let mut state = world.engine.user_image(directory.users[1]).expect("user").states[0].clone();
    state.disabled_plans = state
        .disabled_plans
        .iter()
        .copied()
        .chain([Uuid::from_u128(0xbad)])
        .collect();
    let mut renamed = world.engine.user_image(directory.users[1]).expect("user");
    renamed.states.clear();
    renamed.display_name = "Renamed".to_string();
    let error = store
        .write(
            tenant_id,
            &WriteBatch {
                users: vec![renamed],
                state_upserts: vec![(directory.users[1], state)],
                ..WriteBatch::default()
            },
        )
        .expect_err("unknown plan");
    assert!(matches!(error, StoreError::InvalidBatch { .. }), "{error}");
    assert_store_holds(&mut store, &world.engine, version);
    let unknown = Uuid::from_u128(0x0bad_7e57);
    assert!(matches!(
        store.load_tenant(unknown),
        Err(StoreError::UnknownTenant { tenant_id }) if tenant_id == unknown
    ));
    assert!(matches!(
        store.create_tenant(world.engine.settings()),
        Err(StoreError::TenantExists { .. })
    ));
}

fn processing_instances_are_live_until_they_expire_or_withdraw(database: TestDatabase) {
    let mut first = database.open();
    let mut second = database.open();
    assert!(first.live_processing_instances().expect("live").is_empty());
    first
        .announce_processing_instance("instance-b", Duration::from_secs(60))
        .expect("announce b");
    second
        .announce_processing_instance("instance-a", Duration::from_millis(300))
        .expect("announce a");
    // Every connection sees the same list, in id order.
    for store in [&mut first, &mut second] {
        assert_eq!(
            store.live_processing_instances().expect("live"),
            vec!["instance-a".to_string(), "instance-b".to_string()]
        );
    }
    // Renewing is an upsert, not a second row.
    first
        .announce_processing_instance("instance-b", Duration::from_secs(60))
        .expect("renew b");
    // a stops renewing: it drops out when its announcement expires.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        second.live_processing_instances().expect("live"),
        vec!["instance-b".to_string()]
    );
    // b stops: it withdraws at once.
    first
        .withdraw_processing_instance("instance-b")
        .expect("withdraw");
    assert!(second.live_processing_instances().expect("live").is_empty());
}

fn processing_leases_are_exclusive_and_expire(database: TestDatabase) {
    let mut first = database.open();
    let mut second = database.open();
    let tenant_id = Uuid::from_u128(0x7e57_0003);
    first
        .create_tenant(&tenant_settings(tenant_id, "Leases"))
        .expect("tenant");
    let long = Duration::from_secs(60);
    assert_eq!(first.processing_lease_holder(tenant_id).expect("holder"), None);
    assert!(first
        .try_acquire_processing_lease(tenant_id, "instance-a", long)
        .expect("acquire"));
    assert!(!second
        .try_acquire_processing_lease(tenant_id, "instance-b", long)
        .expect("acquire"));
    assert!(first
        .try_acquire_processing_lease(tenant_id, "instance-a", long)
        .expect("re-acquire extends"));
    assert!(first
        .renew_processing_lease(tenant_id, "instance-a", long)
        .expect("renew"));
    assert!(!second
        .renew_processing_lease(tenant_id, "instance-b", long)
        .expect("renew by a non-holder"));
    assert_eq!(
        second.processing_lease_holder(tenant_id).expect("holder"),
        Some("instance-a".to_string())
    );
    // Releasing lets the other instance in at once.
    second
        .release_processing_lease(tenant_id, "instance-b")
        .expect("release by a non-holder does nothing");
    assert!(!second
        .try_acquire_processing_lease(tenant_id, "instance-b", long)
        .expect("still held"));
    first
        .release_processing_lease(tenant_id, "instance-a")
        .expect("release");
    assert!(second
        .try_acquire_processing_lease(tenant_id, "instance-b", Duration::from_millis(200))
        .expect("acquire after release"));
    // Instance b dies: its short lease expires and instance a takes over.
    assert!(!first
        .try_acquire_processing_lease(tenant_id, "instance-a", long)
        .expect("not expired yet"));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(first.processing_lease_holder(tenant_id).expect("holder"), None);
    assert!(first
        .try_acquire_processing_lease(tenant_id, "instance-a", long)
        .expect("take over"));
    assert!(!second
        .renew_processing_lease(tenant_id, "instance-b", long)
        .expect("the old holder learns it lost the lease"));
}

fn tenants_are_isolated(database: TestDatabase) {
    let (world, directory) = SeedWorld::demo().expect("demo");
    let mut store = database.open();
    // Two tenants with the same users, groups and products (the same GUIDs).
    let first_id = Uuid::from_u128(0x7e57_00a1);
    let second_id = Uuid::from_u128(0x7e57_00b2);
    let mut engines = Vec::new();
    for (tenant_id, name) in [(first_id, "First"), (second_id, "Second")] {
        let mut image = world.engine.to_image();
        image.settings.tenant_id = tenant_id;
        image.settings.display_name = name.to_string();
        let engine = Engine::from_image(image).expect("engine");
        store_engine(&mut store, &engine);
        engines.push(engine);
    }
    let mut second = engines.pop().expect("second");
    let first = engines.pop().expect("first");
    // Change only the second tenant: delete a user, change seats, queue a group.
    let at = Timestamp(world.now.0 + 1000);
    let mut version = 1;
    for command in [
        Command::DeleteUser {
            user_id: directory.users[5],
        },
        Command::SetPrepaidUnits {
            sku_id: EMS_E3,
            prepaid_units: 10,
        },
        Command::ReprocessGroup {
            group_id: directory.frontline_e1,
        },
    ] {
        let outcome = second.apply(command, at).expect("command");
        let mut batch = WriteBatch::from_command_outcome(&outcome);
        batch.expected_version = Some(version);
        version = store.write(second_id, &batch).expect("write");
    }
    let report = second.process_batch_with_images(40, at);
    version = store
        .write(second_id, &WriteBatch::from_process_report(report))
        .expect("process");
    assert!(store
        .try_acquire_processing_lease(second_id, "instance", Duration::from_secs(60))
        .expect("lease"));
    assert_store_holds(&mut store, &second, version);
    assert_store_holds(&mut store, &first, 1);
    assert!(store.queue(first_id).expect("queue").is_empty());
    assert_eq!(store.processing_lease_holder(first_id).expect("holder"), None);
    assert_eq!(store.changes_since(first_id, 0).expect("changes").len(), 1);
    assert_eq!(store.tenant_ids().expect("tenants"), vec![first_id, second_id]);
    // A state delete aimed at the second tenant leaves the first one's row alone.
    let state = &first.user_image(directory.users[0]).expect("user").states[0];
    store
        .write(
            second_id,
            &WriteBatch {
                state_deletes: vec![StateKey {
                    user_id: directory.users[0],
                    sku_id: state.sku_id,
                    assigned_by_group: state.assigned_by_group,
                }],
                ..WriteBatch::default()
            },
        )
        .expect("delete");
    assert_store_holds(&mut store, &first, 1);
}

fn change_records_say_what_each_write_changed(database: TestDatabase) {
    let (mut world, directory) = SeedWorld::demo().expect("demo");
    let mut store = database.open();
    let mut version = store_engine(&mut store, &world.engine);
    let tenant_id = world.engine.settings().tenant_id;
    let first = store.changes_since(tenant_id, 0).expect("changes");
    assert_eq!(first.len(), 1);
    assert!(first[0].settings && first[0].service_plans && !first[0].everything);
    assert_eq!(first[0].users.len(), world.engine.to_image().users.len());
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::AddGroupMember {
            group_id: directory.mobility_ems,
            user_id: directory.users[200],
        },
    );
    let changes = store.changes_since(tenant_id, 1).expect("changes");
    assert_eq!(changes.len(), 1);
    let change = &changes[0];
    assert_eq!(change.version, 2);
    assert_eq!(change.users, vec![directory.users[200]]);
    assert!(change.queue && !change.settings && !change.service_plans);
    // The group whose members changed is listed (delta rounds show it with its members).
    assert_eq!(change.groups, vec![directory.mobility_ems]);
    assert!(change.skus.is_empty());
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::SetPrepaidUnits {
            sku_id: OFFICE_365_E3,
            prepaid_units: 500,
        },
    );
    let change = &store.changes_since(tenant_id, 2).expect("changes")[0];
    assert_eq!(change.skus, vec![OFFICE_365_E3]);
    assert!(store
        .changes_since(tenant_id, version)
        .expect("changes")
        .is_empty());
}

fn bulk_state_writes_round_trip(database: TestDatabase) {
    use licensd_fixtures::generator::{build_engine, GeneratorConfig};
    let (mut engine, summary) =
        build_engine(&GeneratorConfig::new(2_500, 40, 8, 11)).expect("generated tenant");
    let mut at = Timestamp(summary.last_timestamp.0 + 1);
    engine.process_all(at);
    let tenant_id = engine.settings().tenant_id;
    let mut store = database.open();
    // A first write of thousands of states into an empty tenant.
    let version = store_engine(&mut store, &engine);
    let image = engine.to_image();
    let state_count: usize = image.users.iter().map(|user| user.states.len()).sum();
    assert!(state_count > 5_000, "{state_count} states");
    assert_store_holds(&mut store, &engine, version);
    // States announced as new that exist after all (a write retried after a lost answer) are
    // merged, not refused.
    let again = WriteBatch {
        state_inserts: image
            .users
            .iter()
            .flat_map(|user| user.states.iter().map(move |state| (user.id, state.clone())))
            .collect(),
        ..WriteBatch::default()
    };
    let version = store
        .write(tenant_id, &again)
        .expect("rewrite stored states as inserts");
    assert_store_holds(&mut store, &engine, version);
    // Thousands of changes over stored states: suspend the most held product.
    let most_held = image
        .skus
        .iter()
        .max_by_key(|sku| {
            image
                .users
                .iter()
                .filter(|user| user.states.iter().any(|state| state.sku_id == sku.sku_id))
                .count()
        })
        .map(|sku| sku.sku_id)
        .expect("a product");
    let outcome = engine
        .apply(
            Command::SetCapabilityStatus {
                sku_id: most_held,
                capability_status: CapabilityStatus::Suspended,
            },
            at,
        )
        .expect("suspend");
    let mut batch = WriteBatch::from_command_outcome(&outcome);
    batch.expected_version = Some(version);
    let version = store.write(tenant_id, &batch).expect("write the command");
    at = Timestamp(at.0 + 1000);
    let mut report = engine.process_all(at);
    assert!(report.changes.len() > 2_000, "{} changes", report.changes.len());
    report.states = engine.changed_states(&report.changes);
    let mut batch = WriteBatch::from_process_report(report);
    batch.expected_version = Some(version);
    let version = store.write(tenant_id, &batch).expect("write the processing");
    assert_store_holds(&mut store, &engine, version);
    // One step mixing users seen for the first time with users whose states change: resume the
    // product and add a thousand users to the largest licensed group, written as one batch.
    let group = image
        .groups
        .iter()
        .find(|group| !group.licenses.is_empty())
        .map(|group| group.id)
        .expect("a licensed group");
    at = Timestamp(at.0 + 1000);
    engine
        .apply(
            Command::SetCapabilityStatus {
                sku_id: most_held,
                capability_status: CapabilityStatus::Enabled,
            },
            at,
        )
        .expect("resume");
    let mut intent = WriteBatch {
        skus: vec![engine.sku_definition(most_held).expect("product")],
        ..WriteBatch::default()
    };
    for number in 0..1_000 {
        let user_id = Uuid::from_u128(0xfe00_0000 + number);
        let mut user = NewUser::new(user_id, &format!("newcomer{number}@contoso.com"));
        user.usage_location = Some(CountryCode::parse("US").expect("US"));
        engine.apply(Command::CreateUser(user), at).expect("create");
        engine
            .apply(
                Command::AddGroupMember {
                    group_id: group,
                    user_id,
                },
                at,
            )
            .expect("join");
        let mut image = engine.user_image(user_id).expect("user");
        image.states.clear();
        intent.users.push(image);
    }
    intent.enqueue = engine.queued_user_ids();
    intent.clock = Some(engine.clock());
    let version = store.write(tenant_id, &intent).expect("write the intent");
    at = Timestamp(at.0 + 1000);
    let mut report = engine.process_all(at);
    report.states = engine.changed_states(&report.changes);
    let mut batch = WriteBatch::from_process_report(report);
    batch.expected_version = Some(version);
    assert!(
        batch.state_upserts.len() > 3_000,
        "{} upserts",
        batch.state_upserts.len()
    );
    let version = store.write(tenant_id, &batch).expect("write the mixed step");
    assert_store_holds(&mut store, &engine, version);
}

// ----- access tokens and audit log ------------------------------------------------------------

fn token(tenant_id: Uuid, name: &str, created_at: i64) -> AccessTokenRecord {
    AccessTokenRecord {
        token_id: Uuid::new_v4(),
        tenant_id,
        display_name: name.to_string(),
        role: "GlobalReader".to_string(),
        secret_hash: vec![7; 32],
        created_at,
        created_by: "test".to_string(),
        expires_at: Some(created_at + 1_000),
        revoked_at: None,
    }
}

fn access_tokens_belong_to_one_tenant_and_revocation_is_stored(database: TestDatabase) {
    let mut store = database.open();
    let first = tenant_settings(Uuid::new_v4(), "First");
    let second = tenant_settings(Uuid::new_v4(), "Second");
    store.create_tenant(&first).expect("first tenant");
    store.create_tenant(&second).expect("second tenant");
    let reader = token(first.tenant_id, "reader", 10);
    let other = token(second.tenant_id, "other", 20);
    store.create_access_token(&reader).expect("store reader");
    store.create_access_token(&other).expect("store other");
    assert_eq!(
        store.access_token(reader.token_id).expect("read"),
        Some(reader.clone())
    );
    assert_eq!(store.access_token(Uuid::new_v4()).expect("read"), None);
    assert_eq!(
        store.access_tokens(first.tenant_id).expect("list"),
        vec![reader.clone()]
    );
    // Another tenant cannot revoke it.
    assert!(!store
        .revoke_access_token(second.tenant_id, reader.token_id, 50)
        .expect("revoke"));
    assert_eq!(
        store
            .access_token(reader.token_id)
            .expect("read")
            .and_then(|t| t.revoked_at),
        None
    );
    assert!(store
        .revoke_access_token(first.tenant_id, reader.token_id, 60)
        .expect("revoke"));
    assert!(store
        .revoke_access_token(first.tenant_id, reader.token_id, 70)
        .expect("revoke again"));
    // A second connection (another instance) sees the first revocation time.
    let mut other_connection = database.open();
    assert_eq!(
        other_connection
            .access_token(reader.token_id)
            .expect("read")
            .and_then(|t| t.revoked_at),
        Some(60)
    );
}

fn audit(activity: &str, at: i64, target: Option<Uuid>) -> AuditRecord {
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: at,
        category: "UserManagement".to_string(),
        activity: activity.to_string(),
        operation_type: "Update".to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: Some(Uuid::new_v4()),
        actor_name: "admin".to_string(),
        actor_role: "GlobalAdministrator".to_string(),
        target_type: "User".to_string(),
        target_id: target,
        target_name: "adele@contoso.com".to_string(),
        modified_properties: vec![ModifiedProperty {
            display_name: "AssignedLicense".to_string(),
            old_value: "[]".to_string(),
            new_value: "[\"ENTERPRISEPACK\"]".to_string(),
        }],
        request_id: "request-1".to_string(),
    }
}

fn audit_records_are_written_with_their_change_filtered_and_paged(database: TestDatabase) {
    let mut store = database.open();
    let settings = tenant_settings(Uuid::new_v4(), "Audited");
    store.create_tenant(&settings).expect("tenant");
    let other = tenant_settings(Uuid::new_v4(), "Other");
    store.create_tenant(&other).expect("other tenant");
    let user = Uuid::new_v4();
    // Written with a batch: in the same transaction as the change.
    let batch = WriteBatch {
        users: vec![plain_user(user, "adele")],
        audit: vec![audit("Add user", 100, Some(user))],
        ..Default::default()
    };
    store.write(settings.tenant_id, &batch).expect("write");
    // A failed write leaves no audit record behind.
    let failing = WriteBatch {
        expected_version: Some(99),
        audit: vec![audit("Change user license", 150, Some(user))],
        ..Default::default()
    };
    assert!(store.write(settings.tenant_id, &failing).is_err());
    store
        .append_audit(
            settings.tenant_id,
            &[
                audit("Change user license", 200, Some(user)),
                audit("Set group license", 300, None),
            ],
        )
        .expect("append");
    store
        .append_audit(other.tenant_id, &[audit("Change user license", 250, Some(user))])
        .expect("append to the other tenant");
    let everything = AuditQuery {
        limit: 10,
        ..Default::default()
    };
    let all = store
        .audit_records(settings.tenant_id, &everything)
        .expect("read");
    let activities: Vec<&str> = all.iter().map(|stored| stored.record.activity.as_str()).collect();
    assert_eq!(
        activities,
        ["Set group license", "Change user license", "Add user"]
    );
    assert_eq!(all[2].record, batch.audit[0]);
    let by_activity = AuditQuery {
        activity: Some("Change user license".to_string()),
        ..everything.clone()
    };
    assert_eq!(
        store
            .audit_records(settings.tenant_id, &by_activity)
            .expect("read")
            .len(),
        1
    );
    let by_target_and_time = AuditQuery {
        target_id: Some(user),
        since: Some(150),
        until: Some(250),
        ..everything.clone()
    };
    let found = store
        .audit_records(settings.tenant_id, &by_target_and_time)
        .expect("read");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].record.activity_date_time, 200);
    let first_page = store
        .audit_records(
            settings.tenant_id,
            &AuditQuery {
                limit: 2,
                ..everything.clone()
            },
        )
        .expect("read");
    assert_eq!(first_page.len(), 2);
    let second_page = store
        .audit_records(
            settings.tenant_id,
            &AuditQuery {
                before_sequence: Some(first_page[1].sequence),
                ..everything.clone()
            },
        )
        .expect("read");
    assert_eq!(second_page.len(), 1);
    assert_eq!(second_page[0].record.activity, "Add user");
    assert_eq!(store.prune_audit(201).expect("prune"), 2);
    let left = store
        .audit_records(settings.tenant_id, &everything)
        .expect("read");
    assert_eq!(left.len(), 1);
}

// ----- creating a tenant with its contents; errors naming deleted groups ---------------------

fn a_tenant_created_with_its_contents_is_stored_whole_or_not_at_all(database: TestDatabase) {
    let (world, directory) = SeedWorld::demo().expect("demo");
    let mut store = database.open();
    let settings = world.engine.settings().clone();
    let tenant_id = settings.tenant_id;
    // A state naming a plan the tenant does not have fails the write after the tenant row,
    // the plans, products, groups and users were written inside the transaction.
    let mut broken = WriteBatch::from_image(world.engine.to_image());
    let (_, state) = broken
        .state_inserts
        .iter_mut()
        .find(|(user_id, _)| *user_id == directory.users[1])
        .expect("a state of the user");
    state.disabled_plans = state
        .disabled_plans
        .iter()
        .copied()
        .chain([Uuid::from_u128(0xbad)])
        .collect();
    let error = store
        .create_tenant_with(&settings, &broken)
        .expect_err("unknown plan");
    assert!(matches!(error, StoreError::InvalidBatch { .. }), "{error}");
    assert!(
        store.tenant_ids().expect("tenants").is_empty(),
        "no empty tenant left behind"
    );
    for table in [
        "tenants",
        "service_plans",
        "skus",
        "groups",
        "users",
        "license_states",
        "work_queue",
    ] {
        assert_eq!(
            count(&mut store, &format!("SELECT count(*) FROM {table}")),
            0,
            "rows in {table}"
        );
    }
    assert!(matches!(
        store.load_tenant(tenant_id),
        Err(StoreError::UnknownTenant { .. })
    ));

    let version = store
        .create_tenant_with(&settings, &WriteBatch::from_image(world.engine.to_image()))
        .expect("create the tenant with its contents");
    assert_eq!(version, 1);
    assert_store_holds(&mut store, &world.engine, version);
    // Creating it again is refused and changes nothing.
    let error = store
        .create_tenant_with(&settings, &WriteBatch::from_image(world.engine.to_image()))
        .expect_err("the tenant exists");
    assert!(matches!(error, StoreError::TenantExists { .. }), "{error}");
    assert_store_holds(&mut store, &world.engine, version);
}

/// Alice's E3 (from one group) fails against the E1 another group gives her; then the E1 group
/// loses its license and alice, while her E3 error still names it (as a tenant written before
/// deletions re-queued such users can hold). The group is deleted: the write queues alice, the
/// tenant reloads, and once she is evaluated the stored error no longer names the group.
fn an_error_naming_a_deleted_group_survives_a_reload(database: TestDatabase) {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed world");
    let alice = world.add_user("alice", Some("US")).expect("alice");
    let e1_group = world.add_group("Office 365 E1 users").expect("group");
    world
        .assign_to_group(e1_group, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])
        .expect("E1");
    world.add_member(e1_group, alice).expect("member");
    world.process();
    let e3_group = world.add_group("Office 365 E3 users").expect("group");
    world
        .assign_to_group(e3_group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])
        .expect("E3");
    world.add_member(e3_group, alice).expect("member");
    world.process();
    let mut image = world.engine.to_image();
    let names_e1_group = |image: &TenantImage| {
        image.users.iter().flat_map(|user| &user.states).any(|state| {
            matches!(
                &state.cause,
                Some(CauseImage::MutuallyExclusive {
                    conflicting_source: AssignmentSource::Group(group),
                    ..
                }) if *group == e1_group
            )
        })
    };
    assert!(names_e1_group(&image), "the E3 error names the E1 group");
    for group in &mut image.groups {
        if group.id == e1_group {
            group.licenses.clear();
        }
    }
    for user in &mut image.users {
        user.memberships
            .retain(|membership| membership.group_id != e1_group);
        user.states
            .retain(|state| state.assigned_by_group != Some(e1_group));
    }
    world.engine = Engine::from_image(image).expect("the stale tenant restores");
    let mut store = database.open();
    let mut version = store_engine(&mut store, &world.engine);

    let outcome = apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::DeleteGroup { group_id: e1_group },
    );
    assert_eq!(outcome.newly_queued, vec![alice]);
    assert_eq!(
        store.queue(world.engine.settings().tenant_id).expect("queue"),
        vec![alice]
    );
    process_and_write(&mut world, &mut store, &mut version, 10, 10);
    let (image, _) = store
        .load_tenant(world.engine.settings().tenant_id)
        .expect("load");
    assert!(!names_e1_group(&image), "the stored error was rewritten");
    let state = image
        .users
        .iter()
        .find(|user| user.id == alice)
        .and_then(|user| {
            user.states
                .iter()
                .find(|state| state.assigned_by_group == Some(e3_group))
        })
        .expect("alice's E3 state");
    assert_eq!(state.cause, None, "{state:?}");
}

/// A connection remembers the keys of the users it wrote; another connection deletes a user
/// and creates it again (a new key): the first connection's next write must use the new key.
fn a_user_recreated_through_another_connection_is_written_under_its_new_key(database: TestDatabase) {
    let mut first = database.open();
    let mut second = database.open();
    let tenant_id = Uuid::from_u128(0x7e57_0009);
    first
        .create_tenant(&tenant_settings(tenant_id, "Keys"))
        .expect("tenant");
    let ids: Vec<Uuid> = (1..=3).map(|number| Uuid::from_u128(0x9000 + number)).collect();
    let users: Vec<UserImage> = ids
        .iter()
        .enumerate()
        .map(|(index, id)| plain_user(*id, &format!("keyed{index}")))
        .collect();
    first
        .write(
            tenant_id,
            &WriteBatch {
                users: users.clone(),
                enqueue: vec![ids[0]],
                ..WriteBatch::default()
            },
        )
        .expect("users");
    second
        .write(
            tenant_id,
            &WriteBatch {
                deleted_users: vec![ids[1]],
                ..WriteBatch::default()
            },
        )
        .expect("delete");
    second
        .write(
            tenant_id,
            &WriteBatch {
                users: vec![users[1].clone()],
                ..WriteBatch::default()
            },
        )
        .expect("create again");
    first
        .write(
            tenant_id,
            &WriteBatch {
                enqueue: vec![ids[1], ids[2]],
                ..WriteBatch::default()
            },
        )
        .expect("enqueue");
    assert_eq!(first.queue(tenant_id).expect("queue"), ids);
    assert_eq!(second.queue(tenant_id).expect("queue"), ids);
    // The same through the first connection alone: delete, create again, enqueue.
    first
        .write(
            tenant_id,
            &WriteBatch {
                deleted_users: vec![ids[2]],
                ..WriteBatch::default()
            },
        )
        .expect("delete");
    first
        .write(
            tenant_id,
            &WriteBatch {
                users: vec![users[2].clone()],
                ..WriteBatch::default()
            },
        )
        .expect("create again");
    first
        .write(
            tenant_id,
            &WriteBatch {
                enqueue: vec![ids[2]],
                ..WriteBatch::default()
            },
        )
        .expect("enqueue");
    assert_eq!(first.queue(tenant_id).expect("queue"), ids);
}

/// Writes one command's batch (without comparing the store with the engine: the tests below
/// tamper with rows first).
fn write_command(world: &mut SeedWorld, store: &mut Store, version: &mut u64, command: Command) {
    let outcome = world.apply(command.clone()).expect("the command is accepted");
    let mut batch = WriteBatch::from_command_outcome(&outcome);
    batch.expected_version = Some(*version);
    *version = store
        .write(world.engine.settings().tenant_id, &batch)
        .unwrap_or_else(|error| panic!("writing {} failed: {error}", command.name()));
}

/// `SELECT count(*)` of a user's rows in `table` matching `condition`.
fn rows_of(store: &mut Store, table: &str, user_id: Uuid, condition: &str) -> i64 {
    let user = literal(store, user_id);
    count(
        store,
        &format!(
            "SELECT count(*) FROM {table}
             WHERE user_key = (SELECT user_key FROM users WHERE user_id = {user}) AND {condition}"
        ),
    )
}

/// A membership added or removed, a user's properties changed and direct licenses assigned,
/// replaced and removed each write only their rows: rows of the user the command did not
/// change (marked directly in the database beforehand) are left as they were, and once the marks
/// are undone the store holds exactly the engine's tenant (positions and order included).
fn edits_of_a_user_write_only_the_rows_they_change(database: TestDatabase) {
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: 5,
        ems_e3: 5,
        ..SeedSeats::default()
    })
    .expect("seed world");
    let user = world.add_user("edited", Some("US")).expect("user");
    let groups: Vec<Uuid> = ["First", "Second", "Third"]
        .iter()
        .map(|name| world.add_group(name).expect("group"))
        .collect();
    world.add_member(groups[0], user).expect("member");
    world.add_member(groups[1], user).expect("member");
    world
        .assign_to_user(user, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])
        .expect("direct E1");
    let mut store = database.open();
    let mut version = store_engine(&mut store, &world.engine);
    let tenant_id = world.engine.settings().tenant_id;
    const MARK: i64 = 1_000_000_000;
    let user_literal = literal(&store, user);
    let user_key = format!("(SELECT user_key FROM users WHERE user_id = {user_literal})");
    // Marks on every stored row of the user: a command that rewrote them would erase them.
    execute(
        &mut store,
        &format!(
            "UPDATE users SET display_name = 'marked' WHERE user_id = {user_literal};
             UPDATE memberships SET since = since + {MARK} WHERE user_key = {user_key};
             UPDATE direct_licenses SET since = since + {MARK} WHERE user_key = {user_key};"
        ),
    );
    let marked = |store: &mut Store, table: &str| rows_of(store, table, user, &format!("since >= {MARK}"));

    // A membership added: one row, after the others; the user row and the rest untouched.
    let before = version;
    write_command(
        &mut world,
        &mut store,
        &mut version,
        Command::AddGroupMember {
            group_id: groups[2],
            user_id: user,
        },
    );
    assert_eq!(
        count(
            &mut store,
            &format!("SELECT count(*) FROM users WHERE display_name = 'marked' AND user_id = {user_literal}")
        ),
        1,
        "the user row is not rewritten"
    );
    assert_eq!(
        marked(&mut store, "memberships"),
        2,
        "the other memberships are not rewritten"
    );
    assert_eq!(
        marked(&mut store, "direct_licenses"),
        1,
        "the direct licenses are not rewritten"
    );
    let third = literal(&store, groups[2]);
    assert_eq!(
        rows_of(
            &mut store,
            "memberships",
            user,
            &format!("position = 2 AND group_key = (SELECT group_key FROM groups WHERE group_id = {third})")
        ),
        1,
        "the new membership comes last"
    );
    // The change log still names the user.
    let changes = store.changes_since(tenant_id, before).expect("changes");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].users, vec![user]);

    // A membership removed: only its row goes.
    write_command(
        &mut world,
        &mut store,
        &mut version,
        Command::RemoveGroupMember {
            group_id: groups[0],
            user_id: user,
        },
    );
    assert_eq!(rows_of(&mut store, "memberships", user, "1 = 1"), 2);
    assert_eq!(
        marked(&mut store, "memberships"),
        1,
        "the remaining old membership is not rewritten"
    );
    assert_eq!(marked(&mut store, "direct_licenses"), 1);

    // Direct licenses: EMS added after E1, then E1 given other disabled plans (in place), then EMS
    // removed; E1's row is never rewritten whole (its mark stays).
    write_command(
        &mut world,
        &mut store,
        &mut version,
        Command::AssignUserLicenses {
            user_id: user,
            add_licenses: vec![AssignedLicense::new(EMS_E3)],
            remove_licenses: vec![],
        },
    );
    assert_eq!(rows_of(&mut store, "direct_licenses", user, "1 = 1"), 2);
    assert_eq!(marked(&mut store, "direct_licenses"), 1, "E1 is not rewritten");
    let e1_plan = world
        .engine
        .sku_definition(OFFICE_365_E1)
        .expect("E1")
        .service_plans[0]
        .service_plan_id;
    write_command(
        &mut world,
        &mut store,
        &mut version,
        Command::AssignUserLicenses {
            user_id: user,
            add_licenses: vec![AssignedLicense {
                sku_id: OFFICE_365_E1,
                disabled_plans: vec![e1_plan],
            }],
            remove_licenses: vec![],
        },
    );
    assert_eq!(
        marked(&mut store, "direct_licenses"),
        1,
        "E1's new disabled plans are written in place"
    );
    write_command(
        &mut world,
        &mut store,
        &mut version,
        Command::AssignUserLicenses {
            user_id: user,
            add_licenses: vec![],
            remove_licenses: vec![EMS_E3],
        },
    );
    assert_eq!(rows_of(&mut store, "direct_licenses", user, "1 = 1"), 1);
    assert_eq!(marked(&mut store, "memberships"), 1);

    // Properties: the user row only.
    write_command(
        &mut world,
        &mut store,
        &mut version,
        Command::UpdateUser {
            user_id: user,
            changes: UserChanges {
                display_name: Some("Renamed".to_string()),
                ..UserChanges::default()
            },
        },
    );
    assert_eq!(
        count(
            &mut store,
            &format!(
                "SELECT count(*) FROM users WHERE display_name = 'Renamed' AND user_id = {user_literal}"
            )
        ),
        1
    );
    assert_eq!(
        marked(&mut store, "memberships"),
        1,
        "the memberships are not rewritten"
    );
    assert_eq!(
        marked(&mut store, "direct_licenses"),
        1,
        "the direct licenses are not rewritten"
    );

    // Without the marks, the store holds the engine's tenant.
    execute(
        &mut store,
        &format!(
            "UPDATE memberships SET since = since - {MARK} WHERE user_key = {user_key} AND since >= {MARK};
             UPDATE direct_licenses SET since = since - {MARK} WHERE user_key = {user_key} AND since >= {MARK};"
        ),
    );
    assert_store_holds(&mut store, &world.engine, version);
}

/// Several batches in one transaction: each gets its version and change record, in order; when
/// one fails, none is written.
fn several_batches_share_one_transaction_all_or_nothing(database: TestDatabase) {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed world");
    let users: Vec<Uuid> = (0..3)
        .map(|number| {
            world
                .add_user(&format!("batched{number}"), Some("US"))
                .expect("user")
        })
        .collect();
    let group = world.add_group("Batched").expect("group");
    let mut store = database.open();
    let version = store_engine(&mut store, &world.engine);
    let tenant_id = world.engine.settings().tenant_id;
    let batch_of = |world: &mut SeedWorld, command: Command| {
        WriteBatch::from_command_outcome(&world.apply(command).expect("accepted"))
    };
    // A write whose second batch refers to a user that is not stored writes nothing.
    let mut unknown = WriteBatch::default();
    unknown.enqueue.push(Uuid::from_u128(0xdead));
    let first = batch_of(
        &mut world,
        Command::AddGroupMember {
            group_id: group,
            user_id: users[0],
        },
    );
    let failed = store.write_all(tenant_id, &[first.clone(), unknown]);
    assert!(
        matches!(failed, Err(StoreError::InvalidBatch { .. })),
        "{failed:?}"
    );
    assert_eq!(store.tenant_version(tenant_id).expect("version"), version);
    assert_eq!(count(&mut store, "SELECT count(*) FROM memberships"), 0);

    let second = batch_of(
        &mut world,
        Command::AddGroupMember {
            group_id: group,
            user_id: users[1],
        },
    );
    let mut third = batch_of(
        &mut world,
        Command::AddGroupMember {
            group_id: group,
            user_id: users[2],
        },
    );
    // Checked against the version the batches before it left.
    third.expected_version = Some(version + 2);
    let mut first = first;
    first.expected_version = Some(version);
    let written = store
        .write_all(tenant_id, &[first, second, third])
        .expect("written");
    assert_eq!(written, version + 3);
    let changes = store.changes_since(tenant_id, version).expect("changes");
    let listed: Vec<(u64, Vec<Uuid>)> = changes
        .iter()
        .map(|change| (change.version, change.users.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (version + 1, vec![users[0]]),
            (version + 2, vec![users[1]]),
            (version + 3, vec![users[2]]),
        ]
    );
    assert_store_holds(&mut store, &world.engine, written);
}

/// Independent commands merge into one batch whose write equals writing them in turn;
/// dependent ones do not merge.
fn merged_batches_write_what_their_commands_wrote(database: TestDatabase) {
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: 5,
        ..SeedSeats::default()
    })
    .expect("seed world");
    let users: Vec<Uuid> = (0..4)
        .map(|number| {
            world
                .add_user(&format!("merged{number}"), Some("US"))
                .expect("user")
        })
        .collect();
    let group = world.add_group("Merged").expect("group");
    world
        .assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])
        .expect("group E1");
    let mut store = database.open();
    let version = store_engine(&mut store, &world.engine);
    let tenant_id = world.engine.settings().tenant_id;
    let mut batch_of =
        |command: Command| WriteBatch::from_command_outcome(&world.apply(command).expect("accepted"));
    let mut merged = batch_of(Command::AddGroupMember {
        group_id: group,
        user_id: users[0],
    });
    merged
        .merge(batch_of(Command::AddGroupMember {
            group_id: group,
            user_id: users[1],
        }))
        .expect("different users in one group are independent");
    merged
        .merge(batch_of(Command::AssignUserLicenses {
            user_id: users[2],
            add_licenses: vec![AssignedLicense::new(OFFICE_365_E1)],
            remove_licenses: vec![],
        }))
        .expect("another user's direct license is independent");
    let dependent = batch_of(Command::UpdateUser {
        user_id: users[0],
        changes: UserChanges {
            display_name: Some("Again".to_string()),
            ..UserChanges::default()
        },
    });
    let dependent = *merged
        .merge(dependent)
        .expect_err("the same user again is dependent");
    let settings = batch_of(Command::SetSelfHealing { enabled: false });
    let settings = *merged.merge(settings).expect_err("settings never merge");
    merged.expected_version = Some(version);
    let written = store
        .write_all(tenant_id, &[merged, dependent, settings])
        .expect("written");
    assert_eq!(written, version + 3);
    assert_store_holds(&mut store, &world.engine, written);
}

/// Nested groups (issue 17): edges and the transitive licensing setting are written command by
/// command and loaded back exactly (both load paths), a removed edge and a deleted group's edges
/// leave no row, and another instance catching up over a nesting change reloads the tenant.
fn nested_groups_and_transitive_licensing_round_trip(database: TestDatabase) {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed world");
    let tenant_id = world.engine.settings().tenant_id;
    let all_staff = world.add_group("All Staff").expect("group");
    let engineering = world.add_group("Engineering").expect("group");
    let platform = world.add_group("Platform").expect("group");
    let alice = world.add_user("alice", None).expect("user");
    world.add_member(platform, alice).expect("member");
    let mut store = database.open();
    let mut version = store_engine(&mut store, &world.engine);
    let before_nesting = version;
    for command in [
        Command::AssignGroupLicenses {
            group_id: all_staff,
            add_licenses: vec![AssignedLicense {
                sku_id: OFFICE_365_E3,
                disabled_plans: Vec::new(),
            }],
            remove_licenses: Vec::new(),
        },
        Command::AddGroupMemberGroup {
            group_id: all_staff,
            member_group_id: engineering,
        },
        Command::AddGroupMemberGroup {
            group_id: engineering,
            member_group_id: platform,
        },
        Command::SetTransitiveLicensing { enabled: true },
    ] {
        apply_and_write(&mut world, &mut store, &mut version, command);
    }
    process_and_write(&mut world, &mut store, &mut version, 10, 10);
    assert_eq!(
        world
            .state(alice, OFFICE_365_E3, Some(all_staff))
            .map(|state| state.state),
        Some(licensd_engine::AssignmentStatus::Active)
    );
    assert_eq!(count(&mut store, "SELECT count(*) FROM group_nestings"), 2);
    let (loaded, _) = store.load_tenant(tenant_id).expect("load");
    assert!(loaded.settings.transitive_licensing);
    assert_eq!(loaded.group_nestings.len(), 2);
    // Another instance at the version before the nesting patches its engine (the edges of the
    // groups the change touched, read again) instead of reloading the tenant.
    match store.catch_up(tenant_id, before_nesting, None).expect("catch up") {
        licensd_store::CatchUp::Patch { patch, .. } => {
            assert!(patch
                .settings
                .is_some_and(|settings| settings.transitive_licensing));
            assert!(patch.nesting_of_groups.contains(&engineering));
            assert!(patch.nesting_of_groups.contains(&platform));
            assert_eq!(patch.nesting_edges.len(), 2, "{:?}", patch.nesting_edges);
        }
        other => panic!("expected an incremental patch after a nesting change, got {other:?}"),
    }
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::RemoveGroupMemberGroup {
            group_id: engineering,
            member_group_id: platform,
        },
    );
    process_and_write(&mut world, &mut store, &mut version, 10, 10);
    assert_eq!(world.state(alice, OFFICE_365_E3, Some(all_staff)), None);
    assert_eq!(count(&mut store, "SELECT count(*) FROM group_nestings"), 1);
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::DeleteGroup {
            group_id: engineering,
        },
    );
    assert_eq!(count(&mut store, "SELECT count(*) FROM group_nestings"), 0);
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::SetTransitiveLicensing { enabled: false },
    );
    let (loaded, _) = store.load_tenant(tenant_id).expect("load");
    assert!(!loaded.settings.transitive_licensing);
}

/// A user's directory attributes (quotes, non-ASCII and extension attributes included) are
/// written on creation, changed and cleared one by one, and read back equal by a full load and
/// by the start-up path (`apply_and_write` compares the store with the engine after each write).
fn user_attributes_round_trip_set_changed_and_cleared(database: TestDatabase) {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed world");
    let mut store = database.open();
    let mut version = store_engine(&mut store, &world.engine);
    let user_id = Uuid::from_u128(0xa77);
    let mut new_user = NewUser::new(user_id, "attributes@contoso.com");
    new_user.attributes = [
        (UserAttribute::DEPARTMENT, "Sales \"EMEA\"".to_string()),
        (UserAttribute::COMPANY_NAME, "Contoso Ltd. — Zürich".to_string()),
        (UserAttribute::extension(15).expect("15"), "x{1}".to_string()),
    ]
    .into();
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::CreateUser(new_user),
    );
    let changes = UserChanges {
        attributes: [
            (UserAttribute::DEPARTMENT, Some("Marketing".to_string())),
            (UserAttribute::COMPANY_NAME, None),
            (UserAttribute::JOB_TITLE, Some("Engineer".to_string())),
        ]
        .into(),
        ..UserChanges::default()
    };
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::UpdateUser { user_id, changes },
    );
    let (image, _) = store
        .load_tenant(world.engine.settings().tenant_id)
        .expect("load");
    let user = image.users.iter().find(|user| user.id == user_id).expect("user");
    assert_eq!(
        user.attributes,
        [
            (UserAttribute::DEPARTMENT, "Marketing".to_string()),
            (UserAttribute::JOB_TITLE, "Engineer".to_string()),
            (UserAttribute::extension(15).expect("15"), "x{1}".to_string()),
        ]
        .into()
    );
}

/// A dynamic group's rule and processing state are stored with the group, the memberships its
/// rule makes and unmakes with the users, and a reload (full and start-up path) gives the same
/// engine, which keeps applying the rule (`apply_and_write` compares after each write).
fn dynamic_groups_round_trip_with_their_rules_and_memberships(database: TestDatabase) {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed world");
    let mut store = database.open();
    let mut version = store_engine(&mut store, &world.engine);
    let sales = world.next_id();
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::CreateGroup {
            group_id: sales,
            display_name: "Sales (dynamic)".to_string(),
        },
    );
    let mut users = Vec::new();
    for (index, department) in ["Sales", "Finance", "sales"].iter().enumerate() {
        let user_id = world.next_id();
        let mut user = NewUser::new(user_id, &format!("dynamic{index}@contoso.com"));
        user.attributes
            .insert(UserAttribute::DEPARTMENT, department.to_string());
        apply_and_write(&mut world, &mut store, &mut version, Command::CreateUser(user));
        users.push(user_id);
    }
    let rule = r#"user.department -eq "Sales" -or user.proxyAddresses -any (_ -contains "x'y")"#;
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::SetMembershipRule {
            group_id: sales,
            rule: Some(rule.to_string()),
            processing_state: RuleProcessingState::On,
        },
    );
    let mut expected = vec![users[0], users[2]];
    expected.sort();
    let mut members = world.engine.group_members(sales).expect("members");
    members.sort();
    assert_eq!(members, expected);
    // An attribute change moves a user in; the write carries the new membership.
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::UpdateUser {
            user_id: users[1],
            changes: UserChanges {
                attributes: [(UserAttribute::DEPARTMENT, Some("SALES".to_string()))].into(),
                ..UserChanges::default()
            },
        },
    );
    apply_and_write(
        &mut world,
        &mut store,
        &mut version,
        Command::SetMembershipRule {
            group_id: sales,
            rule: Some(rule.to_string()),
            processing_state: RuleProcessingState::Paused,
        },
    );
    let (image, _) = store
        .load_tenant(world.engine.settings().tenant_id)
        .expect("load");
    let restored = Engine::from_image(image).expect("restored");
    let dynamic = restored
        .dynamic_membership(sales)
        .expect("group")
        .expect("dynamic");
    assert_eq!(dynamic.rule.text(), rule);
    assert_eq!(dynamic.processing_state, RuleProcessingState::Paused);
    assert_eq!(restored.group_members(sales).expect("members").len(), 3);
}
