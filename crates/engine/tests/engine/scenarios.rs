//! The seed document's scenarios, one test per section, played end to end on the seed world:
//! each test builds the situation the seed describes, checks the exact error recorded on the
//! user, then applies the resolution the seed gives and checks that the error clears.

use licensd_engine::{
    AssignedLicense, AssignmentSource, AssignmentStatus, CapabilityStatus, Command, CommandError,
    CountryCode, LicenseAssignmentState, LicenseErrorDetail, LicenseErrorKind, LicenseProcessingState,
    PlanConflict, PlanName, ProxyAddress, ServicePlanDefinition, UserChanges, Uuid,
};
use licensd_fixtures::seed_world::{
    SeedSeats, SeedWorld, EMS_E3, EXCHANGE_ONLINE_PLAN_1, EXCHANGE_ONLINE_PLAN_2, MICROSOFT_TEAMS_PLAN,
    OFFICE_365_E1, OFFICE_365_E3, SHAREPOINT_PLAN_1, SHAREPOINT_PLAN_2, WORKPLACE_ANALYTICS_PLAN,
    WORKPLACE_ANALYTICS_SKU,
};

/// Errors of test helpers, boxed: `CommandError` is large.
type TestError = Box<dyn std::error::Error>;
type TestResult = Result<(), TestError>;

/// Microsoft Sway (`SWAY`), a plan of Office 365 E3 with no rules.
const SWAY_PLAN: Uuid = Uuid::from_u128(0xa23b959c_7ce8_4e57_9140_b90eb88a9e97);

fn plan_name(service_plan_id: Uuid, service_plan_name: &str, display_name: &str) -> PlanName {
    PlanName {
        service_plan_id,
        service_plan_name: service_plan_name.to_string(),
        display_name: display_name.to_string(),
    }
}

fn exchange_1() -> PlanName {
    plan_name(
        EXCHANGE_ONLINE_PLAN_1,
        "EXCHANGE_S_STANDARD",
        "Exchange Online (Plan 1)",
    )
}

fn exchange_2() -> PlanName {
    plan_name(
        EXCHANGE_ONLINE_PLAN_2,
        "EXCHANGE_S_ENTERPRISE",
        "Exchange Online (Plan 2)",
    )
}

fn sharepoint_1() -> PlanName {
    plan_name(SHAREPOINT_PLAN_1, "SHAREPOINTSTANDARD", "SharePoint (Plan 1)")
}

fn sharepoint_2() -> PlanName {
    plan_name(SHAREPOINT_PLAN_2, "SHAREPOINTENTERPRISE", "SharePoint (Plan 2)")
}

fn teams() -> PlanName {
    plan_name(MICROSOFT_TEAMS_PLAN, "TEAMS1", "Microsoft Teams")
}

fn workplace_analytics() -> PlanName {
    plan_name(
        WORKPLACE_ANALYTICS_PLAN,
        "WORKPLACE_ANALYTICS",
        "Microsoft Workplace Analytics",
    )
}

fn seed_world(seats: SeedSeats) -> Result<SeedWorld, TestError> {
    Ok(SeedWorld::new(seats)?)
}

fn country(code: &str) -> Result<CountryCode, TestError> {
    Ok(CountryCode::parse(code)?)
}

/// The state of one assignment, failing the test when it does not exist.
fn state_of(world: &SeedWorld, user: Uuid, sku: Uuid, group: Option<Uuid>) -> LicenseAssignmentState {
    match world.state(user, sku, group) {
        Some(state) => state,
        None => panic!("user {user} has no assignment state of {sku} from {group:?}"),
    }
}

fn status_of(world: &SeedWorld, user: Uuid, sku: Uuid, group: Option<Uuid>) -> AssignmentStatus {
    state_of(world, user, sku, group).state
}

/// Asserts an assignment is in effect without error.
fn assert_active(world: &SeedWorld, user: Uuid, sku: Uuid, group: Option<Uuid>) {
    let state = state_of(world, user, sku, group);
    assert_eq!(state.state, AssignmentStatus::Active, "{state:?}");
    assert_eq!(state.error, None, "{state:?}");
    assert_eq!(state.error_detail, None, "{state:?}");
    assert!(!state.granted_plans.is_empty(), "{state:?}");
}

fn consumed(world: &SeedWorld, sku: Uuid) -> Result<u32, TestError> {
    Ok(world.engine.sku_usage(sku)?.consumed_units)
}

/// Every plan of a product except `keep`, for `disabledPlans`.
fn plans_except(world: &SeedWorld, sku: Uuid, keep: &[Uuid]) -> Result<Vec<Uuid>, TestError> {
    Ok(world
        .engine
        .sku_usage(sku)?
        .service_plans
        .iter()
        .map(|(id, _, _)| *id)
        .filter(|id| !keep.contains(id))
        .collect())
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

fn users(world: &mut SeedWorld, names: &[&str], location: Option<&str>) -> Result<Vec<Uuid>, TestError> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        ids.push(world.add_user(name, location)?);
    }
    Ok(ids)
}

#[test]
fn not_enough_licenses() -> TestResult {
    let mut world = seed_world(SeedSeats {
        ems_e3: 2,
        ..SeedSeats::default()
    })?;
    let group = world.add_group("Mobility - EMS E3")?;
    world.assign_to_group(group, vec![AssignedLicense::new(EMS_E3)], vec![])?;
    let members = users(&mut world, &["ann", "ben", "cat"], Some("US"))?;
    for member in &members {
        world.add_member(group, *member)?;
    }
    world.process();

    let (ann, ben, cat) = (members[0], members[1], members[2]);
    assert_active(&world, ann, EMS_E3, Some(group));
    assert_active(&world, ben, EMS_E3, Some(group));
    let waiting = state_of(&world, cat, EMS_E3, Some(group));
    assert_eq!(waiting.state, AssignmentStatus::Error);
    assert_eq!(waiting.error, Some(LicenseErrorKind::CountViolation));
    assert_eq!(
        waiting.error_detail,
        Some(LicenseErrorDetail::CountViolation {
            sku_id: EMS_E3,
            sku_part_number: "EMS".to_string(),
            prepaid_units: 2,
            consumed_units: 2,
            waiting_users: 1,
        })
    );
    assert!(waiting.granted_plans.is_empty());
    assert_eq!(world.engine.user_effective_plans(cat)?, Vec::<Uuid>::new());

    // "To see how many licenses are available, go to Licenses > All products."
    let usage = world.engine.sku_usage(EMS_E3)?;
    assert_eq!(
        (usage.prepaid_units, usage.consumed_units, usage.available_units),
        (2, 2, 0)
    );
    assert_eq!((usage.waiting_users, usage.over_allocated_units), (1, 0));

    // "Under Licensed users ... Under Licensed groups ..."
    let licensed = world.engine.licensed_users(EMS_E3)?;
    assert_eq!(
        licensed.iter().map(|user| user.user_id).collect::<Vec<_>>(),
        members
    );
    assert_eq!(licensed[0].user_principal_name, "ann@contoso.com");
    assert!(!licensed[0].direct);
    assert_eq!(licensed[0].via_groups, vec![group]);
    assert!(licensed[0].errors.is_empty());
    assert!(licensed[2].via_groups.is_empty());
    assert_eq!(
        licensed[2].errors,
        vec![(AssignmentSource::Group(group), LicenseErrorKind::CountViolation)]
    );
    assert_eq!(world.engine.licensed_groups(EMS_E3)?, vec![group]);
    assert_eq!(world.engine.members_with_license_errors(group)?, vec![cat]);

    // The intent is never lost: processing again changes nothing while no unit is free.
    world.apply(Command::ReprocessGroup { group_id: group })?;
    world.process();
    assert_eq!(
        status_of(&world, cat, EMS_E3, Some(group)),
        AssignmentStatus::Error
    );

    // Resolution: purchase more licenses.
    world.apply(Command::SetPrepaidUnits {
        sku_id: EMS_E3,
        prepaid_units: 3,
    })?;
    world.process();
    assert_active(&world, cat, EMS_E3, Some(group));
    let usage = world.engine.sku_usage(EMS_E3)?;
    assert_eq!(
        (usage.consumed_units, usage.available_units, usage.waiting_users),
        (3, 0, 0)
    );
    assert!(world.engine.groups_with_errors().is_empty());
    assert!(world.engine.users_with_errors().is_empty());
    Ok(())
}

