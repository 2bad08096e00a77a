//! Nested groups and transitive licensing (issue 17): a member of a nested group is licensed
//! only with the tenant setting on, the state names the group that carries the license and the
//! path, cycles are refused and change nothing, removing an edge frees the seats, and a user
//! reached through two paths uses one seat.

use licensd_engine::{AssignedLicense, AssignmentStatus, Command, CommandError, Uuid};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E3};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The engine's refusal as it is, for the tests to compare (`CommandError` is large).
#[allow(clippy::result_large_err)]
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
fn a_nested_member_is_licensed_only_with_transitive_licensing_on_and_its_state_names_the_path() -> TestResult
{
    let Org {
        mut world,
        all_staff,
        alice,
        bob,
        ..
    } = org()?;
    assert!(
        !world.engine.transitive_licensing(),
        "off by default, as in Entra"
    );
    assert!(world.state(alice, OFFICE_365_E3, Some(all_staff)).is_none());
    assert_eq!(
        world.state(bob, OFFICE_365_E3, Some(all_staff)).map(|s| s.state),
        Some(AssignmentStatus::Active)
    );
    assert_eq!(consumed(&world), 1);

    let outcome = world.apply(Command::SetTransitiveLicensing { enabled: true })?;
    assert_eq!(
        outcome.newly_queued,
        vec![alice],
        "exactly the users below nested groups"
    );
    world.process();
    let state = world
        .state(alice, OFFICE_365_E3, Some(all_staff))
        .expect("alice licensed through nesting");
    assert_eq!(state.state, AssignmentStatus::Active);
    assert_eq!(
        state.assigned_by_group,
        Some(all_staff),
        "the group that carries the license"
    );
    assert_eq!(
        world.engine.licensing_path_text(alice, all_staff).as_deref(),
        Some("via Platform → Engineering → All Staff")
    );
    assert_eq!(
        world.engine.licensing_path_text(bob, all_staff),
        None,
        "a direct member"
    );
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
    assert_eq!(
        outcome.newly_queued,
        vec![alice],
        "exactly the users below the edge"
    );
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
    assert_eq!(
        restored.group_transitive_member_of(platform)?,
        vec![engineering, all_staff]
    );
    assert_eq!(
        restored.user_transitive_member_of(alice)?,
        vec![platform, engineering, all_staff]
    );

    // Engineering carries no license: it can be deleted; Alice loses All Staff's products.
    let outcome = world.apply(Command::DeleteGroup {
        group_id: engineering,
    })?;
    assert_eq!(outcome.newly_queued, vec![alice]);
    world.process();
    assert!(world.state(alice, OFFICE_365_E3, Some(all_staff)).is_none());
    assert!(world.engine.to_image().group_nestings.is_empty());
    Ok(())
}

mod properties {
    //! Incremental processing after random nesting, membership, license and setting changes
    //! equals re-evaluating everyone, and with seats to spare every user holds exactly the
    //! products of the groups it reaches (directly, or through nesting with the setting on).

    use std::collections::{BTreeMap, BTreeSet};

