//! Dynamic membership groups in the engine: memberships follow rules and attribute changes,
//! licenses and seats follow memberships, a paused rule freezes members, hand-made changes are
//! refused, an image keeps rules and memberships, and incremental application equals applying
//! every rule from scratch (property test).

use licensd_engine::{
    AssignedLicense, Command, CommandError, Engine, NewUser, RuleProcessingState, UserAttribute, UserChanges,
    Uuid,
};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, EMS_E3, OFFICE_365_E3};
use proptest::prelude::*;

fn set_rule(world: &mut SeedWorld, group_id: Uuid, rule: &str, state: RuleProcessingState) {
    world
        .apply(Command::SetMembershipRule {
            group_id,
            rule: Some(rule.to_string()),
            processing_state: state,
        })
        .unwrap_or_else(|error| panic!("{rule}: {error}"));
}

fn add_user_in(world: &mut SeedWorld, name: &str, department: &str) -> Uuid {
    let user_id = world.next_id();
    let mut user = NewUser::new(user_id, &format!("{name}@contoso.com"));
    user.attributes
        .insert(UserAttribute::DEPARTMENT, department.to_string());
    world.apply(Command::CreateUser(user)).expect("user");
    user_id
}

fn set_department(world: &mut SeedWorld, user_id: Uuid, department: Option<&str>) {
    world
        .apply(Command::UpdateUser {
            user_id,
            changes: UserChanges {
                attributes: [(UserAttribute::DEPARTMENT, department.map(str::to_string))].into(),
                ..UserChanges::default()
            },
        })
        .expect("department");
}

fn consumed(world: &SeedWorld, sku_id: Uuid) -> u32 {
    world.engine.sku_usage(sku_id).expect("usage").consumed_units
}

fn license(sku_id: Uuid) -> AssignedLicense {
    AssignedLicense {
        sku_id,
        disabled_plans: Vec::new(),
    }
}

#[test]
fn a_department_change_moves_a_user_between_licensed_groups_and_the_seats_follow() {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed");
    let sales = world.add_group("Sales (dynamic)").expect("group");
    let marketing = world.add_group("Marketing (dynamic)").expect("group");
    world
        .assign_to_group(sales, vec![license(OFFICE_365_E3)], vec![])
        .expect("E3");
    world
        .assign_to_group(marketing, vec![license(EMS_E3)], vec![])
        .expect("EMS");
    let ann = add_user_in(&mut world, "ann", "Sales");
    let bob = add_user_in(&mut world, "bob", "Marketing");
    set_rule(
        &mut world,
        sales,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::On,
    );
    set_rule(
        &mut world,
        marketing,
        r#"user.department -eq "marketing""#,
        RuleProcessingState::On,
    );
    assert_eq!(world.engine.group_members(sales).expect("members"), [ann]);
    assert_eq!(world.engine.group_members(marketing).expect("members"), [bob]);
    world.process();
    let (e3_before, ems_before) = (consumed(&world, OFFICE_365_E3), consumed(&world, EMS_E3));
    assert!(world.state(ann, OFFICE_365_E3, Some(sales)).is_some());

    // Ann moves to Marketing: she leaves Sales and its E3 seat, joins Marketing and takes EMS.
    set_department(&mut world, ann, Some("Marketing"));
    assert_eq!(
        world.engine.group_members(sales).expect("members"),
        Vec::<Uuid>::new()
    );
    let mut marketing_members = world.engine.group_members(marketing).expect("members");
    marketing_members.sort();
    let mut expected = vec![ann, bob];
    expected.sort();
    assert_eq!(marketing_members, expected);
    world.process();
    assert_eq!(world.state(ann, OFFICE_365_E3, Some(sales)), None);
    assert!(world.state(ann, EMS_E3, Some(marketing)).is_some());
    assert_eq!(consumed(&world, OFFICE_365_E3), e3_before - 1);
    assert_eq!(consumed(&world, EMS_E3), ems_before + 1);

    // Clearing the department takes her out of every group.
    set_department(&mut world, ann, None);
    world.process();
    assert_eq!(world.engine.group_members(marketing).expect("members"), [bob]);
    assert_eq!(consumed(&world, EMS_E3), ems_before);
}