fn conflict(
    service_plan: PlanName,
    conflicting_service_plan: PlanName,
    conflicting_sku_id: Uuid,
    conflicting_assignment: AssignmentSource,
) -> PlanConflict {
    PlanConflict {
        service_plan,
        conflicting_service_plan,
        conflicting_sku_id,
        conflicting_assignment,
    }
}

/// A user with E1 directly joins an E3 group: the E3 assignment fails, naming the conflicting plans.
fn user_with_direct_e1_in_an_e3_group(world: &mut SeedWorld) -> Result<(Uuid, Uuid), TestError> {
    let alice = world.add_user("alice", Some("US"))?;
    world.assign_to_user(alice, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    let group = world.add_group("Office 365 E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.add_member(group, alice)?;
    world.process();

    assert_active(world, alice, OFFICE_365_E1, None);
    let e3 = state_of(world, alice, OFFICE_365_E3, Some(group));
    assert_eq!(e3.state, AssignmentStatus::Error);
    assert_eq!(e3.error, Some(LicenseErrorKind::MutuallyExclusiveViolation));
    assert_eq!(
        e3.error_detail,
        Some(LicenseErrorDetail::MutuallyExclusiveViolation {
            service_plan: exchange_2(),
            conflicting_service_plan: exchange_1(),
            conflicting_sku_id: OFFICE_365_E1,
            conflicting_assignment: AssignmentSource::Direct,
            // Every conflicting pair at once, so that one change resolves them all.
            conflicts: vec![
                conflict(
                    exchange_2(),
                    exchange_1(),
                    OFFICE_365_E1,
                    AssignmentSource::Direct
                ),
                conflict(
                    sharepoint_2(),
                    sharepoint_1(),
                    OFFICE_365_E1,
                    AssignmentSource::Direct
                ),
            ],
        })
    );
    assert!(e3.granted_plans.is_empty());
    assert_eq!(consumed(world, OFFICE_365_E3)?, 0);
    assert_eq!(consumed(world, OFFICE_365_E1)?, 1);
    assert_eq!(world.engine.groups_with_errors(), vec![group]);
    Ok((alice, group))
}

#[test]
fn conflicting_service_plans_resolved_by_disabling_plans_in_the_group() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let (alice, group) = user_with_direct_e1_in_an_e3_group(&mut world)?;

    // Disabling only Exchange Online (Plan 2) leaves the SharePoint conflict, and the error says so.
    world.assign_to_group(
        group,
        vec![AssignedLicense::with_disabled_plans(
            OFFICE_365_E3,
            [EXCHANGE_ONLINE_PLAN_2],
        )],
        vec![],
    )?;
    world.process();
    let e3 = state_of(&world, alice, OFFICE_365_E3, Some(group));
    assert_eq!(e3.state, AssignmentStatus::Error);
    assert_eq!(
        e3.error_detail,
        Some(LicenseErrorDetail::MutuallyExclusiveViolation {
            service_plan: sharepoint_2(),
            conflicting_service_plan: sharepoint_1(),
            conflicting_sku_id: OFFICE_365_E1,
            conflicting_assignment: AssignmentSource::Direct,
            conflicts: vec![conflict(
                sharepoint_2(),
                sharepoint_1(),
                OFFICE_365_E1,
                AssignmentSource::Direct,
            )],
        })
    );

    // Disabling both conflicting plans in the group's E3 resolves it.
    world.assign_to_group(
        group,
        vec![AssignedLicense::with_disabled_plans(
            OFFICE_365_E3,
            [EXCHANGE_ONLINE_PLAN_2, SHAREPOINT_PLAN_2],
        )],
        vec![],
    )?;
    world.process();
    assert_active(&world, alice, OFFICE_365_E3, Some(group));
    let e3 = state_of(&world, alice, OFFICE_365_E3, Some(group));
    assert_eq!(
        sorted(e3.disabled_plans.clone()),
        sorted(vec![EXCHANGE_ONLINE_PLAN_2, SHAREPOINT_PLAN_2])
    );
    assert!(!e3.granted_plans.contains(&EXCHANGE_ONLINE_PLAN_2));
    assert!(!e3.granted_plans.contains(&SHAREPOINT_PLAN_2));
    assert!(e3.granted_plans.contains(&MICROSOFT_TEAMS_PLAN));
    let plans = world.engine.user_effective_plans(alice)?;
    assert!(plans.contains(&EXCHANGE_ONLINE_PLAN_1) && plans.contains(&SHAREPOINT_PLAN_1));
    assert!(!plans.contains(&EXCHANGE_ONLINE_PLAN_2) && !plans.contains(&SHAREPOINT_PLAN_2));
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);
    assert_eq!(consumed(&world, OFFICE_365_E1)?, 1);
    assert!(world.engine.groups_with_errors().is_empty());
    Ok(())
}

#[test]
fn conflicting_service_plans_resolved_by_disabling_plans_in_the_direct_e1() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let (alice, group) = user_with_direct_e1_in_an_e3_group(&mut world)?;

    world.assign_to_user(
        alice,
        vec![AssignedLicense::with_disabled_plans(
            OFFICE_365_E1,
            [EXCHANGE_ONLINE_PLAN_1, SHAREPOINT_PLAN_1],
        )],
        vec![],
    )?;
    world.process();
    assert_active(&world, alice, OFFICE_365_E1, None);
    assert_active(&world, alice, OFFICE_365_E3, Some(group));
    let plans = world.engine.user_effective_plans(alice)?;
    assert!(plans.contains(&EXCHANGE_ONLINE_PLAN_2) && plans.contains(&SHAREPOINT_PLAN_2));
    assert!(!plans.contains(&EXCHANGE_ONLINE_PLAN_1) && !plans.contains(&SHAREPOINT_PLAN_1));
    assert_eq!(consumed(&world, OFFICE_365_E1)?, 1);
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);
    assert!(world.engine.users_with_errors().is_empty());
    Ok(())
}

#[test]
fn conflicting_service_plans_resolved_by_removing_the_direct_e1() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let (alice, group) = user_with_direct_e1_in_an_e3_group(&mut world)?;

    // "Azure AD doesn't automatically resolve license conflicts": reprocessing changes nothing.
    world.apply(Command::ReprocessGroup { group_id: group })?;
    world.process();
    assert_eq!(
        world.error(alice, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::MutuallyExclusiveViolation)
    );
    assert_active(&world, alice, OFFICE_365_E1, None);

    world.assign_to_user(alice, vec![], vec![OFFICE_365_E1])?;
    world.process();
    assert!(world.state(alice, OFFICE_365_E1, None).is_none());
    assert_active(&world, alice, OFFICE_365_E3, Some(group));
    assert_eq!(consumed(&world, OFFICE_365_E1)?, 0);
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);
    assert!(world.engine.groups_with_errors().is_empty());
    assert!(!world.engine.has_members_with_license_errors(group)?);
    Ok(())
}

/// A user who gets Exchange Online (Plan 2) through an E3 group and Workplace Analytics directly.
fn analytics_user_with_exchange_from_a_group(world: &mut SeedWorld) -> Result<(Uuid, Uuid), TestError> {
    let group = world.add_group("Sales - Office 365 E3")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let user = world.add_user("analyst", Some("US"))?;
    world.add_member(group, user)?;
    world.process();
    world.assign_to_user(user, vec![AssignedLicense::new(WORKPLACE_ANALYTICS_SKU)], vec![])?;
    world.process();
    assert_active(world, user, OFFICE_365_E3, Some(group));
    assert_active(world, user, WORKPLACE_ANALYTICS_SKU, None);
    Ok((user, group))
}

