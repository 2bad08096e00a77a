//! Diagnosis, fixes and what-if on the seed world: for each error kind of the seed, the
//! diagnosis names the right plans, groups and users; every fix it proposes clears the error when
//! really applied, exactly as its what-if predicted, and changes no other user the what-if did
//! not announce. Plus what-if on its own (nothing changes, refusals, counts), the advisor, and a
//! property test: what-if equals reality on random generated tenants and random changes.

use std::collections::BTreeMap;

use licensd_engine::advisor::Redundancy;
use licensd_engine::diagnosis::{Fix, FixKind, Rule};
use licensd_engine::whatif::UserEffect;
use licensd_engine::{
    AssignedLicense, AssignmentSource, Command, CountryCode, DiagnosisOptions, Engine,
    LicenseAssignmentState, LicenseErrorDetail, LicenseErrorKind, ProxyAddress, Timestamp, UserChanges,
    UserDiagnosis, Uuid, WhatIfError, WhatIfOptions,
};
use licensd_fixtures::generator::{build_engine, GeneratorConfig};
use licensd_fixtures::seed_world::{
    SeedSeats, SeedWorld, EMS_E3, EXCHANGE_ONLINE_PLAN_1, EXCHANGE_ONLINE_PLAN_2, MICROSOFT_TEAMS_PLAN,
    OFFICE_365_E1, OFFICE_365_E3, SHAREPOINT_PLAN_1, SHAREPOINT_PLAN_2, WORKPLACE_ANALYTICS_PLAN,
    WORKPLACE_ANALYTICS_SKU,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

type TestError = Box<dyn std::error::Error>;
type TestResult = Result<(), TestError>;

/// Every user listed in predictions, so they can be compared with reality user by user.
fn full_options() -> DiagnosisOptions {
    DiagnosisOptions {
        what_if: WhatIfOptions {
            max_listed_users: usize::MAX,
        },
        ..DiagnosisOptions::default()
    }
}

fn seed_world(seats: SeedSeats) -> Result<SeedWorld, TestError> {
    Ok(SeedWorld::new(seats)?)
}

/// States without time stamps (a prediction is made at one time and reality at another) and
/// without the live seat figures a `CountViolation` detail quotes (they belong to the product,
/// not to the user's state, and change whenever anyone's seat does).
fn timeless(mut states: Vec<LicenseAssignmentState>) -> Vec<LicenseAssignmentState> {
    for state in &mut states {
        state.last_updated = Timestamp(0);
        if let Some(LicenseErrorDetail::CountViolation {
            prepaid_units,
            consumed_units,
            waiting_users,
            ..
        }) = &mut state.error_detail
        {
            *prepaid_units = 0;
            *consumed_units = 0;
            *waiting_users = 0;
        }
    }
    states
}

fn snapshot(engine: &Engine) -> BTreeMap<Uuid, Vec<LicenseAssignmentState>> {
    engine
        .license_snapshot()
        .into_iter()
        .map(|(user, states)| (user, timeless(states)))
        .collect()
}

/// Applies a fix for real on a copy of the world and checks it against its prediction: every
/// user the prediction lists ends in exactly the predicted states, every other user keeps its
/// states, and the diagnosed assignment is no longer in error.
fn check_fix(world: &SeedWorld, fix: &Fix, user: Uuid, sku: Uuid, source: AssignmentSource) -> TestResult {
    let prediction = fix
        .prediction
        .as_ref()
        .ok_or_else(|| format!("fix {:?} has no prediction", fix.kind))?;
    assert_eq!(fix.cleared_users, Some(1), "{:?}", fix.kind);
    assert!(!prediction.users_truncated);
    let before = snapshot(&world.engine);
    let mut real = world.clone();
    for command in &fix.commands {
        real.apply(command.clone())?;
    }
    real.process();
    let after = snapshot(&real.engine);
    for (user_id, states) in &after {
        match prediction.user(*user_id) {
            Some(predicted) => assert_eq!(
                &timeless(predicted.states_after.clone()),
                states,
                "fix {:?}: user {user_id} differs from the prediction",
                fix.kind
            ),
            None => assert_eq!(
                before.get(user_id),
                Some(states),
                "fix {:?}: user {user_id} changed but the prediction does not say so",
                fix.kind
            ),
        }
    }
    let cleared = real.engine.user_license_states(user)?.iter().all(|state| {
        !(state.sku_id == sku
            && state.assigned_by_group == source.assigned_by_group()
            && state.error.is_some())
    });
    assert!(cleared, "fix {:?} does not clear the error", fix.kind);
    let predicted_user = prediction
        .user(user)
        .ok_or_else(|| format!("fix {:?}: the diagnosed user is not in the prediction", fix.kind))?;
    assert!(
        predicted_user
            .errors_after
            .iter()
            .all(|error| !(error.sku_id == sku && error.source == source)),
        "{:?}",
        fix.kind
    );
    // A fix that breaks someone says so in its counts.
    let broken = after
        .iter()
        .filter(|(user_id, states)| {
            let had_error = before
                .get(*user_id)
                .is_some_and(|states| states.iter().any(|state| state.error.is_some()));
            !had_error && states.iter().any(|state| state.error.is_some())
        })
        .count();
    assert_eq!(prediction.newly_broken_users, broken, "{:?}", fix.kind);
    Ok(())
}

fn check_all_fixes(world: &SeedWorld, diagnosis: &UserDiagnosis) -> TestResult {
    for problem in &diagnosis.problems {
        assert!(!problem.fixes.is_empty(), "no fix for {:?}", problem.error);
        for fix in &problem.fixes {
            check_fix(world, fix, diagnosis.user_id, problem.sku_id, problem.source)?;
        }
    }
    Ok(())
}

fn kinds(diagnosis: &UserDiagnosis, problem: usize) -> Vec<FixKind> {
    diagnosis.problems[problem]
        .fixes
        .iter()
        .map(|fix| fix.kind)
        .collect()
}

#[test]
fn count_violation_names_the_seats_and_every_fix_clears_it() -> TestResult {
    let mut world = seed_world(SeedSeats {
        office_365_e3: 3,
        ..SeedSeats::default()
    })?;
    let group = world.add_group("E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let idle = world.add_user("idle", Some("US"))?;
    world.assign_to_user(idle, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.apply(Command::UpdateUser {
        user_id: idle,
        changes: UserChanges {
            account_enabled: Some(false),
            ..Default::default()
        },
    })?;
    let mut members = Vec::new();
    for name in ["ann", "bob", "carl"] {
        let user = world.add_user(name, Some("US"))?;
        world.add_member(group, user)?;
        members.push(user);
    }
    world.process();
    let carl = members[2];
    assert_eq!(
        world.error(carl, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::CountViolation)
    );

    let diagnosis = world.engine.diagnose_user(carl, world.now, full_options())?;
    assert_eq!(diagnosis.problems.len(), 1);
    let problem = &diagnosis.problems[0];
    assert_eq!(problem.error, LicenseErrorKind::CountViolation);
    assert_eq!(problem.source, AssignmentSource::Group(group));
    assert_eq!(problem.group_display_name.as_deref(), Some("E3 users"));
    assert_eq!(problem.involvement.rule, Rule::Seats);
    let seats = problem.involvement.seats.ok_or("no seat figures")?;
    assert_eq!(
        (seats.prepaid_units, seats.consumed_units, seats.waiting_users),
        (3, 3, 1)
    );
    assert_eq!(
        kinds(&diagnosis, 0),
        vec![FixKind::BuySeats, FixKind::FreeSeatsOfDisabledAccounts]
    );
    let buy = &problem.fixes[0];
    assert!(matches!(
        buy.commands[0],
        Command::SetPrepaidUnits { sku_id, prepaid_units: 4 } if sku_id == OFFICE_365_E3
    ));
    let free = &problem.fixes[1];
    assert!(free.commands.iter().any(|command| matches!(
        command,
        Command::AssignUserLicenses { user_id, remove_licenses, .. } if *user_id == idle && remove_licenses == &vec![OFFICE_365_E3]
    )));
    let prediction = free.prediction.as_ref().ok_or("no prediction")?;
    let idle_prediction = prediction
        .user(idle)
        .ok_or("the disabled account is not in the prediction")?;
    assert_eq!(idle_prediction.seats_freed, vec![OFFICE_365_E3]);
    assert_eq!(
        prediction.user(carl).map(|user| user.effect),
        Some(UserEffect::Fixed)
    );
    check_all_fixes(&world, &diagnosis)
}

#[test]
fn mutually_exclusive_violation_names_both_plans_and_the_direct_license() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let ann = world.add_user("ann", Some("US"))?;
    let bob = world.add_user("bob", Some("US"))?;
    world.assign_to_user(ann, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    let group = world.add_group("Sales - E3")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.add_member(group, ann)?;
    world.add_member(group, bob)?;
    world.process();
    assert_eq!(
        world.error(ann, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::MutuallyExclusiveViolation)
    );

    let diagnosis = world.engine.diagnose_user(ann, world.now, full_options())?;
    assert_eq!(diagnosis.problems.len(), 1);
    let involvement = &diagnosis.problems[0].involvement;
    assert_eq!(involvement.rule, Rule::MutuallyExclusivePlans);
    let plans: Vec<Uuid> = involvement
        .plans
        .iter()
        .map(|plan| plan.service_plan_id)
        .collect();
    let other_plans: Vec<Uuid> = involvement
        .other_plans
        .iter()
        .map(|plan| plan.service_plan_id)
        .collect();
    for plan in [EXCHANGE_ONLINE_PLAN_2, SHAREPOINT_PLAN_2] {
        assert!(plans.contains(&plan), "{plans:?}");
    }
    for plan in [EXCHANGE_ONLINE_PLAN_1, SHAREPOINT_PLAN_1] {
        assert!(other_plans.contains(&plan), "{other_plans:?}");
    }
    let other = involvement
        .other_assignment
        .as_ref()
        .ok_or("no other assignment")?;
    assert_eq!(
        (other.sku_id, other.source),
        (OFFICE_365_E1, AssignmentSource::Direct)
    );
    assert_eq!(
        kinds(&diagnosis, 0),
        vec![
            FixKind::RemoveConflictingDirectLicense,
            FixKind::DisableConflictingPlansInOtherAssignment,
            FixKind::DisableConflictingPlansInThisAssignment,
        ]
    );
    // E1 under E3 is redundant: the seed's "remove the E1 license if it's redundant".
    assert!(diagnosis.problems[0].fixes[0].redundant_license);
    // Disabling the plans in the group's assignment changes bob too, and the prediction says so.
    let group_fix = &diagnosis.problems[0].fixes[2];
    let prediction = group_fix.prediction.as_ref().ok_or("no prediction")?;
    assert_eq!(
        prediction.user(bob).map(|user| user.effect),
        Some(UserEffect::Changed)
    );
    check_all_fixes(&world, &diagnosis)
}

#[test]
fn dependency_violation_offers_to_keep_the_prerequisite_or_drop_the_dependent_plan() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let ann = world.add_user("ann", Some("US"))?;
    let group = world.add_group("Sales - E3")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.add_member(group, ann)?;
    world.process();
    world.assign_to_user(ann, vec![AssignedLicense::new(WORKPLACE_ANALYTICS_SKU)], vec![])?;
    world.remove_member(group, ann)?;
    world.process();
    assert_eq!(
        world.error(ann, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::DependencyViolation)
    );

    let diagnosis = world.engine.diagnose_user(ann, world.now, full_options())?;
    assert_eq!(diagnosis.problems.len(), 1);
    let involvement = &diagnosis.problems[0].involvement;
    assert_eq!(involvement.rule, Rule::Prerequisite);
    assert_eq!(
        involvement
            .plans
            .iter()
            .map(|plan| plan.service_plan_id)
            .collect::<Vec<_>>(),
        vec![EXCHANGE_ONLINE_PLAN_2]
    );
    assert_eq!(
        involvement
            .other_plans
            .iter()
            .map(|plan| plan.service_plan_id)
            .collect::<Vec<_>>(),
        vec![WORKPLACE_ANALYTICS_PLAN]
    );
    let other = involvement
        .other_assignment
        .as_ref()
        .ok_or("no dependent assignment")?;
    assert_eq!(
        (other.sku_id, other.source),
        (WORKPLACE_ANALYTICS_SKU, AssignmentSource::Direct)
    );
    assert_eq!(
        kinds(&diagnosis, 0),
        vec![FixKind::KeepPrerequisiteDirectly, FixKind::DisableDependentPlan]
    );
    check_all_fixes(&world, &diagnosis)
}

#[test]
fn usage_location_violation_offers_a_supported_location_or_leaving_the_group() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let group = world.add_group("Frontline - E1")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    let cuba = world.add_user("cuba", Some("CU"))?;
    for name in ["ann", "bob"] {
        let user = world.add_user(name, Some("NL"))?;
        world.add_member(group, user)?;
    }
    world.add_member(group, cuba)?;
    world.process();
    assert_eq!(
        world.error(cuba, OFFICE_365_E1, Some(group)),
        Some(LicenseErrorKind::ProhibitedInUsageLocationViolation)
    );

    let diagnosis = world.engine.diagnose_user(cuba, world.now, full_options())?;
    let involvement = &diagnosis.problems[0].involvement;
    assert_eq!(involvement.rule, Rule::UsageLocation);
    assert_eq!(
        involvement
            .plans
            .iter()
            .map(|plan| plan.service_plan_id)
            .collect::<Vec<_>>(),
        vec![MICROSOFT_TEAMS_PLAN]
    );
    assert_eq!(involvement.usage_location, Some(CountryCode::parse("CU")?));
    assert_eq!(
        kinds(&diagnosis, 0),
        vec![FixKind::SetUsageLocation, FixKind::RemoveFromGroup]
    );
    // The most common location of the tenant's users where every plan is available.
    assert!(matches!(
        &diagnosis.problems[0].fixes[0].commands[0],
        Command::UpdateUser { changes, .. } if changes.usage_location == Some(Some(CountryCode::parse("NL")?))
    ));
    check_all_fixes(&world, &diagnosis)
}

#[test]
fn uniqueness_violation_names_the_other_users_and_fixing_the_address_clears_both() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let ann = world.add_user("ann", Some("US"))?;
    let bob = world.add_user("bob", Some("US"))?;
    world.apply(Command::UpdateUser {
        user_id: bob,
        changes: UserChanges {
            proxy_addresses: Some(vec![
                ProxyAddress::parse("SMTP:bob@contoso.com")?,
                ProxyAddress::parse("smtp:ann@contoso.com")?,
            ]),
            ..Default::default()
        },
    })?;
    let group = world.add_group("Sales - E3")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.add_member(group, ann)?;
    world.add_member(group, bob)?;
    world.process();
    assert_eq!(
        world.error(ann, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::UniquenessViolation)
    );

    let diagnosis = world.engine.diagnose_user(ann, world.now, full_options())?;
    let involvement = &diagnosis.problems[0].involvement;
    assert_eq!(involvement.rule, Rule::UniqueProxyAddress);
    assert_eq!(involvement.proxy_address.as_deref(), Some("smtp:ann@contoso.com"));
    assert_eq!(
        involvement
            .other_users
            .iter()
            .map(|user| user.user_id)
            .collect::<Vec<_>>(),
        vec![bob]
    );
    assert_eq!(
        kinds(&diagnosis, 0),
        vec![
            FixKind::RemoveProxyAddressFromOtherUsers,
            FixKind::RemoveProxyAddressFromUser
        ]
    );
    // Removing the address from bob fixes bob as well, and the prediction says so.
    let prediction = diagnosis.problems[0].fixes[0]
        .prediction
        .as_ref()
        .ok_or("no prediction")?;
    assert_eq!(
        prediction.user(bob).map(|user| user.effect),
        Some(UserEffect::Fixed)
    );
    check_all_fixes(&world, &diagnosis)
}

