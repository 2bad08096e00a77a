//! Incremental catch-up, property-tested on both backends: random command sequences (nesting
//! edges and the transitive licensing setting among them) and processing steps go through engine
//! A into the store; engine B, left at an older version,
//! catches up from the change log (`Store::catch_up` + `Engine::apply_patch`) at random points,
//! and must then equal a full load of the store at that version (`Engine::from_image`) — and
//! behave like it afterwards. B also diverges on purpose (a write the store refuses) and catches
//! up with what it changed itself (`unwritten_change`). PostgreSQL runs at
//! `LICENSD_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`) in a schema of
//! its own; unreachable, its cases print why and pass (unless `LICENSD_REQUIRE_POSTGRES` is set).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use licensd_engine::image::TenantImage;
use licensd_engine::{
    AssignedLicense, CapabilityStatus, Command, CountryCode, Engine, NewUser, PatchError, ProxyAddress,
    Timestamp, UserChanges, Uuid,
};
use licensd_fixtures::seed_world::{
    SeedSeats, SeedWorld, EMS_E3, EXCHANGE_ONLINE_PLAN_1, OFFICE_365_E1, OFFICE_365_E3,
    WORKPLACE_ANALYTICS_SKU,
};
use licensd_store::{unwritten_change, CatchUp, Store, TenantChange, WriteBatch};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use support::TestDatabase;

// ----- databases ------------------------------------------------------------------------------

// ----- random operations ----------------------------------------------------------------------

const USERS: usize = 8;
const GROUPS: usize = 4;
const SKUS: [Uuid; 4] = [OFFICE_365_E1, OFFICE_365_E3, EMS_E3, WORKPLACE_ANALYTICS_SKU];
const LOCATIONS: [Option<&str>; 4] = [None, Some("US"), Some("CU"), Some("NL")];
const ADDRESSES: [&str; 4] = [
    "SMTP:shared@contoso.com",
    "smtp:SHARED@contoso.com",
    "SMTP:other@contoso.com",
    "SMTP:third@contoso.com",
];
const STATUSES: [CapabilityStatus; 3] = [
    CapabilityStatus::Enabled,
    CapabilityStatus::Suspended,
    CapabilityStatus::Warning,
];

#[derive(Clone, Debug)]
enum Op {
    CreateUser {
        user: usize,
        location: usize,
        address: usize,
    },
    UpdateUser {
        user: usize,
        location: usize,
        address: usize,
        rename: bool,
    },
    DeleteUser {
        user: usize,
    },
    CreateGroup {
        group: usize,
    },
    RenameGroup {
        group: usize,
    },
    DeleteGroup {
        group: usize,
    },
    GroupLicense {
        group: usize,
        sku: usize,
        remove: bool,
    },
    AddMember {
        group: usize,
        user: usize,
    },
    RemoveMember {
        group: usize,
        user: usize,
    },
    UserLicense {
        user: usize,
        sku: usize,
        remove: bool,
    },
    Seats {
        sku: usize,
        units: u32,
    },
    Capability {
        sku: usize,
        status: usize,
    },
    DefaultLocation {
        location: usize,
    },
    SelfHealing {
        enabled: bool,
    },
    Attributes {
        object: usize,
        text: Option<u8>,
    },
    Reprocess {
        user: usize,
    },
    ReprocessGroup {
        group: usize,
    },
    /// Nests a group in a group (issue 17), or takes it out again.
    Nest {
        group: usize,
        member: usize,
        remove: bool,
    },
    Transitive {
        enabled: bool,
    },
    /// Changes a plan's rules: the catch-up must fall back to a reload.
    PlanRules,
    Process {
        batch: usize,
    },
    CatchUp,
    /// B applies a command itself that the store then refuses, and catches up with it.
    Diverge {
        op: Box<Op>,
    },
    /// B processes itself, the store refuses the step, and B catches up with it.
    DivergeProcessing,
}

fn user_id(index: usize) -> Uuid {
    Uuid::from_u128(0xca7c_0000_0000_4000_8000_0000_0000_0000 | (index as u128 + 1))
}

fn group_id(index: usize) -> Uuid {
    Uuid::from_u128(0xca7c_0000_0000_4000_8000_0001_0000_0000 | (index as u128 + 1))
}