#[test]
fn other_products_depend_on_this_license() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let (user, group) = analytics_user_with_exchange_from_a_group(&mut world)?;

    // Leaving the group would take away the last prerequisite of Workplace Analytics.
    world.remove_member(group, user)?;
    world.process();
    let e3 = state_of(&world, user, OFFICE_365_E3, Some(group));
    assert_eq!(e3.state, AssignmentStatus::ActiveWithError);
    assert_eq!(e3.error, Some(LicenseErrorKind::DependencyViolation));
    assert_eq!(
        e3.error_detail,
        Some(LicenseErrorDetail::DependencyViolation {
            dependent_service_plan: workplace_analytics(),
            dependent_sku_id: WORKPLACE_ANALYTICS_SKU,
            dependent_assignment: Some(AssignmentSource::Direct),
            required_service_plans: vec![exchange_1(), exchange_2()],
            removal_blocked: true,
        })
    );
    assert!(e3.granted_plans.contains(&EXCHANGE_ONLINE_PLAN_2));
    assert_active(&world, user, WORKPLACE_ANALYTICS_SKU, None);
    assert!(world
        .engine
        .user_effective_plans(user)?
        .contains(&EXCHANGE_ONLINE_PLAN_2));
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);
    // The former member is still listed with the group's errors.
    assert_eq!(world.engine.group_members(group)?, Vec::<Uuid>::new());
    assert_eq!(world.engine.members_with_license_errors(group)?, vec![user]);
    assert!(world.engine.has_members_with_license_errors(group)?);
    assert_eq!(world.engine.groups_with_errors(), vec![group]);

    // Nothing changes by itself, even on reprocess, until the administrator resolves it.
    world.apply(Command::ReprocessGroup { group_id: group })?;
    world.process();
    assert_eq!(
        status_of(&world, user, OFFICE_365_E3, Some(group)),
        AssignmentStatus::ActiveWithError
    );

    // Resolution: disable the dependent service for the user; the removal then goes through.
    world.assign_to_user(user, vec![], vec![WORKPLACE_ANALYTICS_SKU])?;
    world.process();
    assert!(world.state(user, OFFICE_365_E3, Some(group)).is_none());
    assert!(world.engine.user_license_states(user)?.is_empty());
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 0);
    assert_eq!(consumed(&world, WORKPLACE_ANALYTICS_SKU)?, 0);
    assert!(world.engine.groups_with_errors().is_empty());
    assert!(world.engine.members_with_license_errors(group)?.is_empty());
    Ok(())
}

#[test]
fn other_products_depend_on_this_license_resolved_by_another_group_with_the_prerequisite() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let (user, group) = analytics_user_with_exchange_from_a_group(&mut world)?;
    world.remove_member(group, user)?;
    world.process();
    assert_eq!(
        world.error(user, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::DependencyViolation)
    );

    // "make sure that the required plan is still assigned to users through some other method".
    let other = world.add_group("Engineering - Office 365 E3")?;
    world.assign_to_group(other, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.add_member(other, user)?;
    world.process();
    assert_active(&world, user, OFFICE_365_E3, Some(other));
    assert!(world.state(user, OFFICE_365_E3, Some(group)).is_none());
    assert_active(&world, user, WORKPLACE_ANALYTICS_SKU, None);
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);
    assert!(world.engine.groups_with_errors().is_empty());
    Ok(())
}

#[test]
fn usage_location_isnt_allowed() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let group = world.add_group("Frontline - Office 365 E1")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    let havana = world.add_user("havana", Some("CU"))?;
    let santiago = world.add_user("santiago", Some("CU"))?;
    let seattle = world.add_user("seattle", Some("US"))?;
    for user in [havana, santiago, seattle] {
        world.add_member(group, user)?;
    }
    world.process();

    assert_active(&world, seattle, OFFICE_365_E1, Some(group));
    for user in [havana, santiago] {
        let e1 = state_of(&world, user, OFFICE_365_E1, Some(group));
        assert_eq!(e1.state, AssignmentStatus::Error);
        assert_eq!(
            e1.error,
            Some(LicenseErrorKind::ProhibitedInUsageLocationViolation)
        );
        assert_eq!(
            e1.error_detail,
            Some(LicenseErrorDetail::ProhibitedInUsageLocationViolation {
                service_plan: Some(teams()),
                usage_location: Some(country("CU")?),
                inherited_from_tenant: false,
            })
        );
    }
    assert_eq!(consumed(&world, OFFICE_365_E1)?, 1);
    assert_eq!(
        world.engine.members_with_license_errors(group)?,
        vec![havana, santiago]
    );

    // The location was wrong: correct it and the license is assigned.
    world.apply(Command::UpdateUser {
        user_id: havana,
        changes: UserChanges {
            usage_location: Some(Some(country("US")?)),
            ..UserChanges::default()
        },
    })?;
    world.process();
    assert_active(&world, havana, OFFICE_365_E1, Some(group));

    // The user really is in a non-supported location: remove it from the group.
    world.remove_member(group, santiago)?;
    world.process();
    assert!(world.state(santiago, OFFICE_365_E1, Some(group)).is_none());
    assert_eq!(
        world.engine.user_view(santiago)?.usage_location,
        Some(country("CU")?)
    );
    assert_eq!(consumed(&world, OFFICE_365_E1)?, 2);
    assert!(world.engine.groups_with_errors().is_empty());
    assert!(world.engine.users_with_errors().is_empty());
    Ok(())
}

#[test]
fn users_without_usage_location_inherit_the_tenants() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let group = world.add_group("Office 365 E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let nomad = world.add_user("nomad", None)?;
    world.add_member(group, nomad)?;
    world.process();
    // The tenant is in the US: the user inherits it, and group licensing never sets the user's own.
    assert_active(&world, nomad, OFFICE_365_E3, Some(group));
    assert_eq!(world.engine.user_view(nomad)?.usage_location, None);

    // The tenant's default is a location where Teams is unavailable.
    world.apply(Command::SetDefaultUsageLocation {
        usage_location: Some(country("CU")?),
    })?;
    let ghost = world.add_user("ghost", None)?;
    world.add_member(group, ghost)?;
    world.process();
    let e3 = state_of(&world, ghost, OFFICE_365_E3, Some(group));
    assert_eq!(e3.state, AssignmentStatus::Error);
    assert_eq!(
        e3.error_detail,
        Some(LicenseErrorDetail::ProhibitedInUsageLocationViolation {
            service_plan: Some(teams()),
            usage_location: Some(country("CU")?),
            inherited_from_tenant: true,
        })
    );
    // What already works is not taken away, but the administrator sees the location problem.
    let kept = state_of(&world, nomad, OFFICE_365_E3, Some(group));
    assert_eq!(kept.state, AssignmentStatus::ActiveWithError);
    assert_eq!(
        kept.error,
        Some(LicenseErrorKind::ProhibitedInUsageLocationViolation)
    );
    assert!(kept.granted_plans.contains(&MICROSOFT_TEAMS_PLAN));
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);

    // No location at all: neither the user nor the tenant has one.
    world.apply(Command::SetDefaultUsageLocation { usage_location: None })?;
    world.process();
    let e3 = state_of(&world, ghost, OFFICE_365_E3, Some(group));
    assert_eq!(e3.state, AssignmentStatus::Error);
    assert_eq!(
        e3.error,
        Some(LicenseErrorKind::ProhibitedInUsageLocationViolation)
    );
    assert_eq!(
        e3.error_detail,
        Some(LicenseErrorDetail::ProhibitedInUsageLocationViolation {
            service_plan: None,
            usage_location: None,
            inherited_from_tenant: false,
        })
    );

    world.apply(Command::SetDefaultUsageLocation {
        usage_location: Some(country("US")?),
    })?;
    world.process();
    assert_active(&world, ghost, OFFICE_365_E3, Some(group));
    assert_active(&world, nomad, OFFICE_365_E3, Some(group));
    assert_eq!(world.engine.user_view(ghost)?.usage_location, None);
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 2);
    Ok(())
}