#[test]
fn blocked_by_sibling_gets_the_fixes_of_the_failing_product() -> TestResult {
    let mut world = seed_world(SeedSeats {
        ems_e3: 1,
        ..SeedSeats::default()
    })?;
    let group = world.add_group("E3 + EMS")?;
    world.assign_to_group(
        group,
        vec![AssignedLicense::new(OFFICE_365_E3), AssignedLicense::new(EMS_E3)],
        vec![],
    )?;
    let ann = world.add_user("ann", Some("US"))?;
    let bob = world.add_user("bob", Some("US"))?;
    world.add_member(group, ann)?;
    world.add_member(group, bob)?;
    world.process();
    assert_eq!(
        world.error(bob, EMS_E3, Some(group)),
        Some(LicenseErrorKind::CountViolation)
    );

    let diagnosis = world.engine.diagnose_user(bob, world.now, full_options())?;
    assert_eq!(diagnosis.problems.len(), 2);
    for problem in &diagnosis.problems {
        assert_eq!(problem.fixes[0].kind, FixKind::BuySeats, "{:?}", problem.sku_id);
    }
    let sibling = diagnosis
        .problems
        .iter()
        .find(|problem| problem.sku_id == OFFICE_365_E3)
        .ok_or("no E3 problem")?;
    assert_eq!(sibling.involvement.rule, Rule::AllProductsOfAGroup);
    assert_eq!(
        sibling
            .involvement
            .other_assignment
            .as_ref()
            .map(|other| other.sku_id),
        Some(EMS_E3)
    );
    check_all_fixes(&world, &diagnosis)
}

