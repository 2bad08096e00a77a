//! Self-healing history: for each kind of cause that goes away (seats freed or bought, a
//! conflicting direct license removed, a group's conflicting plans disabled, a usage location
//! corrected, a shared proxy address freed), the users in error are re-queued by themselves,
//! the engine keeps why until they are evaluated, then remembers when and why they were
//! re-evaluated and whether their error cleared. Healthy users and manual reprocesses leave no
//! such record, and with self-healing off the waiting users wait for a manual reprocess.

use licensd_engine::diagnosis::FixKind;
use licensd_engine::{
    AssignedLicense, Command, CountryCode, DiagnosisOptions, LicenseErrorKind, ProxyAddress, RequeueReason,
    SelfHealing, UserChanges, Uuid,
};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E1, OFFICE_365_E3};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A group with E3 (one seat by default) and three members in order: ann holds the seat, bob and
/// carl wait for one.
fn waiting_for_e3(self_healing: bool) -> Result<(SeedWorld, Uuid, [Uuid; 3]), Box<dyn std::error::Error>> {
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e3: 1,
        ..SeedSeats::default()
    })?;
    if !self_healing {
        world.apply(Command::SetSelfHealing { enabled: false })?;
    }
    let group = world.add_group("E3 users")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let mut users = [Uuid::nil(); 3];
    for (index, name) in ["ann", "bob", "carl"].into_iter().enumerate() {
        users[index] = world.add_user(name, Some("US"))?;
        world.add_member(group, users[index])?;
    }
    world.process();
    assert_eq!(world.error(users[0], OFFICE_365_E3, Some(group)), None);
    for waiting in &users[1..] {
        assert_eq!(
            world.error(*waiting, OFFICE_365_E3, Some(group)),
            Some(LicenseErrorKind::CountViolation)
        );
    }
    Ok((world, group, users))
}

fn seats_available() -> RequeueReason {
    RequeueReason::SeatsAvailable {
        sku_id: OFFICE_365_E3,
        sku_display_name: "Office 365 E3".to_string(),
    }
}

#[test]
fn freeing_a_seat_requeues_the_first_waiting_user_records_seats_available_and_it_gets_the_seat() -> TestResult
{
    let (mut world, group, [ann, bob, carl]) = waiting_for_e3(true)?;
    world.remove_member(group, ann)?;
    // ann is evaluated first and frees the seat; bob, first in line, is then re-queued.
    let step = world.engine.process_batch(1, world.now);
    assert_eq!(step.evaluated, vec![ann]);
    assert_eq!(step.requeued, vec![bob]);
    assert_eq!(world.engine.pending_self_healing(bob), Some(&seats_available()));
    assert_eq!(world.engine.pending_self_healing(carl), None);
    assert_eq!(world.engine.last_self_healing(bob), None);
    world.process();
    assert_eq!(world.error(bob, OFFICE_365_E3, Some(group)), None);
    assert_eq!(
        world.engine.last_self_healing(bob),
        Some(&SelfHealing {
            at: world.now,
            reason: seats_available(),
            errors_cleared: true,
        })
    );
    assert_eq!(world.engine.pending_self_healing(bob), None);
    // carl still waits, and was not re-queued; ann was not in error.
    assert_eq!(
        world.error(carl, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::CountViolation)
    );
    assert_eq!(world.engine.last_self_healing(carl), None);
    assert_eq!(world.engine.last_self_healing(ann), None);
    // The diagnosis carries the record.
    let diagnosis = world
        .engine
        .diagnose_user(bob, world.now, DiagnosisOptions::default())?;
    assert_eq!(
        diagnosis.last_self_healing.map(|healing| healing.reason),
        Some(seats_available())
    );
    assert_eq!(
        seats_available().description(),
        "seats of Office 365 E3 became available"
    );

    // Buying a seat serves carl the same way.
    world.apply(Command::SetPrepaidUnits {
        sku_id: OFFICE_365_E3,
        prepaid_units: 2,
    })?;
    world.process();
    assert_eq!(world.error(carl, OFFICE_365_E3, Some(group)), None);
    assert_eq!(
        world
            .engine
            .last_self_healing(carl)
            .map(|healing| &healing.reason),
        Some(&seats_available())
    );
    Ok(())
}

#[test]
fn without_self_healing_waiting_users_wait_for_a_manual_reprocess_which_is_not_recorded() -> TestResult {
    let (mut world, group, [ann, bob, carl]) = waiting_for_e3(false)?;
    world.remove_member(group, ann)?;
    let report = world.process();
    assert_eq!(report.evaluated, vec![ann]);
    assert_eq!(
        world.error(bob, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::CountViolation)
    );
    assert_eq!(world.engine.pending_self_healing(bob), None);
    // A manual reprocess gives bob the free seat; it is no self-healing.
    world.apply(Command::ReprocessUser { user_id: bob })?;
    world.process();
    assert_eq!(world.error(bob, OFFICE_365_E3, Some(group)), None);
    assert_eq!(world.engine.last_self_healing(bob), None);
    assert_eq!(
        world.error(carl, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::CountViolation)
    );
    assert_eq!(world.engine.last_self_healing(carl), None);
    Ok(())
}

