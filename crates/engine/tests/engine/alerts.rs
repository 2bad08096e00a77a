//! Alert transitions from the engine's real state changes (the seed's "not enough licenses"
//! scenario): a user entering CountViolation is one transition, processing again while the user
//! stays in error is none, and buying a seat is one transition out of the error.

use licensd_engine::alerts::{error_digests, AlertCondition, AlertRule, AlertSubject, ErrorFilter};
use licensd_engine::{AssignedLicense, Command, LicenseErrorKind, Uuid};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, EMS_E3};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn a_user_entering_staying_in_and_leaving_an_error_gives_two_transitions() -> TestResult {
    let mut world = SeedWorld::new(SeedSeats {
        ems_e3: 2,
        ..SeedSeats::default()
    })?;
    let group = world.add_group("Mobility - EMS E3")?;
    world.assign_to_group(group, vec![AssignedLicense::new(EMS_E3)], vec![])?;
    let mut members = Vec::new();
    for name in ["ann", "ben", "cat"] {
        let user = world.add_user(name, Some("US"))?;
        world.add_member(group, user)?;
        members.push(user);
    }
    let report = world.process();
    let entered = world.engine.error_transitions(&report.changes);
    // Ann and Ben received the license (no error before or after): no transition.
    assert_eq!(entered.len(), 1, "{entered:?}");
    assert_eq!(entered[0].user_id, members[2]);
    assert_eq!(entered[0].user_principal_name, "cat@contoso.com");
    assert_eq!(entered[0].sku_part_number, "EMS");
    assert_eq!(entered[0].group_id, Some(group));
    assert_eq!(entered[0].left, None);
    assert_eq!(entered[0].entered, Some(LicenseErrorKind::CountViolation));
    let rule = AlertRule {
        rule_id: Uuid::from_u128(1),
        condition: AlertCondition::LicenseErrorEntered(ErrorFilter {
            kinds: vec![LicenseErrorKind::CountViolation],
            group_id: Some(group),
            sku_id: Some(EMS_E3),
        }),
    };
    let digests = error_digests(std::slice::from_ref(&rule), &entered);
    assert!(matches!(
        &digests[..],
        [digest] if matches!(digest.subject, AlertSubject::LicenseErrors { entered: true, count: 1, .. })
    ));

    // Processed again, still no seat: Cat stays in error, which is no transition.
    world.apply(Command::ReprocessGroup { group_id: group })?;
    let report = world.process();
    assert!(report.evaluated_users > 0);
    assert!(world.engine.error_transitions(&report.changes).is_empty());

    // A seat bought: Cat leaves the error.
    world.apply(Command::SetPrepaidUnits {
        sku_id: EMS_E3,
        prepaid_units: 3,
    })?;
    let report = world.process();
    let left = world.engine.error_transitions(&report.changes);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].user_id, members[2]);
    assert_eq!(left[0].left, Some(LicenseErrorKind::CountViolation));
    assert_eq!(left[0].entered, None);
    assert!(error_digests(&[rule], &left).is_empty());
    Ok(())
}