#[test]
fn without_self_healing_a_gone_cause_is_fixed_by_a_reprocess() -> TestResult {
    let mut world = seed_world(SeedSeats {
        office_365_e3: 1,
        ..SeedSeats::default()
    })?;
    world.apply(Command::SetSelfHealing { enabled: false })?;
    let group = world.add_group("E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let ann = world.add_user("ann", Some("US"))?;
    let bob = world.add_user("bob", Some("US"))?;
    world.add_member(group, ann)?;
    world.add_member(group, bob)?;
    world.process();
    // Buying seats: the fix reprocesses the group, as self-healing is off.
    let diagnosis = world.engine.diagnose_user(bob, world.now, full_options())?;
    assert_eq!(kinds(&diagnosis, 0), vec![FixKind::BuySeats]);
    assert!(diagnosis.problems[0].fixes[0]
        .commands
        .contains(&Command::ReprocessGroup { group_id: group }));
    check_all_fixes(&world, &diagnosis)?;
    // Once seats are bought without a reprocess, a reprocess is all it takes.
    world.apply(Command::SetPrepaidUnits {
        sku_id: OFFICE_365_E3,
        prepaid_units: 2,
    })?;
    world.process();
    assert_eq!(
        world.error(bob, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::CountViolation)
    );
    let diagnosis = world.engine.diagnose_user(bob, world.now, full_options())?;
    assert_eq!(kinds(&diagnosis, 0), vec![FixKind::Reprocess]);
    check_all_fixes(&world, &diagnosis)
}

#[test]
fn group_diagnosis_groups_members_by_cause_and_each_fix_clears_its_users() -> TestResult {
    let (world, directory) = SeedWorld::demo()?;
    let diagnosis = world
        .engine
        .diagnose_group(directory.sales_e3, world.now, full_options())?;
    assert_eq!(diagnosis.display_name, "Sales - Office 365 E3");
    let errors: Vec<(LicenseErrorKind, usize)> = diagnosis
        .causes
        .iter()
        .map(|cause| (cause.error, cause.user_count))
        .collect();
    // Users 1-5 hold E1 directly; users 61 and 62 share an address; user 121 left.
    assert!(
        errors.contains(&(LicenseErrorKind::MutuallyExclusiveViolation, 5)),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(LicenseErrorKind::UniquenessViolation, 2)),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(LicenseErrorKind::DependencyViolation, 1)),
        "{errors:?}"
    );
    for cause in &diagnosis.causes {
        assert!(!cause.fixes.is_empty(), "no fix for {:?}", cause.error);
        for fix in &cause.fixes {
            let mut real = world.clone();
            for command in &fix.commands {
                real.apply(command.clone())?;
            }
            real.process();
            let fixed = cause
                .users
                .iter()
                .filter(|user| {
                    real.error(user.user_id, cause.sku_id, Some(directory.sales_e3))
                        .is_none()
                })
                .count();
            assert_eq!(Some(fixed), fix.cleared_users, "{:?} {:?}", cause.error, fix.kind);
            assert!(fixed > 0);
        }
    }
    let exclusive = diagnosis
        .causes
        .iter()
        .find(|cause| cause.error == LicenseErrorKind::MutuallyExclusiveViolation)
        .ok_or("no exclusive cause")?;
    let removal = exclusive
        .fixes
        .iter()
        .find(|fix| fix.kind == FixKind::RemoveConflictingDirectLicense)
        .ok_or("no removal fix")?;
    assert_eq!(removal.covered_users, 5);
    assert_eq!(removal.cleared_users, Some(5));
    Ok(())
}