#[test]
fn more_than_one_product_on_a_group_is_all_or_nothing() -> TestResult {
    let mut world = seed_world(SeedSeats {
        ems_e3: 1,
        ..SeedSeats::default()
    })?;
    let group = world.add_group("Office 365 E3 + EMS")?;
    world.assign_to_group(
        group,
        vec![AssignedLicense::new(OFFICE_365_E3), AssignedLicense::new(EMS_E3)],
        vec![],
    )?;
    let first = world.add_user("first", Some("US"))?;
    let second = world.add_user("second", Some("US"))?;
    world.add_member(group, first)?;
    world.add_member(group, second)?;
    world.process();

    assert_active(&world, first, OFFICE_365_E3, Some(group));
    assert_active(&world, first, EMS_E3, Some(group));
    // Not enough EMS licenses: E3 is not assigned either.
    let ems = state_of(&world, second, EMS_E3, Some(group));
    assert_eq!(ems.state, AssignmentStatus::Error);
    assert_eq!(
        ems.error_detail,
        Some(LicenseErrorDetail::CountViolation {
            sku_id: EMS_E3,
            sku_part_number: "EMS".to_string(),
            prepaid_units: 1,
            consumed_units: 1,
            waiting_users: 1,
        })
    );
    let e3 = state_of(&world, second, OFFICE_365_E3, Some(group));
    assert_eq!(e3.state, AssignmentStatus::Error);
    assert_eq!(e3.error, Some(LicenseErrorKind::CountViolation));
    assert_eq!(
        e3.error_detail,
        Some(LicenseErrorDetail::BlockedBySibling {
            sibling_sku_id: EMS_E3,
            sibling_error: LicenseErrorKind::CountViolation,
        })
    );
    assert!(e3.granted_plans.is_empty());
    assert!(world.engine.user_effective_plans(second)?.is_empty());
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);
    assert_eq!(consumed(&world, EMS_E3)?, 1);
    // "You can see the users who failed to get assigned and check which products are affected."
    assert_eq!(world.engine.members_with_license_errors(group)?, vec![second]);
    let affected: Vec<(Uuid, Option<LicenseErrorKind>)> = world
        .engine
        .user_license_states(second)?
        .iter()
        .map(|state| (state.sku_id, state.error))
        .collect();
    assert_eq!(affected.len(), 2);
    assert!(affected.contains(&(OFFICE_365_E3, Some(LicenseErrorKind::CountViolation))));
    assert!(affected.contains(&(EMS_E3, Some(LicenseErrorKind::CountViolation))));

    // One more EMS seat: the second user gets both products.
    world.apply(Command::SetPrepaidUnits {
        sku_id: EMS_E3,
        prepaid_units: 3,
    })?;
    world.process();
    assert_active(&world, second, OFFICE_365_E3, Some(group));
    assert_active(&world, second, EMS_E3, Some(group));

    // A conflict on E3 (direct E1) keeps EMS from being assigned although a seat is free.
    let third = world.add_user("third", Some("US"))?;
    world.assign_to_user(third, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    world.add_member(group, third)?;
    world.process();
    assert_eq!(
        world.error(third, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::MutuallyExclusiveViolation)
    );
    let ems = state_of(&world, third, EMS_E3, Some(group));
    assert_eq!(ems.state, AssignmentStatus::Error);
    assert_eq!(ems.error, Some(LicenseErrorKind::MutuallyExclusiveViolation));
    assert_eq!(
        ems.error_detail,
        Some(LicenseErrorDetail::BlockedBySibling {
            sibling_sku_id: OFFICE_365_E3,
            sibling_error: LicenseErrorKind::MutuallyExclusiveViolation,
        })
    );
    assert_eq!(consumed(&world, EMS_E3)?, 2);
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 2);
    Ok(())
}

const SEED_PREREQUISITE_MESSAGE: &str = "License operation failed. Make sure that the group has necessary \
     services before adding or removing a dependent service. The service Microsoft Workplace Analytics requires";

#[test]
fn add_on_prerequisites_group_refused_with_the_seed_message() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let group = world.add_group("Workplace Analytics")?;
    let user = world.add_user("analyst", Some("US"))?;
    world.add_member(group, user)?;
    let snapshot_before = world.engine.license_snapshot();

    let error =
        match world.assign_to_group(group, vec![AssignedLicense::new(WORKPLACE_ANALYTICS_SKU)], vec![]) {
            Ok(outcome) => panic!("Workplace Analytics alone was accepted on a group: {outcome:?}"),
            Err(error) => error,
        };
    assert_eq!(
        error,
        CommandError::GroupPrerequisiteMissing {
            group_id: group,
            service: workplace_analytics(),
            requires_any_of: vec![exchange_1(), exchange_2()],
        }
    );
    let message = error.to_string();
    assert!(message.starts_with(SEED_PREREQUISITE_MESSAGE), "{message}");
    assert_eq!(
        message,
        format!(
            "{SEED_PREREQUISITE_MESSAGE} Exchange Online (Plan 1) or Exchange Online (Plan 2) to be enabled as well."
        )
    );
    assert_eq!(
        error.license_error_kind(),
        Some(LicenseErrorKind::DependencyViolation)
    );
    assert!(world.engine.group_view(group)?.assigned_licenses.is_empty());
    assert!(world.engine.licensed_groups(WORKPLACE_ANALYTICS_SKU)?.is_empty());
    assert_eq!(world.engine.queued_users(), 0);
    assert_eq!(world.engine.license_snapshot(), snapshot_before);

    // A group that already has the full E3 can take the add-on.
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.assign_to_group(group, vec![AssignedLicense::new(WORKPLACE_ANALYTICS_SKU)], vec![])?;
    world.process();
    assert_active(&world, user, OFFICE_365_E3, Some(group));
    assert_active(&world, user, WORKPLACE_ANALYTICS_SKU, Some(group));
    assert_eq!(
        world.engine.group_view(group)?.assigned_licenses,
        vec![
            AssignedLicense::new(OFFICE_365_E3),
            AssignedLicense::new(WORKPLACE_ANALYTICS_SKU),
        ]
    );

    // The same check guards removing the prerequisite or disabling its plan.
    for (add, remove) in [
        (vec![], vec![OFFICE_365_E3]),
        (
            vec![AssignedLicense::with_disabled_plans(
                OFFICE_365_E3,
                [EXCHANGE_ONLINE_PLAN_2],
            )],
            vec![],
        ),
    ] {
        let error = match world.assign_to_group(group, add, remove) {
            Ok(outcome) => panic!("the prerequisite of Workplace Analytics was taken away: {outcome:?}"),
            Err(error) => error,
        };
        assert!(
            matches!(error, CommandError::GroupPrerequisiteMissing { .. }),
            "{error:?}"
        );
        assert!(error.to_string().starts_with(SEED_PREREQUISITE_MESSAGE));
    }
    assert_eq!(world.engine.group_view(group)?.assigned_licenses.len(), 2);
    assert_eq!(world.engine.queued_users(), 0);
    Ok(())
}

#[test]
fn standalone_add_on_group_with_e3_exchange_only_and_workplace_analytics() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let e3_but_exchange = plans_except(&world, OFFICE_365_E3, &[EXCHANGE_ONLINE_PLAN_2])?;
    let pilot = world.add_group("Analytics pilot (E3)")?;
    world.assign_to_group(
        pilot,
        vec![
            AssignedLicense::with_disabled_plans(OFFICE_365_E3, e3_but_exchange.clone()),
            AssignedLicense::new(WORKPLACE_ANALYTICS_SKU),
        ],
        vec![],
    )?;
    let sales = world.add_group("Sales - Office 365 E3")?;
    world.assign_to_group(sales, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let both = world.add_user("both", Some("US"))?;
    let pilot_only = world.add_user("pilot", Some("US"))?;
    world.add_member(sales, both)?;
    world.add_member(pilot, both)?;
    world.add_member(pilot, pilot_only)?;
    world.process();

    assert_active(&world, both, OFFICE_365_E3, Some(sales));
    assert_active(&world, both, OFFICE_365_E3, Some(pilot));
    assert_active(&world, both, WORKPLACE_ANALYTICS_SKU, Some(pilot));
    assert_active(&world, pilot_only, OFFICE_365_E3, Some(pilot));
    assert_active(&world, pilot_only, WORKPLACE_ANALYTICS_SKU, Some(pilot));
    assert_eq!(
        state_of(&world, pilot_only, OFFICE_365_E3, Some(pilot)).granted_plans,
        vec![EXCHANGE_ONLINE_PLAN_2]
    );
    // One E3 seat per user, however many groups give it.
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 2);
    assert_eq!(consumed(&world, WORKPLACE_ANALYTICS_SKU)?, 2);
    // Graph assignedLicenses: per product, the intersection of the disabled plans.
    let licenses = world.engine.user_assigned_licenses(both)?;
    let e3 = licenses
        .iter()
        .find(|license| license.sku_id == OFFICE_365_E3)
        .map(|license| license.disabled_plans.clone());
    assert_eq!(e3, Some(vec![]));
    let licenses = world.engine.user_assigned_licenses(pilot_only)?;
    let e3 = licenses
        .iter()
        .find(|license| license.sku_id == OFFICE_365_E3)
        .map(|license| sorted(license.disabled_plans.clone()));
    assert_eq!(e3, Some(sorted(e3_but_exchange)));
    let licensed = world.engine.licensed_users(OFFICE_365_E3)?;
    let entry = licensed.iter().find(|user| user.user_id == both);
    assert_eq!(
        entry.map(|user| sorted(user.via_groups.clone())),
        Some(sorted(vec![sales, pilot]))
    );

    // The seed's tip: a second add-on group on E1 distributes the add-on to E1 users without
    // consuming additional licenses.
    let e1_but_exchange = plans_except(&world, OFFICE_365_E1, &[EXCHANGE_ONLINE_PLAN_1])?;
    let pilot_e1 = world.add_group("Analytics pilot (E1)")?;
    world.assign_to_group(
        pilot_e1,
        vec![
            AssignedLicense::with_disabled_plans(OFFICE_365_E1, e1_but_exchange),
            AssignedLicense::new(WORKPLACE_ANALYTICS_SKU),
        ],
        vec![],
    )?;
    let frontline = world.add_group("Frontline - Office 365 E1")?;
    world.assign_to_group(frontline, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    let e1_user = world.add_user("frontliner", Some("US"))?;
    world.add_member(frontline, e1_user)?;
    world.add_member(pilot_e1, e1_user)?;
    world.process();
    assert_active(&world, e1_user, OFFICE_365_E1, Some(frontline));
    assert_active(&world, e1_user, OFFICE_365_E1, Some(pilot_e1));
    assert_active(&world, e1_user, WORKPLACE_ANALYTICS_SKU, Some(pilot_e1));
    assert_eq!(consumed(&world, OFFICE_365_E1)?, 1);
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 2);
    assert_eq!(consumed(&world, WORKPLACE_ANALYTICS_SKU)?, 3);
    assert!(world.engine.users_with_errors().is_empty());
    Ok(())
}