fn command_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..USERS, 0..LOCATIONS.len(), 0..ADDRESSES.len())
            .prop_map(|(user, location, address)| Op::CreateUser { user, location, address }),
        2 => (0..USERS, 0..LOCATIONS.len(), 0..ADDRESSES.len(), any::<bool>())
            .prop_map(|(user, location, address, rename)| Op::UpdateUser { user, location, address, rename }),
        1 => (0..USERS).prop_map(|user| Op::DeleteUser { user }),
        2 => (0..GROUPS).prop_map(|group| Op::CreateGroup { group }),
        1 => (0..GROUPS).prop_map(|group| Op::RenameGroup { group }),
        1 => (0..GROUPS).prop_map(|group| Op::DeleteGroup { group }),
        3 => (0..GROUPS, 0..SKUS.len(), any::<bool>())
            .prop_map(|(group, sku, remove)| Op::GroupLicense { group, sku, remove }),
        5 => (0..GROUPS, 0..USERS).prop_map(|(group, user)| Op::AddMember { group, user }),
        2 => (0..GROUPS, 0..USERS).prop_map(|(group, user)| Op::RemoveMember { group, user }),
        3 => (0..USERS, 0..SKUS.len(), any::<bool>())
            .prop_map(|(user, sku, remove)| Op::UserLicense { user, sku, remove }),
        1 => (0..SKUS.len(), 0u32..4).prop_map(|(sku, units)| Op::Seats { sku, units }),
        1 => (0..SKUS.len(), 0..STATUSES.len()).prop_map(|(sku, status)| Op::Capability { sku, status }),
        1 => (0..LOCATIONS.len()).prop_map(|location| Op::DefaultLocation { location }),
        1 => any::<bool>().prop_map(|enabled| Op::SelfHealing { enabled }),
        2 => (0..USERS + GROUPS, proptest::option::of(any::<u8>()))
            .prop_map(|(object, text)| Op::Attributes { object, text }),
        1 => (0..USERS).prop_map(|user| Op::Reprocess { user }),
        1 => (0..GROUPS).prop_map(|group| Op::ReprocessGroup { group }),
        4 => (0..GROUPS, 0..GROUPS, any::<bool>())
            .prop_map(|(group, member, remove)| Op::Nest { group, member, remove }),
        1 => any::<bool>().prop_map(|enabled| Op::Transitive { enabled }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => command_op(),
        1 => Just(Op::PlanRules),
        10 => (1usize..6).prop_map(|batch| Op::Process { batch }),
        8 => Just(Op::CatchUp),
        3 => command_op().prop_map(|op| Op::Diverge { op: Box::new(op) }),
        1 => Just(Op::DivergeProcessing),
    ]
}

fn location(index: usize) -> Option<CountryCode> {
    LOCATIONS[index].map(|code| CountryCode::parse(code).expect("location"))
}