#[test]
fn what_if_changes_nothing_and_counts_fixed_and_broken_users() -> TestResult {
    let mut world = seed_world(SeedSeats {
        office_365_e3: 2,
        ..SeedSeats::default()
    })?;
    let group = world.add_group("E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let mut users = Vec::new();
    for name in ["ann", "bob", "carl", "dee"] {
        let user = world.add_user(name, Some("US"))?;
        world.add_member(group, user)?;
        users.push(user);
    }
    world.process();
    let before = snapshot(&world.engine);
    // Ann leaves (frees a seat, carl gets it), dee moves to Cuba (Teams unavailable).
    let changes = vec![
        Command::RemoveGroupMember {
            group_id: group,
            user_id: users[0],
        },
        Command::UpdateUser {
            user_id: users[1],
            changes: UserChanges {
                usage_location: Some(Some(CountryCode::parse("CU")?)),
                ..Default::default()
            },
        },
    ];
    let report = world
        .engine
        .what_if(&changes, world.now, WhatIfOptions::default())?;
    assert_eq!(snapshot(&world.engine), before, "a what-if changed the tenant");
    assert_eq!(report.commands, 2);
    assert_eq!(
        report.user(users[0]).map(|user| user.effect),
        Some(UserEffect::Changed)
    );
    assert_eq!(
        report.user(users[0]).map(|user| user.seats_freed.clone()),
        Some(vec![OFFICE_365_E3])
    );
    // Bob keeps what he has but is flagged: a location that no longer allows Teams.
    assert_eq!(
        report.user(users[1]).map(|user| user.effect),
        Some(UserEffect::NewlyBroken)
    );
    assert_eq!(
        report.user(users[2]).map(|user| user.effect),
        Some(UserEffect::Fixed)
    );
    assert_eq!(report.fixed_users, 1);
    assert_eq!(report.newly_broken_users, 1);
    assert!(report.breaks_users());
    let e3 = report
        .skus
        .iter()
        .find(|sku| sku.sku_id == OFFICE_365_E3)
        .ok_or("no E3 figures")?;
    assert_eq!((e3.users_consuming, e3.users_freeing), (1, 1));
    assert_eq!((e3.waiting_users_before, e3.waiting_users_after), (2, 1));
    let group_figures = report
        .groups
        .iter()
        .find(|entry| entry.group_id == group)
        .ok_or("no group")?;
    assert_eq!(
        (group_figures.fixed_users, group_figures.newly_broken_users),
        (1, 1)
    );
    Ok(())
}

#[test]
fn what_if_refuses_a_change_the_engine_would_refuse_and_names_it() -> TestResult {
    let mut world = seed_world(SeedSeats::default())?;
    let group = world.add_group("E3 users")?;
    let ann = world.add_user("ann", Some("US"))?;
    let changes = vec![
        Command::AddGroupMember {
            group_id: group,
            user_id: ann,
        },
        Command::AddGroupMember {
            group_id: group,
            user_id: ann,
        },
    ];
    match world
        .engine
        .what_if(&changes, world.now, WhatIfOptions::default())
    {
        Err(WhatIfError::CommandRefused {
            index: 1, command, ..
        }) => assert_eq!(command, "AddGroupMember"),
        other => panic!("expected a refusal of change 1, got {other:?}"),
    }
    assert_eq!(world.engine.group_members(group)?, Vec::<Uuid>::new());
    assert!(matches!(
        world.engine.what_if(&[], world.now, WhatIfOptions::default()),
        Err(WhatIfError::NoChanges)
    ));
    Ok(())
}

#[test]
fn advisor_finds_redundant_licenses_disabled_accounts_add_on_risks_and_exhaustion() -> TestResult {
    let (mut world, directory) = SeedWorld::demo()?;
    let first = directory.users[0];
    world.apply(Command::UpdateUser {
        user_id: directory.users[199],
        changes: UserChanges {
            account_enabled: Some(false),
            ..Default::default()
        },
    })?;
    let report = world.engine.advise();
    // Users 1-5 hold E1 directly under Sales' E3.
    let redundant: Vec<_> = report
        .redundant_direct_assignments
        .iter()
        .filter(|finding| finding.sku_id == OFFICE_365_E1)
        .collect();
    assert_eq!(redundant.len(), 5);
    assert!(redundant.iter().any(|finding| finding.user.user_id == first));
    assert!(redundant.iter().all(|finding| finding.frees_seat
        && matches!(&finding.redundancy, Redundancy::SupersededByGroupProduct { sku_id, .. } if *sku_id == OFFICE_365_E3)));
    let disabled = &report.disabled_accounts_holding_seats;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].user.user_id, directory.users[199]);
    // EMS has 10 users waiting.
    let ems = report
        .products_near_exhaustion
        .iter()
        .find(|product| product.sku_id == EMS_E3)
        .ok_or("EMS not reported")?;
    assert_eq!((ems.waiting_users, ems.shortfall), (10, 10));
    assert!(report
        .reclaimable_seats
        .iter()
        .any(|(sku_id, _, seats)| *sku_id == OFFICE_365_E1 && *seats >= 5));
    // Acting on a finding really frees the seat.
    let finding = redundant[0];
    let consumed_before = world.engine.sku_usage(OFFICE_365_E1)?.consumed_units;
    for command in &finding.commands {
        world.apply(command.clone())?;
    }
    world.process();
    assert_eq!(
        world.engine.sku_usage(OFFICE_365_E1)?.consumed_units,
        consumed_before - 1
    );
    Ok(())
}

