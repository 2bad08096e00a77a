//! Nested groups and transitive licensing (issue 17): a member of a nested group is licensed
//! only with the tenant setting on, the state names the group that carries the license and the
//! path, cycles are refused and change nothing, removing an edge frees the seats, and a user
//! reached through two paths uses one seat.

use licensd_engine::{AssignedLicense, AssignmentStatus, Command, CommandError, Uuid};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E3};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn nest(world: &mut SeedWorld, group_id: Uuid, member_group_id: Uuid) -> Result<(), CommandError> {
    world
        .apply(Command::AddGroupMemberGroup {
            group_id,
            member_group_id,
        })
        .map(|_| ())
}

fn e3() -> Vec<AssignedLicense> {
    vec![AssignedLicense {
        sku_id: OFFICE_365_E3,
        disabled_plans: Vec::new(),
    }]
}

fn consumed(world: &SeedWorld) -> u32 {
    world.engine.sku_usage(OFFICE_365_E3).expect("E3").consumed_units
}

/// All Staff (E3) ⊃ Engineering ⊃ Platform; Alice is in Platform, Bob in All Staff.
struct Org {
    world: SeedWorld,
    all_staff: Uuid,
    engineering: Uuid,
    platform: Uuid,
    alice: Uuid,
    bob: Uuid,
}

fn org() -> Result<Org, Box<dyn std::error::Error>> {
    let mut world = SeedWorld::new(SeedSeats::default())?;
    let all_staff = world.add_group("All Staff")?;
    let engineering = world.add_group("Engineering")?;
    let platform = world.add_group("Platform")?;
    let alice = world.add_user("alice", None)?;
    let bob = world.add_user("bob", None)?;
    world.add_member(platform, alice)?;
    world.add_member(all_staff, bob)?;
    nest(&mut world, all_staff, engineering)?;
    nest(&mut world, engineering, platform)?;
    world.assign_to_group(all_staff, e3(), Vec::new())?;
    world.process();
    Ok(Org {
        world,
        all_staff,
        engineering,
        platform,
        alice,
        bob,
    })
}

#[test]
fn a_nested_member_is_licensed_only_with_transitive_licensing_on_and_its_state_names_the_path() -> TestResult {
    let Org {
        mut world,
        all_staff,
        alice,
        bob,
        ..
    } = org()?;
    assert!(!world.engine.transitive_licensing(), "off by default, as in Entra");
    assert!(world.state(alice, OFFICE_365_E3, Some(all_staff)).is_none());
    assert_eq!(
        world.state(bob, OFFICE_365_E3, Some(all_staff)).map(|s| s.state),
        Some(AssignmentStatus::Active)
    );
    assert_eq!(consumed(&world), 1);

    let outcome = world.apply(Command::SetTransitiveLicensing { enabled: true })?;
    assert_eq!(outcome.newly_queued, vec![alice], "exactly the users below nested groups");
    world.process();
    let state = world
        .state(alice, OFFICE_365_E3, Some(all_staff))
        .expect("alice licensed through nesting");
    assert_eq!(state.state, AssignmentStatus::Active);
    assert_eq!(state.assigned_by_group, Some(all_staff), "the group that carries the license");
    assert_eq!(
        world.engine.licensing_path_text(alice, all_staff).as_deref(),
        Some("via Platform → Engineering → All Staff")
    );
    assert_eq!(world.engine.licensing_path_text(bob, all_staff), None, "a direct member");
    assert_eq!(consumed(&world), 2);

    world.apply(Command::SetTransitiveLicensing { enabled: false })?;
    world.process();
    assert!(world.state(alice, OFFICE_365_E3, Some(all_staff)).is_none());
    assert_eq!(consumed(&world), 1);
    Ok(())
}