/// The command of an operation, for the engine it is applied to (`None` for the others).
fn command(op: &Op, engine: &Engine) -> Option<Command> {
    Some(match op {
        Op::CreateUser {
            user,
            location: at,
            address,
        } => {
            let mut new_user = NewUser::new(user_id(*user), &format!("user{user}@contoso.com"));
            new_user.usage_location = location(*at);
            new_user.proxy_addresses = vec![ProxyAddress::parse(ADDRESSES[*address]).expect("address")];
            Command::CreateUser(new_user)
        }
        Op::UpdateUser {
            user,
            location: at,
            address,
            rename,
        } => Command::UpdateUser {
            user_id: user_id(*user),
            changes: UserChanges {
                user_principal_name: rename.then(|| format!("renamed{user}.{address}@contoso.com")),
                usage_location: Some(location(*at)),
                proxy_addresses: Some(vec![ProxyAddress::parse(ADDRESSES[*address]).expect("address")]),
                ..UserChanges::default()
            },
        },
        Op::DeleteUser { user } => Command::DeleteUser {
            user_id: user_id(*user),
        },
        Op::CreateGroup { group } => Command::CreateGroup {
            group_id: group_id(*group),
            display_name: format!("Group {group}"),
        },
        Op::RenameGroup { group } => Command::UpdateGroup {
            group_id: group_id(*group),
            display_name: format!("Group {group} renamed at {}", engine.clock()),
        },
        Op::DeleteGroup { group } => Command::DeleteGroup {
            group_id: group_id(*group),
        },
        Op::GroupLicense { group, sku, remove } => Command::AssignGroupLicenses {
            group_id: group_id(*group),
            add_licenses: if *remove {
                vec![]
            } else {
                vec![AssignedLicense::new(SKUS[*sku])]
            },
            remove_licenses: if *remove { vec![SKUS[*sku]] } else { vec![] },
        },
        Op::AddMember { group, user } => Command::AddGroupMember {
            group_id: group_id(*group),
            user_id: user_id(*user),
        },
        Op::RemoveMember { group, user } => Command::RemoveGroupMember {
            group_id: group_id(*group),
            user_id: user_id(*user),
        },
        Op::UserLicense { user, sku, remove } => Command::AssignUserLicenses {
            user_id: user_id(*user),
            add_licenses: if *remove {
                vec![]
            } else {
                vec![AssignedLicense::new(SKUS[*sku])]
            },
            remove_licenses: if *remove { vec![SKUS[*sku]] } else { vec![] },
        },
        Op::Seats { sku, units } => Command::SetPrepaidUnits {
            sku_id: SKUS[*sku],
            prepaid_units: *units,
        },
        Op::Capability { sku, status } => Command::SetCapabilityStatus {
            sku_id: SKUS[*sku],
            capability_status: STATUSES[*status],
        },
        Op::DefaultLocation { location: at } => Command::SetDefaultUsageLocation {
            usage_location: location(*at),
        },
        Op::SelfHealing { enabled } => Command::SetSelfHealing { enabled: *enabled },
        Op::Attributes { object, text } => Command::SetDirectoryAttributes {
            object_id: if *object < USERS {
                user_id(*object)
            } else {
                group_id(*object - USERS)
            },
            attributes: text.map(|byte| format!("{{\"externalId\":\"{byte}\"}}")),
        },
        Op::Reprocess { user } => Command::ReprocessUser {
            user_id: user_id(*user),
        },
        Op::ReprocessGroup { group } => Command::ReprocessGroup {
            group_id: group_id(*group),
        },
        Op::Nest {
            group,
            member,
            remove: false,
        } => Command::AddGroupMemberGroup {
            group_id: group_id(*group),
            member_group_id: group_id(*member),
        },
        Op::Nest {
            group,
            member,
            remove: true,
        } => Command::RemoveGroupMemberGroup {
            group_id: group_id(*group),
            member_group_id: group_id(*member),
        },
        Op::Transitive { enabled } => Command::SetTransitiveLicensing { enabled: *enabled },
        Op::PlanRules => {
            let mut rules = engine
                .service_plan_rules(EXCHANGE_ONLINE_PLAN_1)
                .expect("the plan exists");
            rules.needs_unique_proxy_address = !rules.needs_unique_proxy_address;
            Command::SetServicePlanRules {
                service_plan_id: EXCHANGE_ONLINE_PLAN_1,
                rules,
            }
        }
        Op::Process { .. } | Op::CatchUp | Op::Diverge { .. } | Op::DivergeProcessing => return None,
    })
}

// ----- the property ---------------------------------------------------------------------------

/// How B caught up.
#[derive(Default, Debug)]
struct Tally {
    patches: u32,
    reloads: u32,
}

fn full_load(store: &mut Store, tenant_id: Uuid) -> (Engine, u64) {
    let (image, version) = store.load_tenant(tenant_id).expect("load the tenant");
    (
        Engine::from_image(image).expect("the stored tenant loads"),
        version,
    )
}

fn images_equal(actual: &TenantImage, expected: &TenantImage) -> Result<(), TestCaseError> {
    prop_assert_eq!(&actual.settings, &expected.settings, "settings");
    prop_assert_eq!(actual.clock, expected.clock, "clock");
    prop_assert_eq!(&actual.skus, &expected.skus, "products");
    prop_assert_eq!(&actual.groups, &expected.groups, "groups");
    prop_assert_eq!(&actual.users, &expected.users, "users");
    prop_assert_eq!(&actual.queue, &expected.queue, "queue");
    prop_assert_eq!(
        &actual.directory_attributes,
        &expected.directory_attributes,
        "attributes"
    );
    prop_assert_eq!(actual, expected);
    Ok(())
}

