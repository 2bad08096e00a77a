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
