//! Moving direct assignments to a group on a tenant mixing direct, group and partial plans:
//! the coverage report sorts users into covered, losing and not in the group; removing the
//! covered users' direct licenses loses no plan for any user; the users reported as losing would
//! indeed lose plans had their direct license been removed.

use licensd_engine::group_migration::{CoverageError, NotCovered};
use licensd_engine::{AssignedLicense, Command, Uuid};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E3, SHAREPOINT_PLAN_2};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn e3_without_sharepoint() -> AssignedLicense {
    AssignedLicense {
        sku_id: OFFICE_365_E3,
        disabled_plans: vec![SHAREPOINT_PLAN_2],
    }
}

#[test]
fn migration_loses_no_plan_unless_the_report_said_so() -> TestResult {
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: 10,
        office_365_e3: 10,
        ems_e3: 10,
        workplace_analytics: 0,
    })?;
    let group = world.add_group("Knowledge workers")?;
    world.assign_to_group(group, vec![e3_without_sharepoint()], vec![])?;
    // same: member, direct E3 without SharePoint (covered); full: member, direct full E3 (would
    // lose SharePoint); outside: direct E3, not a member; only_group: member without direct.
    let same = world.add_user("same", Some("US"))?;
    let full = world.add_user("full", Some("US"))?;
    let outside = world.add_user("outside", Some("US"))?;
    let only_group = world.add_user("onlygroup", Some("US"))?;
    let partial = world.add_user("partial", Some("US"))?;
    world.assign_to_user(same, vec![e3_without_sharepoint()], vec![])?;
    world.assign_to_user(full, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.assign_to_user(outside, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    // partial: direct E3 with SharePoint and Exchange disabled: fewer plans than the group.
    let exchange_2 = licensd_fixtures::seed_world::EXCHANGE_ONLINE_PLAN_2;
    world.assign_to_user(
        partial,
        vec![AssignedLicense {
            sku_id: OFFICE_365_E3,
            disabled_plans: vec![SHAREPOINT_PLAN_2, exchange_2],
        }],
        vec![],
    )?;
    for user in [same, full, only_group, partial] {
        world.add_member(group, user)?;
    }
    world.process();

    let report = world.engine.direct_to_group_coverage(group, OFFICE_365_E3)?;
    let ids = |users: &[licensd_engine::diagnosis::InvolvedUser]| {
        users.iter().map(|user| user.user_id).collect::<Vec<Uuid>>()
    };
    let mut covered = ids(&report.covered);
    covered.sort();
    let mut expected = vec![same, partial];
    expected.sort();
    assert_eq!(covered, expected);
    assert_eq!(ids(&report.not_in_group), vec![outside]);
    assert_eq!(report.losing.len(), 1);
    assert_eq!(report.losing[0].user.user_id, full);
    assert!(matches!(&report.losing[0].reason, NotCovered::FewerPlans(plans)
        if plans.iter().map(|plan| plan.service_plan_id).collect::<Vec<_>>() == vec![SHAREPOINT_PLAN_2]));

    // The dry run (what-if) predicts no newly broken user; then the real removal.
    let commands = report.removal_commands(OFFICE_365_E3);
    let what_if = world
        .engine
        .what_if(&commands, world.now, licensd_engine::WhatIfOptions::default())?;
    assert_eq!(what_if.newly_broken_users, 0);
    let users = world.engine.user_ids();
    let before: Vec<_> = users
        .iter()
        .map(|user| world.engine.user_plans_in_effect(*user).map_err(Box::new))
        .collect::<Result<_, _>>()?;
    for command in commands {
        world.apply(command)?;
    }
    world.process();
    for (user, plans) in users.iter().zip(&before) {
        assert_eq!(
            world.engine.plans_lost(*user, plans)?,
            vec![],
            "{user} lost plans"
        );
    }
    // E3 seats: one per user still, the direct ones of same and partial gone.
    assert!(world.engine.user_view(same)?.direct_licenses.is_empty());
    assert!(world.engine.user_view(partial)?.direct_licenses.is_empty());

    // Had `full` lost its direct license, SharePoint would have gone, as the report said.
    let mut counterfactual = world.engine.clone();
    let plans = counterfactual.user_plans_in_effect(full)?;
    counterfactual.apply(
        Command::AssignUserLicenses {
            user_id: full,
            add_licenses: vec![],
            remove_licenses: vec![OFFICE_365_E3],
        },
        world.now,
    )?;
    counterfactual.process_all(world.now);
    let lost = counterfactual.plans_lost(full, &plans)?;
    assert_eq!(
        lost.iter().map(|plan| plan.service_plan_id).collect::<Vec<_>>(),
        vec![SHAREPOINT_PLAN_2]
    );

    // A group that does not assign the product is refused.
    let other = world.add_group("No licenses")?;
    assert!(matches!(
        world.engine.direct_to_group_coverage(other, OFFICE_365_E3),
        Err(CoverageError::GroupDoesNotAssign { .. })
    ));
    Ok(())
}
