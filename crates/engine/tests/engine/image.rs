//! Tenant images: an engine rebuilt from its image is the same engine, and an image that refers
//! to something it does not hold is refused.

use licensd_engine::image::{MembershipImage, RestoreError};
use licensd_engine::{Engine, Timestamp, Uuid};
use licensd_fixtures::seed_world::SeedWorld;

#[test]
fn an_image_round_trips_and_the_rebuilt_engine_behaves_the_same() {
    let (mut world, directory) = SeedWorld::demo().expect("demo");
    let image = world.engine.to_image();
    let mut rebuilt = Engine::from_image(image.clone()).expect("rebuild");
    assert_eq!(rebuilt.to_image(), image);
    assert_eq!(rebuilt.license_snapshot(), world.engine.license_snapshot());
    assert_eq!(rebuilt.sku_usages(), world.engine.sku_usages());
    assert_eq!(rebuilt.tenant_overview(), world.engine.tenant_overview());
    // Both behave the same on the same next command: free an EMS seat.
    let command = licensd_engine::Command::RemoveGroupMember {
        group_id: directory.mobility_ems,
        user_id: directory.users[0],
    };
    let at = Timestamp(world.now.0 + 5000);
    world.engine.apply(command.clone(), at).expect("original");
    rebuilt.apply(command, at).expect("rebuilt");
    world.engine.process_all(at);
    rebuilt.process_all(at);
    assert_eq!(rebuilt.license_snapshot(), world.engine.license_snapshot());
    assert_eq!(
        rebuilt
            .sku_usage(licensd_fixtures::seed_world::EMS_E3)
            .expect("EMS")
            .waiting_users,
        9
    );
}

#[test]
fn an_image_with_a_dangling_reference_is_refused() {
    let (world, _) = SeedWorld::demo().expect("demo");
    let mut image = world.engine.to_image();
    image.users[0].memberships.push(MembershipImage {
        group_id: Uuid::from_u128(42),
        since: 1,
    });
    let error = Engine::from_image(image).expect_err("dangling group");
    assert!(
        matches!(error, RestoreError::UnknownReference { what: "group", .. }),
        "{error}"
    );
}

#[test]
fn an_image_with_a_user_twice_or_a_principal_name_twice_is_refused() {
    let (world, _) = SeedWorld::demo().expect("demo");
    let image = world.engine.to_image();
    // The same user id twice.
    let mut twice = image.clone();
    let mut copy = twice.users[1].clone();
    copy.user_principal_name = "someone.else@contoso.com".into();
    copy.id = twice.users[0].id;
    twice.users.push(copy);
    assert_eq!(
        Engine::from_image(twice).expect_err("refused"),
        RestoreError::Duplicate {
            what: "user",
            id: image.users[0].id
        }
    );
    // Two users whose principal names differ only in case.
    let mut twins = image.clone();
    let mut copy = twins.users[1].clone();
    copy.id = Uuid::from_u128(0x7717);
    copy.user_principal_name = twins.users[1].user_principal_name.to_uppercase();
    let name = copy.user_principal_name.clone();
    twins.users.push(copy);
    assert_eq!(
        Engine::from_image(twins).expect_err("refused"),
        RestoreError::Invalid(format!("userPrincipalName {name} is used by two users"))
    );
    // Without the copies the image restores.
    assert_eq!(
        Engine::from_image(image.clone()).expect("restores").to_image(),
        image
    );
}

#[test]
fn the_dense_image_round_trips_and_the_rebuilt_engine_behaves_the_same() {
    let (mut world, directory) = SeedWorld::demo().expect("demo");
    let dense = world.engine.dense_users();
    assert_eq!(dense.tables.users as usize, world.engine.to_image().users.len());
    let mut rebuilt =
        Engine::from_dense_image(world.engine.image_without_users(), &dense.tables, &dense.bytes)
            .expect("rebuild");
    assert_eq!(rebuilt.to_image(), world.engine.to_image());
    assert_eq!(rebuilt.sku_usages(), world.engine.sku_usages());
    let command = licensd_engine::Command::RemoveGroupMember {
        group_id: directory.mobility_ems,
        user_id: directory.users[0],
    };
    let at = Timestamp(world.now.0 + 5000);
    world.engine.apply(command.clone(), at).expect("original");
    rebuilt.apply(command, at).expect("rebuilt");
    world.engine.process_all(at);
    rebuilt.process_all(at);
    assert_eq!(rebuilt.license_snapshot(), world.engine.license_snapshot());
}

/// A damaged dense image is refused with an error, never a panic: cut at every length, with a
/// wrong number of users, with tables that do not match the head.
#[test]
fn a_damaged_dense_image_is_refused() {
    let (world, _) = SeedWorld::demo().expect("demo");
    let head = world.engine.image_without_users();
    let dense = world.engine.dense_users();
    // Every length would take minutes in a debug build: every 37th, and the last ones.
    let lengths = (0..dense.bytes.len())
        .step_by(37)
        .chain(dense.bytes.len().saturating_sub(40)..dense.bytes.len());
    for length in lengths {
        let result = Engine::from_dense_image(head.clone(), &dense.tables, &dense.bytes[..length]);
        assert!(result.is_err(), "cut at {length} of {}", dense.bytes.len());
    }
    let mut more_users = dense.tables.clone();
    more_users.users += 1;
    assert!(Engine::from_dense_image(head.clone(), &more_users, &dense.bytes).is_err());
    let mut fewer_users = dense.tables.clone();
    fewer_users.users -= 1;
    assert!(Engine::from_dense_image(head.clone(), &fewer_users, &dense.bytes).is_err());
    let mut no_plan_sets = dense.tables.clone();
    no_plan_sets.plan_sets.clear();
    assert!(matches!(
        Engine::from_dense_image(head.clone(), &no_plan_sets, &dense.bytes),
        Err(RestoreError::Invalid(_))
    ));
    let mut fewer_groups = head.clone();
    fewer_groups.groups.pop();
    fewer_groups.group_nestings.clear();
    assert!(Engine::from_dense_image(fewer_groups, &dense.tables, &dense.bytes).is_err());
    // Bytes flipped (every 29th in turn): an error or an engine, never a panic.
    for position in (0..dense.bytes.len()).step_by(29) {
        let mut flipped = dense.bytes.clone();
        flipped[position] ^= 0xff;
        let _ = Engine::from_dense_image(head.clone(), &dense.tables, &flipped);
    }
}