/// ann holds E1 directly and gets E3 from a group: Exchange and SharePoint conflict.
fn conflicting_e1_and_e3() -> Result<(SeedWorld, Uuid, Uuid), Box<dyn std::error::Error>> {
    let mut world = SeedWorld::new(SeedSeats::default())?;
    let ann = world.add_user("ann", Some("US"))?;
    world.assign_to_user(ann, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    let group = world.add_group("Sales - E3")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.add_member(group, ann)?;
    world.process();
    assert_eq!(
        world.error(ann, OFFICE_365_E3, Some(group)),
        Some(LicenseErrorKind::MutuallyExclusiveViolation)
    );
    Ok((world, group, ann))
}

#[test]
fn removing_the_conflicting_direct_license_records_direct_license_removed() -> TestResult {
    let (mut world, group, ann) = conflicting_e1_and_e3()?;
    world.assign_to_user(ann, vec![], vec![OFFICE_365_E1])?;
    let reason = RequeueReason::DirectLicenseRemoved {
        sku_id: OFFICE_365_E1,
        sku_display_name: "Office 365 E1".to_string(),
    };
    assert_eq!(world.engine.pending_self_healing(ann), Some(&reason));
    world.process();
    assert_eq!(world.error(ann, OFFICE_365_E3, Some(group)), None);
    let healing = world.engine.last_self_healing(ann).ok_or("no record")?;
    assert_eq!(healing.reason, reason);
    assert!(healing.errors_cleared);
    assert_eq!(
        reason.description(),
        "its direct Office 365 E1 license was removed"
    );
    Ok(())
}

#[test]
fn disabling_the_conflicting_plans_of_the_group_records_group_assignment_changed() -> TestResult {
    let (mut world, group, ann) = conflicting_e1_and_e3()?;
    let diagnosis = world
        .engine
        .diagnose_user(ann, world.now, DiagnosisOptions::default())?;
    let fix = diagnosis.problems[0]
        .fixes
        .iter()
        .find(|fix| fix.kind == FixKind::DisableConflictingPlansInThisAssignment)
        .ok_or("no fix disabling the group's conflicting plans")?;
    let group_change = fix
        .commands
        .iter()
        .find(|command| matches!(command, Command::AssignGroupLicenses { .. }))
        .ok_or("the fix changes the group's assignment")?
        .clone();
    world.apply(group_change)?;
    world.process();
    assert_eq!(world.error(ann, OFFICE_365_E3, Some(group)), None);
    let healing = world.engine.last_self_healing(ann).ok_or("no record")?;
    assert_eq!(
        healing.reason,
        RequeueReason::GroupAssignmentChanged {
            group_id: group,
            group_display_name: "Sales - E3".to_string(),
        }
    );
    assert!(healing.errors_cleared);
    Ok(())
}

#[test]
fn correcting_the_usage_location_records_usage_location_changed_and_healthy_users_nothing() -> TestResult {
    let mut world = SeedWorld::new(SeedSeats::default())?;
    let group = world.add_group("Frontline - E1")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    let cuba = world.add_user("cuba", Some("CU"))?;
    let ann = world.add_user("ann", Some("NL"))?;
    world.add_member(group, cuba)?;
    world.add_member(group, ann)?;
    world.process();
    assert_eq!(
        world.error(cuba, OFFICE_365_E1, Some(group)),
        Some(LicenseErrorKind::ProhibitedInUsageLocationViolation)
    );
    for user in [cuba, ann] {
        world.apply(Command::UpdateUser {
            user_id: user,
            changes: UserChanges {
                usage_location: Some(Some(CountryCode::parse("US")?)),
                ..Default::default()
            },
        })?;
    }
    world.process();
    assert_eq!(world.error(cuba, OFFICE_365_E1, Some(group)), None);
    let healing = world.engine.last_self_healing(cuba).ok_or("no record")?;
    assert_eq!(healing.reason, RequeueReason::UsageLocationChanged);
    assert!(healing.errors_cleared);
    // ann was healthy: re-evaluated, but not healed.
    assert_eq!(world.engine.last_self_healing(ann), None);
    Ok(())
}

#[test]
fn freeing_a_shared_proxy_address_records_proxy_address_freed_for_the_other_user() -> TestResult {
    let mut world = SeedWorld::new(SeedSeats::default())?;
    let ann = world.add_user("ann", Some("US"))?;
    let bob = world.add_user("bob", Some("US"))?;
    let sharing = |addresses: &[&str]| -> Result<UserChanges, Box<dyn std::error::Error>> {
        Ok(UserChanges {
            proxy_addresses: Some(
                addresses
                    .iter()
                    .map(|address| ProxyAddress::parse(address).map_err(Box::new))
                    .collect::<Result<_, _>>()?,
            ),
            ..Default::default()
        })
    };
    world.apply(Command::UpdateUser {
        user_id: bob,
        changes: sharing(&["SMTP:bob@contoso.com", "smtp:ann@contoso.com"])?,
    })?;
    let group = world.add_group("Sales - E3")?;
    world.assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.add_member(group, ann)?;
    world.add_member(group, bob)?;
    world.process();
    for user in [ann, bob] {
        assert_eq!(
            world.error(user, OFFICE_365_E3, Some(group)),
            Some(LicenseErrorKind::UniquenessViolation)
        );
    }
    world.apply(Command::UpdateUser {
        user_id: bob,
        changes: sharing(&["SMTP:bob@contoso.com"])?,
    })?;
    world.process();
    for user in [ann, bob] {
        assert_eq!(world.error(user, OFFICE_365_E3, Some(group)), None);
    }
    let ann_healing = world.engine.last_self_healing(ann).ok_or("no record for ann")?;
    assert_eq!(ann_healing.reason, RequeueReason::ProxyAddressFreed);
    assert!(ann_healing.errors_cleared);
    let bob_healing = world.engine.last_self_healing(bob).ok_or("no record for bob")?;
    assert_eq!(bob_healing.reason, RequeueReason::ProxyAddressesChanged);
    assert!(bob_healing.errors_cleared);

    // Deleting a user forgets its records.
    world.apply(Command::DeleteUser { user_id: bob })?;
    assert_eq!(world.engine.last_self_healing(bob), None);
    Ok(())
}