fn replace_proxy_addresses(world: &mut SeedWorld, user: Uuid, addresses: &[&str]) -> TestResult {
    let mut proxy_addresses = Vec::with_capacity(addresses.len());
    for address in addresses {
        proxy_addresses.push(ProxyAddress::parse(address)?);
    }
    world.apply(Command::UpdateUser {
        user_id: user,
        changes: UserChanges {
            proxy_addresses: Some(proxy_addresses),
            ..UserChanges::default()
        },
    })?;
    Ok(())
}

fn duplicate_proxy_address_scenario(self_healing: bool) -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    world.apply(Command::SetSelfHealing {
        enabled: self_healing,
    })?;
    let alice = world.add_user("alice", Some("US"))?;
    let bob = world.add_user("bob", Some("US"))?;
    let carol = world.add_user("carol", Some("US"))?;
    // Bob was misconfigured with Alice's address (in another case: the same address for Exchange).
    replace_proxy_addresses(
        &mut world,
        bob,
        &["SMTP:bob@contoso.com", "smtp:Alice@Contoso.com"],
    )?;
    let group = world.add_group("Office 365 E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    for user in [alice, bob, carol] {
        world.add_member(group, user)?;
    }
    let mobility = world.add_group("Mobility - EMS E3")?;
    world.assign_to_group(mobility, vec![AssignedLicense::new(EMS_E3)], vec![])?;
    world.add_member(mobility, alice)?;
    world.process();

    // Never silent: the error is recorded, with the address and the other user.
    for (user, other) in [(alice, bob), (bob, alice)] {
        let e3 = state_of(&world, user, OFFICE_365_E3, Some(group));
        assert_eq!(e3.state, AssignmentStatus::Error);
        assert_eq!(e3.error, Some(LicenseErrorKind::UniquenessViolation));
        assert_eq!(
            e3.error_detail,
            Some(LicenseErrorDetail::UniquenessViolation {
                proxy_address: "smtp:alice@contoso.com".to_string(),
                other_user_ids: vec![other],
            })
        );
    }
    assert_active(&world, carol, OFFICE_365_E3, Some(group));
    // EMS has no mailbox plan: it is assigned.
    assert_active(&world, alice, EMS_E3, Some(mobility));
    assert_eq!(world.engine.users_with_errors(), vec![alice, bob]);
    assert_eq!(world.engine.groups_with_errors(), vec![group]);
    assert_eq!(
        world
            .engine
            .tenant_overview()
            .errors_by_kind
            .get(&LicenseErrorKind::UniquenessViolation)
            .copied(),
        Some(2)
    );
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);

    // Fix Bob's addresses.
    let queued_before = world.engine.queued_users();
    replace_proxy_addresses(&mut world, bob, &["SMTP:bob@contoso.com"])?;
    let queued_by_fix = world.engine.queued_users() - queued_before;
    assert_eq!(queued_by_fix, if self_healing { 2 } else { 1 });
    world.process();
    assert_active(&world, bob, OFFICE_365_E3, Some(group));
    if self_healing {
        // The other user who shared the address was re-queued automatically.
        assert_active(&world, alice, OFFICE_365_E3, Some(group));
    } else {
        let e3 = state_of(&world, alice, OFFICE_365_E3, Some(group));
        assert_eq!(e3.state, AssignmentStatus::Error);
        assert_eq!(e3.error, Some(LicenseErrorKind::UniquenessViolation));
        // "make sure to force license processing on the group".
        world.apply(Command::ReprocessGroup { group_id: group })?;
        world.process();
        assert_active(&world, alice, OFFICE_365_E3, Some(group));
    }
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 3);
    assert!(world.engine.users_with_errors().is_empty());
    assert!(world.engine.groups_with_errors().is_empty());
    Ok(())
}

#[test]
fn duplicate_proxy_addresses_are_recorded_as_uniqueness_violation() -> TestResult {
    duplicate_proxy_address_scenario(true)?;
    duplicate_proxy_address_scenario(false)
}