#[test]
fn advisor_reports_add_ons_failing_for_members_without_the_prerequisite() -> TestResult {
    let mut world = seed_world(SeedSeats {
        office_365_e3: 1,
        ..SeedSeats::default()
    })?;
    let pilot = world.add_group("Analytics pilot")?;
    world.assign_to_group(
        pilot,
        vec![
            AssignedLicense::new(OFFICE_365_E3),
            AssignedLicense::new(WORKPLACE_ANALYTICS_SKU),
        ],
        vec![],
    )?;
    for name in ["ann", "bob"] {
        let user = world.add_user(name, Some("US"))?;
        world.add_member(pilot, user)?;
    }
    world.process();
    let report = world.engine.advise();
    let risk = report
        .add_on_risks
        .iter()
        .find(|risk| risk.group_id == pilot)
        .ok_or("no add-on risk")?;
    assert_eq!(risk.add_on_plan.service_plan_id, WORKPLACE_ANALYTICS_PLAN);
    assert_eq!(
        (risk.members_without_own_prerequisite, risk.members_at_risk),
        (2, 1)
    );
    Ok(())
}

// ----- property: what-if equals reality -------------------------------------------------------

#[derive(Clone, Debug)]
enum RawChange {
    AddMember {
        user: usize,
        group: usize,
    },
    RemoveMember {
        user: usize,
        group: usize,
    },
    Seats {
        sku: usize,
        delta: i32,
    },
    Location {
        user: usize,
        location: Option<usize>,
    },
    DirectLicense {
        user: usize,
        sku: usize,
        remove: bool,
    },
    GroupLicense {
        group: usize,
        sku: usize,
        remove: bool,
        disable_first_plan: bool,
    },
    DisableAccount {
        user: usize,
    },
    CopyAddress {
        from: usize,
        to: usize,
    },
    Reprocess {
        group: usize,
    },
}

