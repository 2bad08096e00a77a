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
            // The evaluator over every user at once agrees, on the incremental tenant itself.
            let rule = world.engine.dynamic_membership(*group).expect("group").expect("dynamic").rule.clone();
            let mut at_once = world.engine.users_matching_rule(&rule);
            at_once.sort();
            prop_assert_eq!(&incremental[index], &at_once, "group {} at once", index);
        }
        // And every rule from scratch counts the same members.
        let members: usize = incremental.iter().map(Vec::len).sum();
        prop_assert_eq!(world.engine.evaluate_every_rule_from_scratch(), members);
        prop_assert_eq!(world.engine.evaluate_every_rule_per_user(), members);
        // The engine's dense form (a persisted snapshot's) restores the same tenant: the
        // dynamic groups, their members and the users' attribute values.
        let dense = world.engine.dense_users();
        let restored = Engine::from_dense_image(world.engine.image_without_users(), &dense.tables, &dense.bytes)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert!(restored.to_image() == world.engine.to_image(), "the dense round trip differs");
    }
}

/// One comparison of the generated rules: every operator on directory attributes (values that
/// differ only by case, prefixes, suffixes, infixes, `null`, lists, patterns), `accountEnabled`,
/// a property read per user (`displayName`, `usageLocation`), `-any` / `-all` over proxy
/// addresses and `memberOf`.
fn comparison_text(index: usize, static_group: Uuid, other_group: Uuid) -> String {
    const ATTRIBUTES: [&str; 3] = ["department", "city", "extensionAttribute3"];
    const VALUES: [&str; 6] = ["Sales", "sales ops", "SAL", "ops", "Paris", "a"];
    let attribute = ATTRIBUTES[index % 3];
    let value = VALUES[(index / 3) % 6];
    match (index / 18) % 19 {
        0 => format!(r#"user.{attribute} -eq "{value}""#),
        1 => format!(r#"user.{attribute} -ne "{value}""#),
        2 => format!("user.{attribute} -eq null"),
        3 => format!("user.{attribute} -ne null"),
        4 => format!(r#"user.{attribute} -startsWith "{value}""#),
        5 => format!(r#"user.{attribute} -notStartsWith "{value}""#),
        6 => format!(r#"user.{attribute} -endsWith "{value}""#),
        7 => format!(r#"user.{attribute} -notEndsWith "{value}""#),
        8 => format!(r#"user.{attribute} -contains "{value}""#),
        9 => format!(r#"user.{attribute} -notContains "{value}""#),
        10 => format!(r#"user.{attribute} -match "^{value}.*s$""#),
        11 => format!(r#"user.{attribute} -notMatch "{value}""#),
        12 => format!(r#"user.{attribute} -in ["{value}", "PARIS", "Sales Ops"]"#),
        13 => format!(r#"user.{attribute} -notIn ["{value}", "lyon"]"#),
        14 => format!(
            "user.accountEnabled -{} {}",
            ["eq", "ne"][index % 2],
            index % 3 == 0
        ),
        15 => format!(
            r#"user.displayName -startsWith "{}""#,
            ["user1", "USER"][index % 2]
        ),
        16 => format!(
            r#"user.proxyAddresses -{} (_ -contains "{}")"#,
            ["any", "all"][index % 2],
            ["fabrikam", "smtp:"][index % 3 % 2]
        ),
        17 => format!(
            "user.memberOf -any (group.objectId -in ['{static_group}', '{}'])",
            [
                "00000000-0000-0000-0000-00000000dead",
                other_group.to_string().as_str()
            ][index % 2]
        ),
        _ => format!(
            "user.memberOf -{} (group.objectId -{} ['{static_group}'])",
            ["any", "all"][index % 2],
            ["notIn", "in"][index % 3 % 2]
        ),
    }
}

/// A rule of up to three levels of `-and`, `-or`, `-not` and parentheses over comparisons.
fn rule_text() -> impl Strategy<Value = String> {
    let leaf = (0..18 * 19usize).prop_map(|index| format!("({{{index}}})"));
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} -and {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} -or {b})")),
            inner.prop_map(|a| format!("-not {a}")),
        ]
    })
}

/// Replaces each `{index}` placeholder of a generated rule with its comparison.
fn expand(template: &str, static_group: Uuid, other_group: Uuid) -> String {
    let mut text = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        text.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("closing brace");
        let index: usize = rest[start + 1..end].parse().expect("index");
        text.push_str(&comparison_text(index, static_group, other_group));
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The evaluator over every user at once (each comparison once per distinct value, sets of
    /// users) selects exactly the users the per-user evaluator selects, for random rules on
    /// random users (values that differ by case, missing values, deleted users, proxy
    /// addresses, memberships).
    #[test]
    fn evaluating_a_rule_over_every_user_at_once_equals_evaluating_it_per_user(
        users in proptest::collection::vec(
            (0..6usize, 0..5usize, 0..4usize, any::<bool>(), 0..3usize, 0..3usize),
            1..16,
        ),
        deleted in proptest::collection::vec(0..16usize, 0..3),
        rules in proptest::collection::vec(rule_text(), 1..6),
    ) {
        const DEPARTMENTS: [&str; 5] = ["Sales", "sales", "Sales Ops", "SALES OPS", "Marketing"];
        const CITIES: [&str; 4] = ["Paris", "paris", "Lyon", "Aix"];
        const EXTENSIONS: [&str; 3] = ["a", "A-ops", "SAL"];
        let mut world = SeedWorld::new(SeedSeats::default()).expect("seed");
        let static_group = world.add_group("Static").expect("group");
        let other_group = world.add_group("Other").expect("group");
        let mut ids = Vec::new();
        for (index, (department, city, extension, enabled, addresses, groups)) in users.iter().enumerate() {
            let user_id = world.next_id();
            let mut user = NewUser::new(user_id, &format!("user{index}@contoso.com"));
            if let Some(department) = DEPARTMENTS.get(*department) {
                user.attributes.insert(UserAttribute::DEPARTMENT, department.to_string());
            }
            if let Some(city) = CITIES.get(*city) {
                user.attributes.insert(UserAttribute::CITY, city.to_string());
            }
            if let Some(extension) = EXTENSIONS.get(*extension) {
                user.attributes.insert(UserAttribute::extension(3).expect("3"), extension.to_string());
            }
            user.account_enabled = *enabled;
            user.proxy_addresses = match addresses {
                0 => Vec::new(),
                1 => vec![licensd_engine::ProxyAddress::parse(&format!("SMTP:user{index}@contoso.com")).expect("address")],
                _ => vec![
                    licensd_engine::ProxyAddress::parse(&format!("SMTP:user{index}@contoso.com")).expect("address"),
                    licensd_engine::ProxyAddress::parse(&format!("smtp:user{index}@fabrikam.com")).expect("address"),
                ],
            };
            world.apply(Command::CreateUser(user)).expect("user");
            if *groups >= 1 {
                world.add_member(static_group, user_id).expect("member");
            }
            if *groups >= 2 {
                world.add_member(other_group, user_id).expect("member");
            }
            ids.push(user_id);
        }
        for index in deleted {
            if let Some(user_id) = ids.get(index) {
                let _ = world.apply(Command::DeleteUser { user_id: *user_id });
            }
        }
        for template in rules {
            let text = expand(&template, static_group, other_group);
            let rule = licensd_engine::MembershipRule::parse(&text)
                .unwrap_or_else(|error| panic!("{text}: {error}"));
            let mut per_user: Vec<Uuid> = world
                .engine
                .user_ids()
                .into_iter()
                .filter(|user| world.engine.user_matches_rule(*user, &rule).expect("user"))
                .collect();
            per_user.sort();
            let mut at_once = world.engine.users_matching_rule(&rule);
            at_once.sort();
            prop_assert_eq!(at_once, per_user, "{}", text);
        }
    }
}

/// The preview of a rule change (which applies the new rule to every user at once) reports
/// exactly who joins and leaves, whose licenses change and the seats, as applying the change
/// and processing it does; and the tenant does not change.
#[test]
fn previewing_a_rule_change_reports_what_applying_it_does() {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed");
    let sales = world.add_group("Sales (dynamic)").expect("group");
    world
        .assign_to_group(sales, vec![license(EMS_E3)], vec![])
        .expect("EMS");
    let departments = ["Sales", "Marketing", "Finance", "sales", "Support"];
    let users: Vec<Uuid> = (0..25)
        .map(|index| {
            let user_id = add_user_in(&mut world, &format!("user{index}"), departments[index % 5]);
            if index % 4 == 0 {
                set_department(&mut world, user_id, None);
            }
            user_id
        })
        .collect();
    set_rule(
        &mut world,
        sales,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::On,
    );
    world.process();
    let members_before = world.engine.group_members(sales).expect("members");
    let image_before = world.engine.to_image();
    let change = Command::SetMembershipRule {
        group_id: sales,
        rule: Some(
            r#"user.department -in ["Marketing", "Finance"] -or user.department -eq null"#.to_string(),
        ),
        processing_state: RuleProcessingState::On,
    };
    let report = world
        .engine
        .what_if(
            std::slice::from_ref(&change),
            world.now,
            licensd_engine::WhatIfOptions {
                max_listed_users: 1_000,
            },
        )
        .expect("preview");
    assert_eq!(
        world.engine.to_image(),
        image_before,
        "the preview changes nothing"
    );

    let mut applied = world.clone();
    applied.apply(change).expect("applied");
    applied.process();
    let members_after = applied.engine.group_members(sales).expect("members");
    let mut joined: Vec<Uuid> = members_after
        .iter()
        .copied()
        .filter(|user| !members_before.contains(user))
        .collect();
    let mut left: Vec<Uuid> = members_before
        .iter()
        .copied()
        .filter(|user| !members_after.contains(user))
        .collect();
    joined.sort();
    left.sort();
    assert!(!joined.is_empty() && !left.is_empty());
    assert_eq!(report.memberships.len(), 1);
    let membership = &report.memberships[0];
    assert_eq!(membership.group_id, sales);
    let (mut joined_listed, mut left_listed) =
        (membership.joined_users.clone(), membership.left_users.clone());
    joined_listed.sort();
    left_listed.sort();
    assert_eq!((membership.joined, membership.left), (joined.len(), left.len()));
    assert_eq!((joined_listed, left_listed), (joined.clone(), left.clone()));
    // Each user's predicted states are the states applying the change gives.
    let changed: Vec<Uuid> = users
        .iter()
        .copied()
        .filter(|user| {
            let outcome = |engine: &Engine| {
                engine
                    .user_license_states(*user)
                    .expect("states")
                    .into_iter()
                    .map(|state| (state.sku_id, state.assigned_by_group, state.state, state.error))
                    .collect::<Vec<_>>()
            };
            outcome(&world.engine) != outcome(&applied.engine)
        })
        .collect();
    assert_eq!(report.changed_users, changed.len());
    for user in &changed {
        let prediction = report.user(*user).expect("listed");
        let without_time = |states: &[licensd_engine::LicenseAssignmentState]| {
            states
                .iter()
                .map(|state| licensd_engine::LicenseAssignmentState {
                    last_updated: licensd_engine::Timestamp(0),
                    ..state.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            without_time(&prediction.states_after),
            without_time(&applied.engine.user_license_states(*user).expect("states"))
        );
    }
    let usage = applied.engine.sku_usage(EMS_E3).expect("usage");
    let sku = report
        .skus
        .iter()
        .find(|sku| sku.sku_id == EMS_E3)
        .expect("EMS seats change");
    assert_eq!(sku.consumed_units_after, usage.consumed_units);
    assert_eq!(sku.consumed_units_before, consumed(&world, EMS_E3));
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

fn preview(world: &SeedWorld, change: Command) -> licensd_engine::WhatIfReport {
    world
        .engine
        .what_if(
            std::slice::from_ref(&change),
            world.now,
            licensd_engine::WhatIfOptions {
                max_listed_users: 1_000,
            },
        )
        .expect("preview")
}

/// Entra ID's "change membership type": a dynamic group made assigned (static) keeps its members
/// and their licenses — the preview says nothing changes — and no longer follows attributes;
/// a static group made dynamic gets the members its rule selects, the preview naming who joins
/// and leaves and the seats they take and free, exactly as applying it does.
#[test]
fn a_group_changes_membership_type_both_ways_previewed_first() {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed");
    let sales = world.add_group("Sales").expect("group");
    world
        .assign_to_group(sales, vec![license(EMS_E3)], vec![])
        .expect("EMS");
    let ann = add_user_in(&mut world, "ann", "Sales");
    let bob = add_user_in(&mut world, "bob", "Finance");
    let carol = add_user_in(&mut world, "carol", "Sales");
    set_rule(
        &mut world,
        sales,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::On,
    );
    world.process();
    let ems = consumed(&world, EMS_E3);
    assert!(world.state(ann, EMS_E3, Some(sales)).is_some());

    // Dynamic → static: the preview predicts no change at all.
    let to_static = Command::SetMembershipRule {
        group_id: sales,
        rule: None,
        processing_state: RuleProcessingState::On,
    };
    let report = preview(&world, to_static.clone());
    assert_eq!(report.memberships, Vec::new());
    assert_eq!((report.changed_users, report.skus.len()), (0, 0));
    world.apply(to_static).expect("static");
    world.process();
    assert_eq!(world.engine.dynamic_membership(sales).expect("group"), None);
    assert_eq!(
        sorted(world.engine.group_members(sales).expect("members")),
        sorted(vec![ann, carol]),
        "the members stay, as assigned members"
    );
    assert_eq!(consumed(&world, EMS_E3), ems, "and keep their licenses");
    // Attributes no longer move anyone; members are added and removed by hand.
    set_department(&mut world, ann, Some("Finance"));
    world.add_member(sales, bob).expect("added by hand");
    world.remove_member(sales, carol).expect("removed by hand");
    world.process();
    assert_eq!(
        sorted(world.engine.group_members(sales).expect("members")),
        sorted(vec![ann, bob])
    );

    // Static → dynamic: the rule decides; Bob (Finance) leaves, Carol (Sales) joins.
    let to_dynamic = Command::SetMembershipRule {
        group_id: sales,
        rule: Some(r#"user.department -in ["Sales", "Finance"] -and user.displayName -ne "bob""#.to_string()),
        processing_state: RuleProcessingState::On,
    };
    let report = preview(&world, to_dynamic.clone());
    assert_eq!(report.memberships.len(), 1, "{report:?}");
    let membership = &report.memberships[0];
    assert_eq!(membership.group_id, sales);
    assert_eq!(
        (membership.joined_users.clone(), membership.left_users.clone()),
        (vec![carol], vec![bob])
    );
    let ems_id = EMS_E3;
    assert_eq!(report.user(carol).expect("carol").seats_consumed, [ems_id]);
    assert_eq!(report.user(bob).expect("bob").seats_freed, [ems_id]);
    assert!(report.user(ann).is_none(), "Ann stays: no change");
    world.apply(to_dynamic).expect("dynamic");
    world.process();
    assert_eq!(
        sorted(world.engine.group_members(sales).expect("members")),
        sorted(vec![ann, carol])
    );
    assert_eq!(world.state(bob, EMS_E3, Some(sales)), None);
    assert!(world.state(carol, EMS_E3, Some(sales)).is_some());
    assert_eq!(
        world.add_member(sales, bob),
        Err(CommandError::DynamicMembershipGroup { group_id: sales })
    );
}

/// A dynamic group's members are users: a group is not nested in one, and a group with nested
/// groups is not made dynamic (the refusal names them; nothing changes).
#[test]
fn dynamic_groups_and_nested_groups_do_not_mix() {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed");
    let all_staff = world.add_group("All Staff").expect("group");
    let platform = world.add_group("Platform").expect("group");
    let sales = world.add_group("Sales").expect("group");
    set_rule(
        &mut world,
        sales,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::On,
    );
    assert_eq!(
        world.apply(Command::AddGroupMemberGroup {
            group_id: sales,
            member_group_id: platform,
        }),
        Err(CommandError::DynamicMembershipGroup { group_id: sales })
    );
    world
        .apply(Command::AddGroupMemberGroup {
            group_id: all_staff,
            member_group_id: platform,
        })
        .expect("nested");
    let refused = world.apply(Command::SetMembershipRule {
        group_id: all_staff,
        rule: Some(r#"user.department -eq "Sales""#.to_string()),
        processing_state: RuleProcessingState::On,
    });
    match refused {
        Err(CommandError::InvalidValue { field, reason }) => {
            assert_eq!(field, "groupTypes");
            assert!(reason.contains("Platform"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(world.engine.dynamic_membership(all_staff).expect("group"), None);
    // A dynamic group nested in a static one is fine.
    world
        .apply(Command::AddGroupMemberGroup {
            group_id: all_staff,
            member_group_id: sales,
        })
        .expect("a dynamic group can be a member");
}

/// The preview of a user's attribute change names every dynamic group the user would join or
/// leave and the seats taken and freed.
#[test]
fn previewing_a_users_attribute_change_names_the_groups_and_licenses() {
    let mut world = SeedWorld::new(SeedSeats::default()).expect("seed");
    let sales = world.add_group("Sales").expect("group");
    let finance = world.add_group("Finance").expect("group");
    world
        .assign_to_group(sales, vec![license(EMS_E3)], vec![])
        .expect("EMS");
    world
        .assign_to_group(finance, vec![license(OFFICE_365_E3)], vec![])
        .expect("E3");
    set_rule(
        &mut world,
        sales,
        r#"user.department -eq "Sales""#,
        RuleProcessingState::On,
    );
    set_rule(
        &mut world,
        finance,
        r#"user.department -eq "Finance""#,
        RuleProcessingState::On,
    );
    let ann = add_user_in(&mut world, "ann", "Sales");
    world.process();
    let image = world.engine.to_image();
    let report = preview(
        &world,
        Command::UpdateUser {
            user_id: ann,
            changes: UserChanges {
                attributes: [(UserAttribute::DEPARTMENT, Some("Finance".to_string()))].into(),
                ..UserChanges::default()
            },
        },
    );
    assert_eq!(world.engine.to_image(), image, "the preview changes nothing");
    let mut moves: Vec<(Uuid, Vec<Uuid>, Vec<Uuid>)> = report
        .memberships
        .iter()
        .map(|membership| {
            (
                membership.group_id,
                membership.joined_users.clone(),
                membership.left_users.clone(),
            )
        })
        .collect();
    moves.sort();
    let mut expected = vec![(sales, vec![], vec![ann]), (finance, vec![ann], vec![])];
    expected.sort();
    assert_eq!(moves, expected);
    let ann_prediction = report.user(ann).expect("ann");
    assert_eq!(ann_prediction.seats_consumed, [OFFICE_365_E3]);
    assert_eq!(ann_prediction.seats_freed, [EMS_E3]);
}

/// A preview moving thousands of users spread over the whole directory (so the simulated copy
/// writes every copy-on-write chunk of users, groups and states it shares with the tenant)
/// leaves the tenant exactly as it was, gives the same answer when asked again, and predicts
/// what applying the change gives; applying it to a copy of the tenant leaves the tenant as it
/// was too.
#[test]
fn a_preview_moving_users_across_the_whole_directory_leaves_the_tenant_unchanged() {
    let mut world = SeedWorld::new(SeedSeats {
        ems_e3: 3_000,
        ..SeedSeats::default()
    })
    .expect("seed");
    let group = world.add_group("Departments (dynamic)").expect("group");
    world
        .assign_to_group(group, vec![license(EMS_E3)], vec![])
        .expect("EMS");
    let users: Vec<Uuid> = (0..10_000)
        .map(|index| add_user_in(&mut world, &format!("user{index}"), &format!("D{}", index % 5)))
        .collect();
    set_rule(
        &mut world,
        group,
        r#"user.department -eq "D0""#,
        RuleProcessingState::On,
    );
    world.process();
    assert_eq!(consumed(&world, EMS_E3), 2_000);
    let states = |engine: &Engine| -> Vec<_> {
        users
            .iter()
            .map(|user| engine.user_license_states(*user).expect("states"))
            .collect()
    };
    let image_before = world.engine.to_image();
    let states_before = states(&world.engine);
    let members_before = world.engine.group_members(group).expect("members");

    // D0 (2,000 members) leaves, D1 and D2 (4,000) join: 3,000 seats for 4,000 users.
    let change = Command::SetMembershipRule {
        group_id: group,
        rule: Some(r#"user.department -in ["D1", "D2"]"#.to_string()),
        processing_state: RuleProcessingState::On,
    };
    let preview = |world: &SeedWorld| {
        world
            .engine
            .what_if(
                std::slice::from_ref(&change),
                world.now,
                licensd_engine::WhatIfOptions { max_listed_users: 10 },
            )
            .expect("preview")
    };
    let report = preview(&world);
    assert_eq!(
        world.engine.to_image(),
        image_before,
        "the preview changes nothing"
    );
    assert_eq!(states(&world.engine), states_before);
    assert_eq!(
        world.engine.group_members(group).expect("members"),
        members_before
    );
    assert_eq!(consumed(&world, EMS_E3), 2_000);
    assert_eq!(preview(&world), report, "a second preview answers the same");
    let membership = &report.memberships[0];
    assert_eq!((membership.joined, membership.left), (4_000, 2_000));
    assert_eq!(report.changed_users, 6_000);
    assert_eq!(report.newly_broken_users, 1_000);

    let mut applied = world.clone();
    applied.apply(change).expect("applied");
    applied.process();
    let after = states(&applied.engine);
    let changed = states_before
        .iter()
        .zip(after.iter())
        .filter(|(before, after)| {
            let outcome = |states: &&Vec<licensd_engine::LicenseAssignmentState>| {
                states
                    .iter()
                    .map(|state| (state.sku_id, state.assigned_by_group, state.state, state.error))
                    .collect::<Vec<_>>()
            };
            outcome(before) != outcome(after)
        })
        .count();
    assert_eq!(report.changed_users, changed);
    assert_eq!(consumed(&applied, EMS_E3), 3_000);
    assert_eq!(
        world.engine.to_image(),
        image_before,
        "applying to a copy changes nothing here"
    );
    assert_eq!(states(&world.engine), states_before);
}