#[test]
fn force_license_processing_after_freeing_seats() -> TestResult {
    let mut world = seed_world(SeedSeats {
        office_365_e3: 2,
        ..SeedSeats::default()
    })?;
    world.apply(Command::SetSelfHealing { enabled: false })?;
    let direct = users(&mut world, &["alice", "bob"], Some("US"))?;
    for user in &direct {
        world.assign_to_user(*user, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    }
    let group = world.add_group("Office 365 E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let waiting = users(&mut world, &["carol", "dave", "erin"], Some("US"))?;
    for user in &waiting {
        world.add_member(group, *user)?;
    }
    world.process();
    let (carol, dave, erin) = (waiting[0], waiting[1], waiting[2]);
    for user in &waiting {
        assert_eq!(
            world.error(*user, OFFICE_365_E3, Some(group)),
            Some(LicenseErrorKind::CountViolation)
        );
    }
    assert_eq!(
        state_of(&world, carol, OFFICE_365_E3, Some(group)).error_detail,
        Some(LicenseErrorDetail::CountViolation {
            sku_id: OFFICE_365_E3,
            sku_part_number: "ENTERPRISEPACK".to_string(),
            prepaid_units: 2,
            consumed_units: 2,
            waiting_users: 3,
        })
    );

    // Free a seat by removing a direct assignment: without self-healing nobody gets it yet.
    world.assign_to_user(direct[0], vec![], vec![OFFICE_365_E3])?;
    world.process();
    let usage = world.engine.sku_usage(OFFICE_365_E3)?;
    assert_eq!(
        (usage.consumed_units, usage.available_units, usage.waiting_users),
        (1, 1, 3)
    );
    for user in &waiting {
        assert_eq!(
            status_of(&world, *user, OFFICE_365_E3, Some(group)),
            AssignmentStatus::Error
        );
    }

    // Reprocess the group: the first waiting member gets the seat.
    let outcome = world.apply(Command::ReprocessGroup { group_id: group })?;
    assert_eq!(outcome.queued_users, 3);
    assert_eq!(
        world.engine.group_processing_state(group)?,
        LicenseProcessingState::QueuedForProcessing
    );
    world.process();
    assert_active(&world, carol, OFFICE_365_E3, Some(group));
    assert_eq!(
        status_of(&world, dave, OFFICE_365_E3, Some(group)),
        AssignmentStatus::Error
    );
    assert_eq!(
        status_of(&world, erin, OFFICE_365_E3, Some(group)),
        AssignmentStatus::Error
    );
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 2);

    // With self-healing (the default), a freed seat goes to the first waiting user by itself,
    // first come first served: a user who started waiting later does not jump the queue.
    world.apply(Command::SetSelfHealing { enabled: true })?;
    let frank = world.add_user("frank", Some("US"))?;
    world.add_member(group, frank)?;
    world.process();
    assert_eq!(
        world.error(frank, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::CountViolation)
    );
    world.assign_to_user(direct[1], vec![], vec![OFFICE_365_E3])?;
    world.process();
    assert_active(&world, dave, OFFICE_365_E3, Some(group));
    assert_eq!(
        status_of(&world, erin, OFFICE_365_E3, Some(group)),
        AssignmentStatus::Error
    );
    assert_eq!(
        status_of(&world, frank, OFFICE_365_E3, Some(group)),
        AssignmentStatus::Error
    );
    let usage = world.engine.sku_usage(OFFICE_365_E3)?;
    assert_eq!(
        (usage.consumed_units, usage.available_units, usage.waiting_users),
        (2, 0, 2)
    );

    // Buying a seat goes to the next in line.
    world.apply(Command::SetPrepaidUnits {
        sku_id: OFFICE_365_E3,
        prepaid_units: 3,
    })?;
    world.process();
    assert_active(&world, erin, OFFICE_365_E3, Some(group));
    assert_eq!(
        status_of(&world, frank, OFFICE_365_E3, Some(group)),
        AssignmentStatus::Error
    );
    assert_eq!(world.engine.members_with_license_errors(group)?, vec![frank]);
    Ok(())
}

#[test]
fn how_to_find_license_assignment_errors() -> TestResult {
    let mut world = seed_world(SeedSeats {
        ems_e3: 1,
        ..SeedSeats::default()
    })?;
    let sales = world.add_group("Sales - Office 365 E3")?;
    let mobility = world.add_group("Mobility - EMS E3")?;
    let frontline = world.add_group("Frontline - Office 365 E1")?;
    world.assign_to_group(sales, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.assign_to_group(mobility, vec![AssignedLicense::new(EMS_E3)], vec![])?;
    world.assign_to_group(frontline, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    let people = users(&mut world, &["ann", "ben", "cat", "dan", "eve"], Some("US"))?;
    let (ann, ben, cat, dan, eve) = (people[0], people[1], people[2], people[3], people[4]);
    world.assign_to_user(ann, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    world.add_member(sales, ann)?;
    world.add_member(sales, ben)?;
    world.add_member(mobility, cat)?;
    world.add_member(mobility, dan)?;
    world.add_member(frontline, eve)?;
    world.process();

    // 1-2: per group, a notice and the list of affected users, with details per user.
    assert!(world.engine.has_members_with_license_errors(sales)?);
    assert!(world.engine.has_members_with_license_errors(mobility)?);
    assert!(!world.engine.has_members_with_license_errors(frontline)?);
    assert_eq!(world.engine.members_with_license_errors(sales)?, vec![ann]);
    assert_eq!(world.engine.members_with_license_errors(mobility)?, vec![dan]);
    assert!(world.engine.members_with_license_errors(frontline)?.is_empty());
    let view = world.engine.group_view(sales)?;
    assert_eq!((view.member_count, view.members_with_license_errors), (2, 1));
    assert_eq!(
        view.license_processing_state,
        LicenseProcessingState::ProcessingComplete
    );
    assert_eq!(
        world.error(ann, OFFICE_365_E3, Some(sales)),
        Some(LicenseErrorKind::MutuallyExclusiveViolation)
    );
    assert_eq!(
        world.error(dan, EMS_E3, Some(mobility)),
        Some(LicenseErrorKind::CountViolation)
    );

    // 3-4: tenant overview and the list of groups with errors.
    assert_eq!(world.engine.groups_with_errors(), vec![sales, mobility]);
    assert_eq!(world.engine.users_with_errors(), vec![ann, dan]);
    let overview = world.engine.tenant_overview();
    assert_eq!(overview.users, 5);
    assert_eq!(overview.groups, 3);
    assert_eq!(overview.licensed_groups, 3);
    assert_eq!(overview.groups_with_errors, 2);
    assert_eq!(overview.users_with_errors, 2);
    assert_eq!(overview.queued_users, 0);
    assert_eq!(
        overview.errors_by_kind.into_iter().collect::<Vec<_>>(),
        vec![
            (LicenseErrorKind::CountViolation, 1),
            (LicenseErrorKind::MutuallyExclusiveViolation, 1),
        ]
    );
    assert_eq!(overview.products, world.engine.sku_usages());
    assert_eq!(overview.products.len(), 4);

    // Per product: licensed users (direct and via which groups) and licensed groups.
    let e3_users = world.engine.licensed_users(OFFICE_365_E3)?;
    assert_eq!(
        e3_users
            .iter()
            .map(|user| (
                user.user_id,
                user.direct,
                user.via_groups.clone(),
                user.errors.clone()
            ))
            .collect::<Vec<_>>(),
        vec![
            (
                ann,
                false,
                vec![],
                vec![(
                    AssignmentSource::Group(sales),
                    LicenseErrorKind::MutuallyExclusiveViolation
                )]
            ),
            (ben, false, vec![sales], vec![]),
        ]
    );
    let e1_users = world.engine.licensed_users(OFFICE_365_E1)?;
    assert_eq!(
        e1_users
            .iter()
            .map(|user| (user.user_id, user.direct, user.via_groups.clone()))
            .collect::<Vec<_>>(),
        vec![(ann, true, vec![]), (eve, false, vec![frontline])]
    );
    assert_eq!(world.engine.licensed_groups(OFFICE_365_E3)?, vec![sales]);
    assert_eq!(world.engine.licensed_groups(EMS_E3)?, vec![mobility]);
    assert_eq!(world.engine.licensed_groups(OFFICE_365_E1)?, vec![frontline]);
    assert!(world.engine.licensed_groups(WORKPLACE_ANALYTICS_SKU)?.is_empty());
    let _ = cat;
    Ok(())
}

#[test]
fn group_license_processing_state_goes_queued_in_progress_complete() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let group = world.add_group("Office 365 E3 users")?;
    let members = users(&mut world, &["ann", "ben", "cat"], Some("US"))?;
    for member in &members {
        world.add_member(group, *member)?;
    }
    // Members of a group without products are not queued.
    assert_eq!(world.engine.queued_users(), 0);
    assert_eq!(
        world.engine.group_processing_state(group)?,
        LicenseProcessingState::ProcessingComplete
    );

    let outcome = world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    assert_eq!(outcome.queued_users, 3);
    assert_eq!(
        world.engine.group_processing_state(group)?,
        LicenseProcessingState::QueuedForProcessing
    );
    assert_eq!(
        world.engine.group_view(group)?.license_processing_state,
        LicenseProcessingState::QueuedForProcessing
    );

    let at = world.now;
    let report = world.engine.process_batch(1, at);
    assert_eq!((report.evaluated_users, report.remaining_users), (1, 2));
    assert_eq!(
        world.engine.group_processing_state(group)?,
        LicenseProcessingState::ProcessingInProgress
    );
    assert_active(&world, members[0], OFFICE_365_E3, Some(group));
    assert!(world.state(members[1], OFFICE_365_E3, Some(group)).is_none());

    let report = world.engine.process_batch(1, at);
    assert_eq!((report.evaluated_users, report.remaining_users), (1, 1));
    assert_eq!(
        world.engine.group_processing_state(group)?,
        LicenseProcessingState::ProcessingInProgress
    );

    let report = world.engine.process_batch(1, at);
    assert_eq!((report.evaluated_users, report.remaining_users), (1, 0));
    assert_eq!(
        world.engine.group_processing_state(group)?,
        LicenseProcessingState::ProcessingComplete
    );
    for member in &members {
        assert_active(&world, *member, OFFICE_365_E3, Some(group));
    }
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 3);
    Ok(())
}

#[test]
fn lowering_seats_below_consumption_takes_nothing_away() -> TestResult {
    let mut world = seed_world(SeedSeats {
        office_365_e3: 3,
        ..SeedSeats::default()
    })?;
    let group = world.add_group("Office 365 E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let members = users(&mut world, &["ann", "ben", "cat"], Some("US"))?;
    for member in &members {
        world.add_member(group, *member)?;
    }
    world.process();

    world.apply(Command::SetPrepaidUnits {
        sku_id: OFFICE_365_E3,
        prepaid_units: 1,
    })?;
    world.apply(Command::ReprocessGroup { group_id: group })?;
    world.process();
    for member in &members {
        assert_active(&world, *member, OFFICE_365_E3, Some(group));
    }
    let usage = world.engine.sku_usage(OFFICE_365_E3)?;
    assert_eq!(
        (
            usage.prepaid_units,
            usage.consumed_units,
            usage.available_units,
            usage.over_allocated_units
        ),
        (1, 3, 0, 2)
    );

    // New assignments never push consumption further above the purchased seats.
    let late = world.add_user("late", Some("US"))?;
    world.add_member(group, late)?;
    world.process();
    assert_eq!(
        state_of(&world, late, OFFICE_365_E3, Some(group)).error_detail,
        Some(LicenseErrorDetail::CountViolation {
            sku_id: OFFICE_365_E3,
            sku_part_number: "ENTERPRISEPACK".to_string(),
            prepaid_units: 1,
            consumed_units: 3,
            waiting_users: 1,
        })
    );

    // Freeing seats first brings consumption back to the purchase, then serves the waiting user.
    world.remove_member(group, members[0])?;
    world.remove_member(group, members[1])?;
    world.process();
    let usage = world.engine.sku_usage(OFFICE_365_E3)?;
    assert_eq!((usage.consumed_units, usage.over_allocated_units), (1, 0));
    assert_eq!(
        status_of(&world, late, OFFICE_365_E3, Some(group)),
        AssignmentStatus::Error
    );
    world.remove_member(group, members[2])?;
    world.process();
    assert_active(&world, late, OFFICE_365_E3, Some(group));
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);
    Ok(())
}

#[test]
fn a_failed_re_evaluation_never_takes_away_what_works() -> TestResult {
    let mut world = seed_world(SeedSeats {
        ems_e3: 1,
        ..SeedSeats::default()
    })?;
    let group = world.add_group("Office 365 E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let members = users(&mut world, &["ann", "ben"], Some("US"))?;
    for member in &members {
        world.add_member(group, *member)?;
    }
    let holder = world.add_user("holder", Some("US"))?;
    world.assign_to_user(holder, vec![AssignedLicense::new(EMS_E3)], vec![])?;
    world.process();
    let e3_plans = state_of(&world, members[0], OFFICE_365_E3, Some(group)).granted_plans;

    // A product added to the group finds no free seat.
    world.assign_to_group(group, vec![AssignedLicense::new(EMS_E3)], vec![])?;
    world.process();
    for member in &members {
        let e3 = state_of(&world, *member, OFFICE_365_E3, Some(group));
        assert_eq!(e3.state, AssignmentStatus::ActiveWithError);
        assert_eq!(e3.error, Some(LicenseErrorKind::CountViolation));
        assert_eq!(
            e3.error_detail,
            Some(LicenseErrorDetail::BlockedBySibling {
                sibling_sku_id: EMS_E3,
                sibling_error: LicenseErrorKind::CountViolation,
            })
        );
        assert_eq!(e3.granted_plans, e3_plans);
        let ems = state_of(&world, *member, EMS_E3, Some(group));
        assert_eq!(ems.state, AssignmentStatus::Error);
        assert_eq!(ems.error, Some(LicenseErrorKind::CountViolation));
        assert!(ems.granted_plans.is_empty());
    }
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 2);
    assert_eq!(consumed(&world, EMS_E3)?, 1);
    assert_active(&world, holder, EMS_E3, None);

    // Buying seats resolves it.
    world.apply(Command::SetPrepaidUnits {
        sku_id: EMS_E3,
        prepaid_units: 3,
    })?;
    world.process();
    for member in &members {
        assert_active(&world, *member, OFFICE_365_E3, Some(group));
        assert_active(&world, *member, EMS_E3, Some(group));
    }

    // A newly enabled plan conflicts with a direct license: the group's E3 stays as it was.
    let mixed = world.add_user("mixed", Some("US"))?;
    world.assign_to_user(
        mixed,
        vec![AssignedLicense::with_disabled_plans(
            OFFICE_365_E1,
            [EXCHANGE_ONLINE_PLAN_1],
        )],
        vec![],
    )?;
    let partial = world.add_group("Office 365 E3 without SharePoint")?;
    world.assign_to_group(
        partial,
        vec![AssignedLicense::with_disabled_plans(
            OFFICE_365_E3,
            [SHAREPOINT_PLAN_2],
        )],
        vec![],
    )?;
    world.add_member(partial, mixed)?;
    world.process();
    assert_active(&world, mixed, OFFICE_365_E3, Some(partial));
    let before = state_of(&world, mixed, OFFICE_365_E3, Some(partial)).granted_plans;
    assert!(!before.contains(&SHAREPOINT_PLAN_2));

    world.assign_to_group(partial, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.process();
    let e3 = state_of(&world, mixed, OFFICE_365_E3, Some(partial));
    assert_eq!(e3.state, AssignmentStatus::ActiveWithError);
    assert_eq!(
        e3.error_detail,
        Some(LicenseErrorDetail::MutuallyExclusiveViolation {
            service_plan: sharepoint_2(),
            conflicting_service_plan: sharepoint_1(),
            conflicting_sku_id: OFFICE_365_E1,
            conflicting_assignment: AssignmentSource::Direct,
            conflicts: vec![conflict(
                sharepoint_2(),
                sharepoint_1(),
                OFFICE_365_E1,
                AssignmentSource::Direct,
            )],
        })
    );
    assert_eq!(e3.granted_plans, before);
    assert!(e3.disabled_plans.is_empty());
    assert_active(&world, mixed, OFFICE_365_E1, None);
    let plans = world.engine.user_effective_plans(mixed)?;
    assert!(plans.contains(&SHAREPOINT_PLAN_1) && !plans.contains(&SHAREPOINT_PLAN_2));
    Ok(())
}

#[test]
fn a_suspended_subscription_disables_assignments_until_enabled_again() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let group = world.add_group("Office 365 E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let members = users(&mut world, &["ann", "ben"], Some("US"))?;
    for member in &members {
        world.add_member(group, *member)?;
    }
    world.process();
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 2);

    // Warning still grants the plans.
    world.apply(Command::SetCapabilityStatus {
        sku_id: OFFICE_365_E3,
        capability_status: CapabilityStatus::Warning,
    })?;
    world.process();
    for member in &members {
        assert_active(&world, *member, OFFICE_365_E3, Some(group));
    }

    world.apply(Command::SetCapabilityStatus {
        sku_id: OFFICE_365_E3,
        capability_status: CapabilityStatus::Suspended,
    })?;
    world.process();
    let late = world.add_user("late", Some("US"))?;
    world.add_member(group, late)?;
    world.process();
    for member in members.iter().chain([&late]) {
        let e3 = state_of(&world, *member, OFFICE_365_E3, Some(group));
        assert_eq!(e3.state, AssignmentStatus::Disabled);
        assert_eq!(e3.error, None);
        assert_eq!(e3.error_detail, None);
        assert!(e3.granted_plans.is_empty());
        assert!(world.engine.user_effective_plans(*member)?.is_empty());
        assert!(world.engine.user_assigned_licenses(*member)?.is_empty());
    }
    let usage = world.engine.sku_usage(OFFICE_365_E3)?;
    assert_eq!(usage.capability_status, CapabilityStatus::Suspended);
    assert_eq!(usage.consumed_units, 0);
    assert!(world.engine.users_with_errors().is_empty());
    assert!(world.engine.groups_with_errors().is_empty());

    world.apply(Command::SetCapabilityStatus {
        sku_id: OFFICE_365_E3,
        capability_status: CapabilityStatus::Enabled,
    })?;
    world.process();
    for member in members.iter().chain([&late]) {
        assert_active(&world, *member, OFFICE_365_E3, Some(group));
    }
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 3);
    Ok(())
}

#[test]
fn deleting_a_user_frees_its_seat() -> TestResult {
    let mut world = seed_world(SeedSeats {
        office_365_e3: 1,
        ..SeedSeats::default()
    })?;
    let group = world.add_group("Office 365 E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let leaver = world.add_user("leaver", Some("US"))?;
    let joiner = world.add_user("joiner", Some("US"))?;
    world.add_member(group, leaver)?;
    world.add_member(group, joiner)?;
    world.process();
    assert_active(&world, leaver, OFFICE_365_E3, Some(group));
    assert_eq!(
        world.error(joiner, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::CountViolation)
    );

    world.apply(Command::DeleteUser { user_id: leaver })?;
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 0);
    assert_eq!(world.engine.group_members(group)?, vec![joiner]);
    assert!(world.engine.user_license_states(leaver).is_err());
    assert!(!world.engine.license_snapshot().contains_key(&leaver));
    world.process();
    assert_active(&world, joiner, OFFICE_365_E3, Some(group));
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);
    assert_eq!(world.engine.tenant_overview().users, 1);
    Ok(())
}