fn raw_change() -> impl Strategy<Value = RawChange> {
    prop_oneof![
        (0..60usize, 0..8usize).prop_map(|(user, group)| RawChange::AddMember { user, group }),
        (0..60usize, 0..8usize).prop_map(|(user, group)| RawChange::RemoveMember { user, group }),
        (0..6usize, -20..20i32).prop_map(|(sku, delta)| RawChange::Seats { sku, delta }),
        (0..60usize, proptest::option::of(0..4usize))
            .prop_map(|(user, location)| RawChange::Location { user, location }),
        (0..60usize, 0..6usize, any::<bool>()).prop_map(|(user, sku, remove)| RawChange::DirectLicense {
            user,
            sku,
            remove
        }),
        (0..8usize, 0..6usize, any::<bool>(), any::<bool>()).prop_map(
            |(group, sku, remove, disable_first_plan)| {
                RawChange::GroupLicense {
                    group,
                    sku,
                    remove,
                    disable_first_plan,
                }
            }
        ),
        (0..60usize).prop_map(|user| RawChange::DisableAccount { user }),
        (0..60usize, 0..60usize).prop_map(|(from, to)| RawChange::CopyAddress { from, to }),
        (0..8usize).prop_map(|group| RawChange::Reprocess { group }),
    ]
}