/// Brings B to the store incrementally (or by a reload where the store or engine says so) and
/// checks it against a full load.
fn catch_up(
    store: &mut Store,
    engine: &mut Engine,
    version: &mut u64,
    also: Option<&TenantChange>,
    tally: &mut Tally,
) -> Result<(), TestCaseError> {
    let tenant_id = engine.settings().tenant_id;
    let reload = |store: &mut Store, engine: &mut Engine, version: &mut u64, tally: &mut Tally| {
        let (loaded, loaded_version) = full_load(store, tenant_id);
        *engine = loaded;
        *version = loaded_version;
        tally.reloads += 1;
    };
    match store
        .catch_up(tenant_id, *version, also)
        .expect("read the catch-up")
    {
        CatchUp::UpToDate { version: stored } => prop_assert_eq!(stored, *version),
        CatchUp::Patch {
            patch,
            version: stored,
        } => match engine.apply_patch(*patch) {
            Ok(()) => {
                *version = stored;
                tally.patches += 1;
            }
            Err(PatchError::NeedsReload(reason)) => {
                if std::env::var_os("CATCH_UP_DEBUG").is_some() {
                    println!("engine reload: {reason}");
                }
                reload(store, engine, version, tally)
            }
            Err(error) => return Err(TestCaseError::fail(format!("patch refused: {error}"))),
        },
        CatchUp::Reload { reason } => {
            if std::env::var_os("CATCH_UP_DEBUG").is_some() {
                println!("reload: {reason}");
            }
            reload(store, engine, version, tally)
        }
    }
    let (loaded, loaded_version) = full_load(store, tenant_id);
    prop_assert_eq!(*version, loaded_version, "version");
    images_equal(&engine.to_image(), &loaded.to_image())?;
    prop_assert_eq!(engine.license_snapshot(), loaded.license_snapshot());
    Ok(())
}

fn run(database: &TestDatabase, ops: &[Op]) -> Result<Tally, TestCaseError> {
    let mut store = Store::open(&database.url).expect("open the store");
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: 2,
        office_365_e3: 3,
        ems_e3: 2,
        workplace_analytics: 1,
    })
    .expect("seed world");
    let tenant_id = world.engine.settings().tenant_id;
    let image = world.engine.to_image();
    store.create_tenant(&image.settings).expect("create the tenant");
    let mut version = store
        .write(tenant_id, &WriteBatch::from_image(image))
        .expect("store the seed world");
    let (mut b, mut b_version) = full_load(&mut store, tenant_id);
    let mut tally = Tally::default();
    for op in ops {
        match op {
            Op::Process { batch } => {
                if world.engine.queued_users() == 0 {
                    continue;
                }
                world.now = Timestamp(world.now.0 + 1000);
                let report = world.engine.process_batch_with_images(*batch, world.now);
                let mut write = WriteBatch::from_process_report(report);
                write.expected_version = Some(version);
                version = store.write(tenant_id, &write).expect("write a processing step");
            }
            Op::CatchUp => catch_up(&mut store, &mut b, &mut b_version, None, &mut tally)?,
            Op::Diverge { op } => {
                let Some(command) = command(op, &b) else { continue };
                world.now = Timestamp(world.now.0 + 1000);
                let created = matches!(command, Command::CreateUser(_) | Command::CreateGroup { .. });
                let Ok(outcome) = b.apply(command, world.now) else {
                    continue;
                };
                let refused = WriteBatch::from_command_outcome(&outcome);
                match unwritten_change(&refused, created) {
                    Some(also) => catch_up(&mut store, &mut b, &mut b_version, Some(&also), &mut tally)?,
                    None => {
                        let (loaded, loaded_version) = full_load(&mut store, tenant_id);
                        b = loaded;
                        b_version = loaded_version;
                    }
                }
            }
            Op::DivergeProcessing => {
                if b.queued_users() == 0 {
                    continue;
                }
                world.now = Timestamp(world.now.0 + 1000);
                let report = b.process_batch_with_images(3, world.now);
                let refused = WriteBatch::from_process_report(report);
                let also = unwritten_change(&refused, false).expect("a processing step deletes nothing");
                catch_up(&mut store, &mut b, &mut b_version, Some(&also), &mut tally)?;
            }
            op => {
                let Some(command) = command(op, &world.engine) else {
                    continue;
                };
                let Ok(outcome) = world.apply(command) else {
                    continue;
                };
                let mut write = WriteBatch::from_command_outcome(&outcome);
                write.expected_version = Some(version);
                version = store.write(tenant_id, &write).expect("write a command");
            }
        }
    }
    catch_up(&mut store, &mut b, &mut b_version, None, &mut tally)?;
    // Behaves the same afterwards: processing to the end and a further command give what they
    // give on a fresh load.
    let (mut loaded, _) = full_load(&mut store, tenant_id);
    for engine in [&mut b, &mut loaded] {
        let mut at = Timestamp(world.now.0 + 1000);
        while engine.queued_users() > 0 {
            engine.process_batch(4, at);
            at = Timestamp(at.0 + 1000);
        }
        let _ = engine.apply(
            Command::AddGroupMember {
                group_id: group_id(0),
                user_id: user_id(0),
            },
            at,
        );
        while engine.queued_users() > 0 {
            engine.process_batch(4, at);
        }
    }
    images_equal(&b.to_image(), &loaded.to_image())?;
    prop_assert_eq!(b.license_snapshot(), loaded.license_snapshot());
    Ok(tally)
}