#[test]
fn a_paused_rule_freezes_membership_until_it_is_on_again() {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed");
    let sales = world.add_group("Sales").expect("group");
    let ann = add_user_in(&mut world, "ann", "Sales");
    set_rule(
        &mut world,
        sales,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::On,
    );
    set_rule(
        &mut world,
        sales,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::Paused,
    );
    set_department(&mut world, ann, Some("Finance"));
    let carol = add_user_in(&mut world, "carol", "Sales");
    assert_eq!(
        world.engine.group_members(sales).expect("members"),
        [ann],
        "frozen"
    );
    set_rule(
        &mut world,
        sales,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::On,
    );
    assert_eq!(
        world.engine.group_members(sales).expect("members"),
        [carol],
        "resumed"
    );
    // A paused rule set on a group with members keeps them.
    let assigned = world.add_group("Assigned").expect("group");
    world.add_member(assigned, ann).expect("member");
    set_rule(
        &mut world,
        assigned,
        r#"user.department -eq "Nobody""#,
        RuleProcessingState::Paused,
    );
    assert_eq!(world.engine.group_members(assigned).expect("members"), [ann]);
}

#[test]
fn members_of_a_dynamic_group_cannot_be_added_or_removed_by_hand_and_bad_rules_are_refused() {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed");
    let sales = world.add_group("Sales").expect("group");
    let ann = add_user_in(&mut world, "ann", "Sales");
    let bob = add_user_in(&mut world, "bob", "Finance");
    set_rule(
        &mut world,
        sales,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::On,
    );
    assert_eq!(
        world.add_member(sales, bob),
        Err(CommandError::DynamicMembershipGroup { group_id: sales })
    );
    assert_eq!(
        world.remove_member(sales, ann),
        Err(CommandError::DynamicMembershipGroup { group_id: sales })
    );
    let refused = world.apply(Command::SetMembershipRule {
        group_id: sales,
        rule: Some(r#"user.department -eq "Sales" -and"#.to_string()),
        processing_state: RuleProcessingState::On,
    });
    assert!(
        matches!(
            refused,
            Err(CommandError::InvalidMembershipRule { position: 33, .. })
        ),
        "{refused:?}"
    );
    assert_eq!(
        world.engine.group_members(sales).expect("members"),
        [ann],
        "nothing changed"
    );
    // A rule naming its own group, a missing group, or a cycle through memberOf.
    let other = world.add_group("Other").expect("group");
    for rule in [
        format!("user.memberOf -any (group.objectId -in ['{sales}'])"),
        format!(
            "user.memberOf -any (group.objectId -in ['{}'])",
            Uuid::from_u128(0xdead)
        ),
    ] {
        let refused = world.apply(Command::SetMembershipRule {
            group_id: sales,
            rule: Some(rule.clone()),
            processing_state: RuleProcessingState::On,
        });
        assert!(
            matches!(refused, Err(CommandError::InvalidMembershipRule { .. })),
            "{rule}"
        );
    }
    set_rule(
        &mut world,
        other,
        &format!("user.memberOf -any (group.objectId -in ['{sales}'])"),
        RuleProcessingState::On,
    );
    assert_eq!(
        world.engine.group_members(other).expect("members"),
        [ann],
        "memberOf follows"
    );
    let cycle = world.apply(Command::SetMembershipRule {
        group_id: sales,
        rule: Some(format!("user.memberOf -any (group.objectId -in ['{other}'])")),
        processing_state: RuleProcessingState::On,
    });
    assert!(
        matches!(cycle, Err(CommandError::InvalidMembershipRule { .. })),
        "{cycle:?}"
    );
    // Dropping the rule makes the group an assigned one that keeps its members.
    world
        .apply(Command::SetMembershipRule {
            group_id: other,
            rule: None,
            processing_state: RuleProcessingState::On,
        })
        .expect("static again");
    world
        .add_member(other, bob)
        .expect("assigned members are allowed again");
}

#[test]
fn an_image_keeps_rules_states_and_memberships() {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed");
    let sales = world.add_group("Sales").expect("group");
    let paused = world.add_group("Paused").expect("group");
    let ann = add_user_in(&mut world, "ann", "Sales");
    set_rule(
        &mut world,
        sales,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::On,
    );
    set_rule(
        &mut world,
        paused,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::Paused,
    );
    let restored = Engine::from_image(world.engine.to_image()).expect("restored");
    assert_eq!(restored.to_image(), world.engine.to_image());
    let dynamic = restored
        .dynamic_membership(paused)
        .expect("group")
        .expect("dynamic");
    assert_eq!(dynamic.processing_state, RuleProcessingState::Paused);
    assert_eq!(restored.group_members(sales).expect("members"), [ann]);
    // The restored engine keeps applying the rule.
    world.engine = restored;
    set_department(&mut world, ann, Some("Finance"));
    assert!(world.engine.group_members(sales).expect("members").is_empty());
}

const DEPARTMENTS: [&str; 4] = ["Sales", "Marketing", "Finance", "sales"];
const CITIES: [&str; 3] = ["Paris", "Lagos", "Lyon"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// After random attribute changes, applied incrementally, every dynamic group holds exactly
    /// the users its rule selects — what re-applying every rule from scratch gives.
    #[test]
    fn incremental_membership_equals_applying_every_rule_from_scratch(
        users in proptest::collection::vec((0..5usize, 0..4usize, any::<bool>()), 1..12),
        changes in proptest::collection::vec((0..12usize, 0..3usize, 0..5usize), 0..30),
    ) {
        let mut world = SeedWorld::new(SeedSeats::default()).expect("seed");
        let rules = [
            r#"user.department -eq "Sales""#,
            r#"user.department -in ["Marketing", "Finance"] -and user.city -ne "Paris""#,
            r#"-not (user.city -startsWith "L") -or user.accountEnabled -eq false"#,
            r#"user.department -eq null"#,
        ];
        let mut groups = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            let group = world.add_group(&format!("Dynamic {index}")).expect("group");
            set_rule(&mut world, group, rule, RuleProcessingState::On);
            groups.push(group);
        }
        let chained = world.add_group("Chained").expect("group");
        set_rule(
            &mut world,
            chained,
            &format!("user.memberOf -any (group.objectId -in ['{}', '{}'])", groups[0], groups[1]),
            RuleProcessingState::On,
        );
        groups.push(chained);
        let mut ids = Vec::new();
        for (index, (department, city, enabled)) in users.iter().enumerate() {
            let user_id = world.next_id();
            let mut user = NewUser::new(user_id, &format!("user{index}@contoso.com"));
            if let Some(department) = DEPARTMENTS.get(*department) {
                user.attributes.insert(UserAttribute::DEPARTMENT, department.to_string());
            }
            user.attributes.insert(UserAttribute::CITY, CITIES[*city % 3].to_string());
            user.account_enabled = *enabled;
            world.apply(Command::CreateUser(user)).expect("user");
            ids.push(user_id);
        }
        for (user, what, value) in changes {
            let user_id = ids[user % ids.len()];
            let mut change = UserChanges::default();
            match what {
                0 => { change.attributes.insert(UserAttribute::DEPARTMENT, DEPARTMENTS.get(value).map(|d| d.to_string())); }
                1 => { change.attributes.insert(UserAttribute::CITY, Some(CITIES[value % 3].to_string())); }
                _ => change.account_enabled = Some(value % 2 == 0),
            }
            world.apply(Command::UpdateUser { user_id, changes: change }).expect("change");
        }
        let incremental: Vec<Vec<Uuid>> = groups
            .iter()
            .map(|group| {
                let mut members = world.engine.group_members(*group).expect("members");
                members.sort();
                members
            })
            .collect();
        // From scratch: every rule set again (in the same order), on a copy.
        let mut scratch = world.clone();
        for (group, rule) in groups.iter().zip(rules.iter()) {
            scratch.apply(Command::SetMembershipRule { group_id: *group, rule: None, processing_state: RuleProcessingState::On }).expect("drop");
            for member in scratch.engine.group_members(*group).expect("members") {
                scratch.remove_member(*group, member).expect("empty");
            }
            set_rule(&mut scratch, *group, rule, RuleProcessingState::On);
        }
        for (index, group) in groups.iter().enumerate() {
            let mut expected: Vec<Uuid> = ids
                .iter()
                .copied()
                .filter(|user| {
                    let rule = scratch.engine.dynamic_membership(*group).expect("group").expect("dynamic").rule.clone();
                    scratch.engine.user_matches_rule(*user, &rule).expect("user")
                })
                .collect();
            expected.sort();
            prop_assert_eq!(&incremental[index], &expected, "group {}", index);
        }
    }
}