const LOCATIONS: [&str; 4] = ["US", "NL", "CU", "BR"];

fn materialize(engine: &Engine, config: &GeneratorConfig, change: &RawChange) -> Option<Command> {
    let skus = engine.sku_usages();
    let sku = |index: usize| skus.get(index % skus.len().max(1));
    Some(match change {
        RawChange::AddMember { user, group } => Command::AddGroupMember {
            group_id: config.group_id(*group),
            user_id: config.user_id(*user),
        },
        RawChange::RemoveMember { user, group } => Command::RemoveGroupMember {
            group_id: config.group_id(*group),
            user_id: config.user_id(*user),
        },
        RawChange::Seats { sku: index, delta } => {
            let usage = sku(*index)?;
            Command::SetPrepaidUnits {
                sku_id: usage.sku_id,
                prepaid_units: (usage.prepaid_units as i64 + *delta as i64).max(0) as u32,
            }
        }
        RawChange::Location { user, location } => Command::UpdateUser {
            user_id: config.user_id(*user),
            changes: UserChanges {
                usage_location: Some(
                    location
                        .map(|index| CountryCode::parse(LOCATIONS[index]).ok())
                        .flatten(),
                ),
                ..Default::default()
            },
        },
        RawChange::DirectLicense {
            user,
            sku: index,
            remove,
        } => {
            let usage = sku(*index)?;
            Command::AssignUserLicenses {
                user_id: config.user_id(*user),
                add_licenses: if *remove {
                    vec![]
                } else {
                    vec![AssignedLicense::new(usage.sku_id)]
                },
                remove_licenses: if *remove { vec![usage.sku_id] } else { vec![] },
            }
        }
        RawChange::GroupLicense {
            group,
            sku: index,
            remove,
            disable_first_plan,
        } => {
            let usage = sku(*index)?;
            let disabled: Vec<Uuid> = if *disable_first_plan {
                usage
                    .service_plans
                    .first()
                    .map(|plan| plan.0)
                    .into_iter()
                    .collect()
            } else {
                Vec::new()
            };
            Command::AssignGroupLicenses {
                group_id: config.group_id(*group),
                add_licenses: if *remove {
                    vec![]
                } else {
                    vec![AssignedLicense::with_disabled_plans(usage.sku_id, disabled)]
                },
                remove_licenses: if *remove { vec![usage.sku_id] } else { vec![] },
            }
        }
        RawChange::DisableAccount { user } => Command::UpdateUser {
            user_id: config.user_id(*user),
            changes: UserChanges {
                account_enabled: Some(false),
                ..Default::default()
            },
        },
        RawChange::CopyAddress { from, to } => {
            let source = engine.user_view(config.user_id(*from)).ok()?;
            let target = engine.user_view(config.user_id(*to)).ok()?;
            let mut addresses = target.proxy_addresses.clone();
            let copied = source.proxy_addresses.first()?.as_str().replace("SMTP:", "smtp:");
            let copied = ProxyAddress::parse(&copied).ok()?;
            if addresses
                .iter()
                .any(|address| address.normalized() == copied.normalized())
            {
                return None;
            }
            addresses.push(copied);
            Command::UpdateUser {
                user_id: config.user_id(*to),
                changes: UserChanges {
                    proxy_addresses: Some(addresses),
                    ..Default::default()
                },
            }
        }
        RawChange::Reprocess { group } => Command::ReprocessGroup {
            group_id: config.group_id(*group),
        },
    })
}