#[test]
fn a_group_with_licenses_cannot_be_deleted() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let group = world.add_group("Office 365 E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let member = world.add_user("member", Some("US"))?;
    world.add_member(group, member)?;
    world.process();

    let refused = world.apply(Command::DeleteGroup { group_id: group });
    assert_eq!(
        refused,
        Err(CommandError::GroupHasLicenses {
            group_id: group,
            sku_count: 1,
        })
    );
    assert_eq!(world.engine.group_ids(), vec![group]);
    assert_active(&world, member, OFFICE_365_E3, Some(group));

    // Remove its products first (a removal like any other), then delete it.
    world.assign_to_group(group, vec![], vec![OFFICE_365_E3])?;
    world.process();
    assert!(world.engine.user_license_states(member)?.is_empty());
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 0);
    world.apply(Command::DeleteGroup { group_id: group })?;
    assert!(world.engine.group_ids().is_empty());
    assert!(world.engine.user_view(member)?.member_of.is_empty());
    Ok(())
}

#[test]
fn disabled_plans_is_a_deny_list() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let group = world.add_group("Office 365 E3 without Sway")?;
    world.assign_to_group(
        group,
        vec![AssignedLicense::with_disabled_plans(OFFICE_365_E3, [SWAY_PLAN])],
        vec![],
    )?;
    let member = world.add_user("member", Some("US"))?;
    world.add_member(group, member)?;
    let direct = world.add_user("direct", Some("US"))?;
    world.assign_to_user(
        direct,
        vec![AssignedLicense::with_disabled_plans(OFFICE_365_E3, [SWAY_PLAN])],
        vec![],
    )?;
    world.process();

    let new_plan = Uuid::from_u128(0x1ce0_5e00_0000_4000_8000_0000_0000_c0de);
    world.apply(Command::AddServicePlanToSku {
        sku_id: OFFICE_365_E3,
        service_plan: ServicePlanDefinition {
            service_plan_id: new_plan,
            service_plan_name: "LICENSD_NEW_PLAN".to_string(),
            display_name: "A plan added later".to_string(),
        },
    })?;
    world.process();

    for (user, group) in [(member, Some(group)), (direct, None)] {
        let e3 = state_of(&world, user, OFFICE_365_E3, group);
        assert_eq!(e3.state, AssignmentStatus::Active);
        assert!(e3.granted_plans.contains(&new_plan), "{e3:?}");
        assert!(!e3.granted_plans.contains(&SWAY_PLAN));
        assert_eq!(e3.disabled_plans, vec![SWAY_PLAN]);
        let plans = world.engine.user_effective_plans(user)?;
        assert!(plans.contains(&new_plan) && !plans.contains(&SWAY_PLAN));
    }
    assert_eq!(
        world.engine.group_view(group)?.assigned_licenses,
        vec![AssignedLicense::with_disabled_plans(OFFICE_365_E3, [SWAY_PLAN])]
    );
    assert_eq!(
        world
            .engine
            .sku_usage(OFFICE_365_E3)?
            .service_plans
            .last()
            .map(|(id, _, _)| *id),
        Some(new_plan)
    );
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 2);
    Ok(())
}