#[test]
fn a_cycle_is_refused_and_changes_nothing() -> TestResult {
    let Org {
        mut world,
        all_staff,
        platform,
        ..
    } = org()?;
    let before = world.engine.to_image();
    assert_eq!(
        nest(&mut world, platform, all_staff),
        Err(CommandError::NestingCycle {
            group_id: platform,
            member_group_id: all_staff
        })
    );
    assert_eq!(
        nest(&mut world, platform, platform),
        Err(CommandError::NestingCycle {
            group_id: platform,
            member_group_id: platform
        })
    );
    let engineering = world.engine.member_groups(all_staff)?[0];
    assert!(matches!(
        nest(&mut world, all_staff, engineering),
        Err(CommandError::AlreadyNested { .. })
    ));
    assert_eq!(world.engine.to_image(), before);
    Ok(())
}

#[test]
fn removing_the_nesting_edge_removes_the_licenses_and_frees_the_seats() -> TestResult {
    let Org {
        mut world,
        all_staff,
        engineering,
        platform,
        alice,
        ..
    } = org()?;
    world.apply(Command::SetTransitiveLicensing { enabled: true })?;
    world.process();
    assert_eq!(consumed(&world), 2);
    let outcome = world.apply(Command::RemoveGroupMemberGroup {
        group_id: engineering,
        member_group_id: platform,
    })?;
    assert_eq!(outcome.newly_queued, vec![alice], "exactly the users below the edge");
    world.process();
    assert!(world.state(alice, OFFICE_365_E3, Some(all_staff)).is_none());
    assert_eq!(consumed(&world), 1);
    assert!(matches!(
        world.apply(Command::RemoveGroupMemberGroup {
            group_id: engineering,
            member_group_id: platform,
        }),
        Err(CommandError::NotNested { .. })
    ));
    Ok(())
}

#[test]
fn a_user_reached_through_two_paths_holds_one_state_and_one_seat() -> TestResult {
    let Org {
        mut world,
        all_staff,
        engineering,
        alice,
        ..
    } = org()?;
    world.apply(Command::SetTransitiveLicensing { enabled: true })?;
    // Alice is in Platform (⊂ Engineering ⊂ All Staff), and now directly in Engineering and in
    // a second group nested in All Staff.
    let design = world.add_group("Design")?;
    nest(&mut world, all_staff, design)?;
    world.add_member(design, alice)?;
    world.add_member(engineering, alice)?;
    world.process();
    let states = world.engine.user_license_states(alice)?;
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(states[0].assigned_by_group, Some(all_staff));
    assert_eq!(consumed(&world), 2);
    assert_eq!(
        world.engine.licensing_path_text(alice, all_staff).as_deref(),
        Some("via Design → All Staff"),
        "the shortest path, ties to the oldest direct membership (Design before Engineering)"
    );
    Ok(())
}

#[test]
fn nesting_survives_an_image_round_trip_and_deleting_a_group_drops_its_edges() -> TestResult {
    let Org {
        mut world,
        all_staff,
        engineering,
        platform,
        alice,
        ..
    } = org()?;
    world.apply(Command::SetTransitiveLicensing { enabled: true })?;
    world.process();
    let image = world.engine.to_image();
    assert_eq!(image.group_nestings.len(), 2);
    let restored = licensd_engine::Engine::from_image(image.clone())?;
    assert_eq!(restored.to_image(), image);
    assert_eq!(restored.transitive_member_users(all_staff)?.len(), 2);
    assert_eq!(restored.group_transitive_member_of(platform)?, vec![engineering, all_staff]);
    assert_eq!(restored.user_transitive_member_of(alice)?, vec![platform, engineering, all_staff]);

    // Engineering carries no license: it can be deleted; Alice loses All Staff's products.
    let outcome = world.apply(Command::DeleteGroup { group_id: engineering })?;
    assert_eq!(outcome.newly_queued, vec![alice]);
    world.process();
    assert!(world.state(alice, OFFICE_365_E3, Some(all_staff)).is_none());
    assert!(world.engine.to_image().group_nestings.is_empty());
    Ok(())
}