proptest! {
    #![proptest_config(Config { cases: 48, failure_persistence: None, ..Config::default() })]

    /// For random generated tenants and random change lists, the what-if's predicted states equal
    /// the states after really applying the changes and processing, for every user; a change list
    /// the engine refuses is refused by the what-if at the same change.
    #[test]
    fn what_if_equals_reality(seed in 0u64..1000, self_healing in any::<bool>(), raw in proptest::collection::vec(raw_change(), 1..6)) {
        let config = GeneratorConfig::new(60, 8, 6, seed);
        let (mut engine, summary) = build_engine(&config).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let mut at = Timestamp(summary.last_timestamp.0 + 1);
        engine.apply(Command::SetSelfHealing { enabled: self_healing }, at).map_err(|error| TestCaseError::fail(error.to_string()))?;
        engine.process_all(at);
        at = Timestamp(at.0 + 1);
        let commands: Vec<Command> = raw.iter().filter_map(|change| materialize(&engine, &config, change)).collect();
        prop_assume!(!commands.is_empty());
        let before = snapshot(&engine);
        let predicted = engine.what_if(&commands, at, WhatIfOptions { max_listed_users: usize::MAX });
        prop_assert_eq!(&snapshot(&engine), &before, "the what-if changed the tenant");
        let mut real = engine.clone();
        let mut refused = None;
        for (index, command) in commands.iter().enumerate() {
            if real.apply(command.clone(), at).is_err() {
                refused = Some(index);
                break;
            }
        }
        match (predicted, refused) {
            (Err(WhatIfError::CommandRefused { index, .. }), Some(refused)) => prop_assert_eq!(index, refused),
            (Ok(report), None) => {
                real.process_all(at);
                let after = snapshot(&real);
                for (user_id, states) in &after {
                    match report.user(*user_id) {
                        Some(predicted) => prop_assert_eq!(&timeless(predicted.states_after.clone()), states),
                        None => prop_assert_eq!(before.get(user_id), Some(states), "user {} changed unannounced", user_id),
                    }
                }
                for predicted in &report.users {
                    prop_assert!(after.contains_key(&predicted.user_id) || predicted.deleted);
                }
                let errors_after = real.users_with_errors().len();
                prop_assert_eq!(report.users_with_errors_after, errors_after);
            }
            (predicted, refused) => prop_assert!(false, "what-if {:?} but reality refused at {:?}", predicted.map(|report| report.changed_users), refused),
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 16, failure_persistence: None, ..Config::default() })]

    /// On random generated tenants, every fix proposed for a user in error, applied for real and
    /// processed, produces exactly the states its what-if predicted, for every user, and clears
    /// the error it was proposed for.
    #[test]
    fn applying_a_proposed_fix_gives_exactly_the_predicted_states(seed in 0u64..1000, pick in 0usize..1000) {
        let config = GeneratorConfig::new(80, 8, 6, seed);
        let (mut engine, summary) = build_engine(&config).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let at = Timestamp(summary.last_timestamp.0 + 1);
        engine.process_all(at);
        let in_error = engine.users_with_errors();
        prop_assume!(!in_error.is_empty());
        let user = in_error[pick % in_error.len()];
        let diagnosis = engine.diagnose_user(user, at, full_options()).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let before = snapshot(&engine);
        for problem in &diagnosis.problems {
            for fix in &problem.fixes {
                let prediction = fix.prediction.as_ref().ok_or_else(|| TestCaseError::fail("no prediction"))?;
                let mut real = engine.clone();
                for command in &fix.commands {
                    real.apply(command.clone(), at).map_err(|error| TestCaseError::fail(error.to_string()))?;
                }
                real.process_all(at);
                let after = snapshot(&real);
                for (user_id, states) in &after {
                    match prediction.user(*user_id) {
                        Some(predicted) => prop_assert_eq!(&timeless(predicted.states_after.clone()), states),
                        None => prop_assert_eq!(before.get(user_id), Some(states), "user {} changed unannounced", user_id),
                    }
                }
                let still = after[&user].iter().any(|state| {
                    state.sku_id == problem.sku_id
                        && state.assigned_by_group == problem.source.assigned_by_group()
                        && state.error.is_some()
                });
                prop_assert!(!still, "fix {:?} leaves the error", fix.kind);
            }
        }
    }
}