/// Alice gets E1 from one group and joins an E3 group: the E3 assignment fails, naming the E1
/// group as the holder of the conflicting plan. Returns (alice, the E1 group, the E3 group).
fn e3_conflicting_with_an_e1_group(world: &mut SeedWorld) -> Result<(Uuid, Uuid, Uuid), TestError> {
    let alice = world.add_user("alice", Some("US"))?;
    let e1_group = world.add_group("Office 365 E1 users")?;
    world.assign_to_group(e1_group, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    world.add_member(e1_group, alice)?;
    world.process();
    let e3_group = world.add_group("Office 365 E3 users")?;
    world.assign_to_group(e3_group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.add_member(e3_group, alice)?;
    world.process();
    let e3 = state_of(world, alice, OFFICE_365_E3, Some(e3_group));
    assert_eq!(e3.state, AssignmentStatus::Error);
    assert!(
        matches!(
            e3.error_detail,
            Some(LicenseErrorDetail::MutuallyExclusiveViolation {
                conflicting_assignment: AssignmentSource::Group(holder),
                ..
            }) if holder == e1_group
        ),
        "{e3:?}"
    );
    Ok((alice, e1_group, e3_group))
}

/// The tenant as a store would hold it when alice's E3 error still names the E1 group but the
/// group no longer grants anything (its license and alice's membership gone): with `drop_group`
/// the group is gone as well.
fn tenant_with_a_stale_cause(
    world: &SeedWorld,
    alice: Uuid,
    e1_group: Uuid,
    drop_group: bool,
) -> licensd_engine::image::TenantImage {
    let mut image = world.engine.to_image();
    for group in &mut image.groups {
        if group.id == e1_group {
            group.licenses.clear();
        }
    }
    if drop_group {
        image.groups.retain(|group| group.id != e1_group);
    }
    for user in &mut image.users {
        if user.id == alice {
            user.memberships
                .retain(|membership| membership.group_id != e1_group);
            user.states
                .retain(|state| state.assigned_by_group != Some(e1_group));
        }
    }
    image
}

/// Deleting a group that another assignment's error names (as the holder of a conflicting plan)
/// queues the users whose errors name it, and the tenant stays restorable from its image both
/// before and after they are evaluated again.
#[test]
fn deleting_a_group_named_in_an_error_queues_the_users_it_names() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let (alice, e1_group, e3_group) = e3_conflicting_with_an_e1_group(&mut world)?;
    world.engine =
        licensd_engine::Engine::from_image(tenant_with_a_stale_cause(&world, alice, e1_group, false))?;
    assert!(world.engine.queued_user_ids().is_empty());

    let outcome = world.apply(Command::DeleteGroup { group_id: e1_group })?;
    assert_eq!(
        outcome.newly_queued,
        vec![alice],
        "the user whose error names the group"
    );
    assert_eq!(world.engine.queued_user_ids(), vec![alice]);
    // The cause stops naming the deleted group at once, a state change written with the
    // deletion; until alice is evaluated again the conflict is held by the assignment itself.
    assert_eq!(outcome.changes.len(), 1, "{:?}", outcome.changes);
    let e3 = state_of(&world, alice, OFFICE_365_E3, Some(e3_group));
    assert_eq!(e3.state, AssignmentStatus::Error);
    assert!(
        matches!(
            e3.error_detail,
            Some(LicenseErrorDetail::MutuallyExclusiveViolation {
                conflicting_assignment: AssignmentSource::Group(holder),
                ..
            }) if holder == e3_group
        ),
        "{e3:?}"
    );
    // Before the evaluation, the image (what the store holds) restores as it is, alice queued.
    let image = world.engine.to_image();
    let restored = licensd_engine::Engine::from_image(image.clone())?;
    assert_eq!(restored.to_image(), image);
    assert_eq!(restored.queued_user_ids(), vec![alice]);

    world.process();
    assert_active(&world, alice, OFFICE_365_E3, Some(e3_group));
    assert_eq!(consumed(&world, OFFICE_365_E3)?, 1);
    let image = world.engine.to_image();
    let restored = licensd_engine::Engine::from_image(image.clone())?;
    assert_eq!(restored.to_image(), image);
    Ok(())
}

/// A stored error that names a group which no longer exists (written before deletions queued
/// the users they concern) does not make the tenant unloadable: the user is restored, queued,
/// and its next evaluation records the error as it is now.
#[test]
fn an_error_naming_a_deleted_group_is_restored_and_evaluated_again() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let (alice, e1_group, e3_group) = e3_conflicting_with_an_e1_group(&mut world)?;
    let image = tenant_with_a_stale_cause(&world, alice, e1_group, true);
    world.engine = licensd_engine::Engine::from_image(image)?;
    assert_eq!(world.engine.queued_user_ids(), vec![alice]);
    let e3 = state_of(&world, alice, OFFICE_365_E3, Some(e3_group));
    assert_eq!(e3.error, Some(LicenseErrorKind::MutuallyExclusiveViolation));

    world.process();
    assert_active(&world, alice, OFFICE_365_E3, Some(e3_group));
    assert!(world.engine.queued_user_ids().is_empty());
    Ok(())
}