    use licensd_engine::{Command, Timestamp, Uuid};
    use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E1, OFFICE_365_E3};
    use proptest::prelude::*;

    const GROUPS: usize = 5;
    const USERS: usize = 6;

    #[derive(Clone, Debug)]
    enum Op {
        Nest(usize, usize),
        Unnest(usize, usize),
        Join(usize, usize),
        Leave(usize, usize),
        License(usize, bool),
        Unlicense(usize),
        Transitive(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..GROUPS, 0..GROUPS).prop_map(|(a, b)| Op::Nest(a, b)),
            2 => (0..GROUPS, 0..GROUPS).prop_map(|(a, b)| Op::Unnest(a, b)),
            3 => (0..GROUPS, 0..USERS).prop_map(|(g, u)| Op::Join(g, u)),
            1 => (0..GROUPS, 0..USERS).prop_map(|(g, u)| Op::Leave(g, u)),
            2 => (0..GROUPS, any::<bool>()).prop_map(|(g, e3)| Op::License(g, e3)),
            1 => (0..GROUPS).prop_map(Op::Unlicense),
            1 => any::<bool>().prop_map(Op::Transitive),
        ]
    }

    fn command(op: &Op, groups: &[Uuid], users: &[Uuid], world: &SeedWorld) -> Command {
        let license = |e3: bool| licensd_engine::AssignedLicense {
            sku_id: if e3 { OFFICE_365_E3 } else { OFFICE_365_E1 },
            disabled_plans: Vec::new(),
        };
        match *op {
            Op::Nest(a, b) => Command::AddGroupMemberGroup {
                group_id: groups[a],
                member_group_id: groups[b],
            },
            Op::Unnest(a, b) => Command::RemoveGroupMemberGroup {
                group_id: groups[a],
                member_group_id: groups[b],
            },
            Op::Join(g, u) => Command::AddGroupMember {
                group_id: groups[g],
                user_id: users[u],
            },
            Op::Leave(g, u) => Command::RemoveGroupMember {
                group_id: groups[g],
                user_id: users[u],
            },
            // E1 and E3 exclude each other's Exchange and SharePoint plans: some groups conflict.
            Op::License(g, e3) => Command::AssignGroupLicenses {
                group_id: groups[g],
                add_licenses: vec![license(e3)],
                remove_licenses: Vec::new(),
            },
            Op::Unlicense(g) => {
                let held = world
                    .engine
                    .group_view(groups[g])
                    .map(|view| view.assigned_licenses.iter().map(|l| l.sku_id).collect())
                    .unwrap_or_default();
                Command::AssignGroupLicenses {
                    group_id: groups[g],
                    add_licenses: Vec::new(),
                    remove_licenses: held,
                }
            }
            Op::Transitive(enabled) => Command::SetTransitiveLicensing { enabled },
        }
    }

    fn run(ops: &[Op], seats: SeedSeats) -> Result<(), TestCaseError> {
        let mut world = SeedWorld::new(seats).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut groups = Vec::new();
        for index in 0..GROUPS {
            groups.push(
                world
                    .add_group(&format!("G{index}"))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?,
            );
        }
        let mut users = Vec::new();
        for index in 0..USERS {
            users.push(
                world
                    .add_user(&format!("u{index}"), None)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?,
            );
        }
        for op in ops {
            let command = command(op, &groups, &users, &world);
            let before = world.engine.to_image();
            if world.apply(command).is_err() {
                prop_assert!(world.engine.to_image() == before, "a refusal changed the tenant");
                continue;
            }
            world.process();
            // Incremental equals re-evaluating everyone.
            let mut scratch = world.engine.clone();
            for user in &users {
                scratch
                    .apply(Command::ReprocessUser { user_id: *user }, world.now)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            scratch.process_all(Timestamp(world.now.0 + 5));
            let strip =
                |engine: &licensd_engine::Engine| -> BTreeMap<Uuid, Vec<(Uuid, Option<Uuid>, String)>> {
                    users
                        .iter()
                        .map(|user| {
                            let states = engine
                                .user_license_states(*user)
                                .unwrap_or_default()
                                .into_iter()
                                .map(|s| {
                                    (
                                        s.sku_id,
                                        s.assigned_by_group,
                                        format!("{:?}/{:?}", s.state, s.error),
                                    )
                                })
                                .collect();
                            (*user, states)
                        })
                        .collect()
                };
            prop_assert_eq!(strip(&world.engine), strip(&scratch), "after {:?}", op);
            prop_assert_eq!(world.engine.sku_usages(), scratch.sku_usages());
            // The image restores to the same tenant.
            let image = world.engine.to_image();
            let restored = licensd_engine::Engine::from_image(image.clone())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(restored.to_image() == image);
            // So does the engine's dense form (a persisted snapshot's).
            let dense = world.engine.dense_users();
            let restored = licensd_engine::Engine::from_dense_image(
                world.engine.image_without_users(),
                &dense.tables,
                &dense.bytes,
            )
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(restored.to_image() == image, "the dense round trip differs");
            // Every user has a state from exactly the licensed groups it reaches.
            for user in &users {
                let reached: BTreeSet<Uuid> = if world.engine.transitive_licensing() {
                    world
                        .engine
                        .user_transitive_member_of(*user)
                        .unwrap_or_default()
                        .into_iter()
                        .collect()
                } else {
                    world
                        .engine
                        .user_view(*user)
                        .map(|view| view.member_of.into_iter().collect())
                        .unwrap_or_default()
                };
                let licensed: BTreeSet<Uuid> = reached
                    .into_iter()
                    .filter(|group| {
                        world
                            .engine
                            .group_view(*group)
                            .is_ok_and(|view| !view.assigned_licenses.is_empty())
                    })
                    .collect();
                let from_groups: BTreeSet<Uuid> = world
                    .engine
                    .user_license_states(*user)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|state| state.assigned_by_group)
                    .collect();
                prop_assert_eq!(&from_groups, &licensed, "user {}", user);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn incremental_processing_after_random_nesting_changes_equals_processing_from_scratch(
            ops in proptest::collection::vec(op(), 1..24),
            scarce in any::<bool>(),
        ) {
            let seats = if scarce {
                SeedSeats { office_365_e1: 2, office_365_e3: 2, ..SeedSeats::default() }
            } else {
                SeedSeats::default()
            };
            run(&ops, seats)?;
        }
    }
}