fn check(database: impl Fn() -> Option<TestDatabase>, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let total = std::cell::RefCell::new(Tally::default());
    let result = runner.run(&vec(op(), 10..80), |ops| {
        let Some(database) = database() else { return Ok(()) };
        let tally = run(&database, &ops)?;
        let mut total = total.borrow_mut();
        total.patches += tally.patches;
        total.reloads += tally.reloads;
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    let total = total.into_inner();
    // The property is about the incremental path: most catch-ups must have taken it.
    if total.patches + total.reloads > 0 {
        assert!(
            total.patches > 2 * total.reloads,
            "too few catch-ups were incremental: {total:?}"
        );
    }
}

#[test]
fn catching_up_incrementally_equals_a_full_load_sqlite() {
    check(
        || Some(TestDatabase::sqlite()),
        std::env::var("CATCH_UP_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(48),
    );
}

#[test]
fn catching_up_incrementally_equals_a_full_load_postgres() {
    check(|| TestDatabase::postgres("catch_up"), 24);
}

/// On PostgreSQL a catch-up reads the change records, then the patch's rows, in two statements
/// outside any transaction. A write that commits between the two must not end up in a patch
/// that names the earlier version: the catch-up is read again (in one snapshot) and names the
/// later one. The second statement is held up by a lock on a table only it reads
/// (`group_nestings`) while the writer renames the user the first write touched.
#[test]
fn a_write_between_the_two_postgres_statements_is_caught_up_at_its_version() {
    let Some(database) = TestDatabase::postgres("catch_up_between") else {
        return;
    };
    let mut store = database.open();
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: 2,
        office_365_e3: 3,
        ems_e3: 2,
        workplace_analytics: 1,
    })
    .expect("seed world");
    let user = world.add_user("adele", Some("NL")).expect("a user");
    let tenant_id = world.engine.settings().tenant_id;
    let image = world.engine.to_image();
    store.create_tenant(&image.settings).expect("create the tenant");
    let mut version = store
        .write(tenant_id, &WriteBatch::from_image(image))
        .expect("store the seed world");
    let (mut b, b_version) = full_load(&mut store, tenant_id);
    let mut rename = |name: &str, version: u64| {
        let outcome = world
            .apply(Command::UpdateUser {
                user_id: user,
                changes: UserChanges {
                    display_name: Some(name.to_string()),
                    ..UserChanges::default()
                },
            })
            .expect("rename the user");
        let mut batch = WriteBatch::from_command_outcome(&outcome);
        batch.expected_version = Some(version);
        batch
    };
    version = store
        .write(tenant_id, &rename("First", version))
        .expect("the first write");
    let second = rename("Second", version);

    let mut locker = ::postgres::Client::connect(&database.url, ::postgres::NoTls).expect("connect");
    let mut lock = locker.transaction().expect("begin");
    lock.batch_execute("LOCK TABLE group_nestings IN ACCESS EXCLUSIVE MODE")
        .expect("lock the nesting edges");
    let mut follower = database.open();
    let catching_up = std::thread::spawn(move || follower.catch_up(tenant_id, b_version, None));
    let mut watcher = ::postgres::Client::connect(&database.url, ::postgres::NoTls).expect("connect");
    let started = std::time::Instant::now();
    loop {
        let waiting: i64 = watcher
            .query_one(
                // (The start of the second statement: `query` keeps only its first 1 kB.)
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE 'WITH u AS MATERIALIZED%'",
                &[],
            )
            .expect("watch the catch-up")
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the catch-up's second statement was never held up"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let later = store.write(tenant_id, &second).expect("the write in between");
    lock.commit().expect("release the lock");
    let caught_up = catching_up
        .join()
        .expect("the catch-up thread")
        .expect("read the catch-up");
    let CatchUp::Patch { patch, version: to } = caught_up else {
        panic!("expected a patch, got {caught_up:?}");
    };
    assert_eq!(to, later, "the patch names the version its rows are at");
    b.apply_patch(*patch).expect("apply the patch");
    let (loaded, loaded_version) = full_load(&mut store, tenant_id);
    assert_eq!(loaded_version, later);
    assert_eq!(b.to_image(), loaded.to_image());
    assert_eq!(b.user_view(user).expect("the user").display_name, "Second");
}
