//! Every synchronous refusal of a command (`CommandError`), triggered through `Engine::apply`:
//! the variant and its fields, a message that names what was wrong (Graph's wording where Graph
//! has one), and proof that a refused command changed nothing.

use std::collections::BTreeMap;

use licensd_engine::{
    AppliesTo, AssignedLicense, CapabilityStatus, Command, CommandError, CountryCode, Engine, GroupView,
    LicenseAssignmentState, LicenseErrorKind, NewUser, PlanName, ProxyAddress, ServicePlanDefinition,
    ServicePlanRules, SkuDefinition, SkuUsage, TenantOverview, TenantSettings, UserChanges, UserView, Uuid,
    MAX_SERVICE_PLANS,
};
use licensd_fixtures::seed_world::{
    SeedSeats, SeedWorld, EXCHANGE_ONLINE_PLAN_1, EXCHANGE_ONLINE_PLAN_2, MICROSOFT_TEAMS_PLAN,
    OFFICE_365_E1, OFFICE_365_E3, SHAREPOINT_PLAN_1, WORKPLACE_ANALYTICS_PLAN, WORKPLACE_ANALYTICS_SKU,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Microsoft Sway (`SWAY`), a plan of Office 365 E3.
const SWAY_PLAN: Uuid = Uuid::from_u128(0xa23b959c_7ce8_4e57_9140_b90eb88a9e97);
/// An id nothing in the tenant has.
const NOWHERE: Uuid = Uuid::from_u128(0xdead_0000_0000_4000_8000_0000_0000_beef);

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

fn workplace_analytics() -> PlanName {
    plan_name(
        WORKPLACE_ANALYTICS_PLAN,
        "WORKPLACE_ANALYTICS",
        "Microsoft Workplace Analytics",
    )
}

/// Everything an administrator or a store could observe of a tenant, plus the engine's whole
/// internal state (its `Debug` form), to prove a refused command changed nothing at all.
#[derive(Debug, PartialEq)]
struct Observed {
    snapshot: BTreeMap<Uuid, Vec<LicenseAssignmentState>>,
    usages: Vec<SkuUsage>,
    overview: TenantOverview,
    users: Vec<UserView>,
    groups: Vec<GroupView>,
    group_members: Vec<Vec<Uuid>>,
    groups_with_errors: Vec<Uuid>,
    users_with_errors: Vec<Uuid>,
    rules: Vec<ServicePlanRules>,
    settings: TenantSettings,
    queued_users: usize,
    whole_engine: String,
}

impl Observed {
    fn of(engine: &Engine) -> Observed {
        let user_ids = engine.user_ids();
        let group_ids = engine.group_ids();
        let plan_ids: Vec<Uuid> = engine
            .sku_usages()
            .iter()
            .flat_map(|usage| usage.service_plans.iter().map(|(id, _, _)| *id))
            .collect();
        Observed {
            snapshot: engine.license_snapshot(),
            usages: engine.sku_usages(),
            overview: engine.tenant_overview(),
            users: user_ids
                .iter()
                .filter_map(|id| engine.user_view(*id).ok())
                .collect(),
            groups: group_ids
                .iter()
                .filter_map(|id| engine.group_view(*id).ok())
                .collect(),
            group_members: group_ids
                .iter()
                .filter_map(|id| engine.group_members(*id).ok())
                .collect(),
            groups_with_errors: engine.groups_with_errors(),
            users_with_errors: engine.users_with_errors(),
            rules: plan_ids
                .iter()
                .filter_map(|id| engine.service_plan_rules(*id).ok())
                .collect(),
            settings: engine.settings().clone(),
            queued_users: engine.queued_users(),
            whole_engine: format!("{engine:?}"),
        }
    }

    fn assert_same(&self, after: &Observed, error: &CommandError) {
        assert_eq!(
            self.snapshot, after.snapshot,
            "license states changed by refused {error:?}"
        );
        assert_eq!(self.usages, after.usages, "seats changed by refused {error:?}");
        assert_eq!(
            self.overview, after.overview,
            "overview changed by refused {error:?}"
        );
        assert_eq!(self.users, after.users, "users changed by refused {error:?}");
        assert_eq!(self.groups, after.groups, "groups changed by refused {error:?}");
        assert_eq!(
            self.group_members, after.group_members,
            "members changed by refused {error:?}"
        );
        assert_eq!(self.groups_with_errors, after.groups_with_errors);
        assert_eq!(self.users_with_errors, after.users_with_errors);
        assert_eq!(self.rules, after.rules, "plan rules changed by refused {error:?}");
        assert_eq!(
            self.settings, after.settings,
            "settings changed by refused {error:?}"
        );
        assert_eq!(
            self.queued_users, after.queued_users,
            "queue changed by refused {error:?}"
        );
        if let Some((before, after)) = first_difference(&self.whole_engine, &after.whole_engine) {
            panic!(
                "the engine's internal state changed although {error:?} was refused:\n  before: \
                 ...{before}...\n  after:  ...{after}..."
            );
        }
    }
}

/// The neighbourhood of the first difference between two `Debug` forms, if they differ.
fn first_difference(before: &str, after: &str) -> Option<(String, String)> {
    let position = before
        .char_indices()
        .zip(after.chars())
        .find(|((_, left), right)| left != right)
        .map(|((index, _), _)| index)
        .or_else(|| (before.len() != after.len()).then_some(before.len().min(after.len())))?;
    let excerpt = |text: &str| -> String {
        let start = text[..position.min(text.len())]
            .char_indices()
            .rev()
            .nth(60)
            .map_or(0, |(index, _)| index);
        text[start..].chars().take(120).collect()
    };
    Some((excerpt(before), excerpt(after)))
}

/// Applies a command that must be refused, checks that nothing changed, and returns the error.
fn refuse(world: &mut SeedWorld, command: Command) -> CommandError {
    let name = command.name();
    let before = Observed::of(&world.engine);
    let result = world.apply(command);
    let after = Observed::of(&world.engine);
    let error = match result {
        Ok(outcome) => panic!("{name} was accepted: {outcome:?}"),
        Err(error) => error,
    };
    before.assert_same(&after, &error);
    error
}

/// Asserts the message of an error contains every fragment.
fn assert_message(error: &CommandError, fragments: &[&str]) {
    let message = error.to_string();
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "{message:?} does not mention {fragment:?}"
        );
    }
}

/// The tenant the refusals are tried on: the seed world with one E3 seat, and
/// - alice (US) with E1 and Workplace Analytics directly (Exchange Online Plan 1 is its prerequisite);
/// - bob (US), member of "Sales" (E3): he holds the only E3 seat;
/// - carol (US) without licenses; nomad without usage location; havana in Cuba;
/// - "Sales" (E3) and "Empty" (no products).
struct Tenant {
    world: SeedWorld,
    alice: Uuid,
    bob: Uuid,
    carol: Uuid,
    nomad: Uuid,
    havana: Uuid,
    sales: Uuid,
    empty: Uuid,
}

fn tenant() -> Result<Tenant, Box<dyn std::error::Error>> {
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e3: 1,
        ..SeedSeats::default()
    })?;
    let alice = world.add_user("alice", Some("US"))?;
    let bob = world.add_user("bob", Some("US"))?;
    let carol = world.add_user("carol", Some("US"))?;
    let nomad = world.add_user("nomad", None)?;
    let havana = world.add_user("havana", Some("CU"))?;
    world.assign_to_user(
        alice,
        vec![
            AssignedLicense::new(OFFICE_365_E1),
            AssignedLicense::new(WORKPLACE_ANALYTICS_SKU),
        ],
        vec![],
    )?;
    let sales = world.add_group("Sales")?;
    let empty = world.add_group("Empty")?;
    world.assign_to_group(sales, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    world.add_member(sales, bob)?;
    world.process();
    assert!(world.engine.users_with_errors().is_empty());
    assert_eq!(world.engine.sku_usage(OFFICE_365_E3)?.available_units, 0);
    Ok(Tenant {
        world,
        alice,
        bob,
        carol,
        nomad,
        havana,
        sales,
        empty,
    })
}

fn assign_to_user(user_id: Uuid, add: Vec<AssignedLicense>, remove: Vec<Uuid>) -> Command {
    Command::AssignUserLicenses {
        user_id,
        add_licenses: add,
        remove_licenses: remove,
    }
}

fn assign_to_group(group_id: Uuid, add: Vec<AssignedLicense>, remove: Vec<Uuid>) -> Command {
    Command::AssignGroupLicenses {
        group_id,
        add_licenses: add,
        remove_licenses: remove,
    }
}

fn new_user(id: Uuid, user_principal_name: &str) -> NewUser {
    NewUser::new(id, user_principal_name)
}

fn test_plan(number: u128) -> ServicePlanDefinition {
    ServicePlanDefinition {
        service_plan_id: Uuid::from_u128(0x7e57_0000_0000_4000_8000_0000_0000_0000 | number),
        service_plan_name: format!("TEST_PLAN_{number}"),
        display_name: format!("Test plan {number}"),
    }
}

fn test_sku(sku_id: Uuid, part_number: &str, plans: Vec<ServicePlanDefinition>) -> SkuDefinition {
    SkuDefinition {
        sku_id,
        sku_part_number: part_number.to_string(),
        display_name: format!("Test product {part_number}"),
        applies_to: AppliesTo::User,
        service_plans: plans,
        prepaid_units: 10,
        capability_status: CapabilityStatus::Enabled,
    }
}

#[test]
fn a_product_reassigned_unchanged_still_conflicts_with_a_new_one_listed_before_it() -> TestResult {
    // Found by `properties::no_user_holds_mutually_exclusive_plans`: E3 held directly, then E1
    // and E3 in one request (E1 first). E3 adds no plan of its own, but its Exchange Online
    // Plan 2 excludes E1's Plan 1: refused, as when E1 is assigned alone.
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: 5,
        office_365_e3: 5,
        ..SeedSeats::default()
    })?;
    let carol = world.add_user("carol", Some("US"))?;
    world.assign_to_user(carol, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    let error = refuse(
        &mut world,
        assign_to_user(
            carol,
            vec![
                AssignedLicense::new(OFFICE_365_E1),
                AssignedLicense::new(OFFICE_365_E3),
            ],
            vec![],
        ),
    );
    assert!(
        matches!(error, CommandError::MutuallyExclusive { .. }),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn unknown_user_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let commands = vec![
        Command::AddGroupMember {
            group_id: tenant.sales,
            user_id: NOWHERE,
        },
        Command::RemoveGroupMember {
            group_id: tenant.sales,
            user_id: NOWHERE,
        },
        assign_to_user(NOWHERE, vec![AssignedLicense::new(OFFICE_365_E1)], vec![]),
        Command::UpdateUser {
            user_id: NOWHERE,
            changes: UserChanges {
                display_name: Some("Nobody".to_string()),
                ..UserChanges::default()
            },
        },
        Command::DeleteUser { user_id: NOWHERE },
        Command::ReprocessUser { user_id: NOWHERE },
    ];
    for command in commands {
        let error = refuse(&mut tenant.world, command);
        assert_eq!(error, CommandError::UnknownUser { user_id: NOWHERE });
        assert_eq!(error.to_string(), format!("user {NOWHERE} does not exist"));
        assert!(error.is_not_found());
        assert_eq!(error.license_error_kind(), None);
    }
    Ok(())
}

#[test]
fn unknown_group_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let commands = vec![
        Command::AddGroupMember {
            group_id: NOWHERE,
            user_id: tenant.carol,
        },
        Command::RemoveGroupMember {
            group_id: NOWHERE,
            user_id: tenant.bob,
        },
        assign_to_group(NOWHERE, vec![AssignedLicense::new(OFFICE_365_E1)], vec![]),
        Command::DeleteGroup { group_id: NOWHERE },
        Command::ReprocessGroup { group_id: NOWHERE },
    ];
    for command in commands {
        let error = refuse(&mut tenant.world, command);
        assert_eq!(error, CommandError::UnknownGroup { group_id: NOWHERE });
        assert_eq!(error.to_string(), format!("group {NOWHERE} does not exist"));
        assert!(error.is_not_found());
    }
    Ok(())
}

#[test]
fn unknown_sku_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let commands = vec![
        assign_to_user(tenant.carol, vec![AssignedLicense::new(NOWHERE)], vec![]),
        assign_to_user(tenant.alice, vec![], vec![NOWHERE]),
        assign_to_group(tenant.empty, vec![AssignedLicense::new(NOWHERE)], vec![]),
        assign_to_group(tenant.sales, vec![], vec![NOWHERE]),
        Command::SetPrepaidUnits {
            sku_id: NOWHERE,
            prepaid_units: 5,
        },
        Command::SetCapabilityStatus {
            sku_id: NOWHERE,
            capability_status: CapabilityStatus::Suspended,
        },
        Command::AddServicePlanToSku {
            sku_id: NOWHERE,
            service_plan: test_plan(1),
        },
    ];
    for command in commands {
        let error = refuse(&mut tenant.world, command);
        assert_eq!(error, CommandError::UnknownSku { sku_id: NOWHERE });
        assert_eq!(
            error.to_string(),
            format!("product (SKU) {NOWHERE} does not exist in this tenant")
        );
        assert!(!error.is_not_found());
    }
    Ok(())
}

#[test]
fn unknown_service_plan_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let commands = vec![
        Command::SetServicePlanRules {
            service_plan_id: NOWHERE,
            rules: ServicePlanRules::default(),
        },
        Command::SetServicePlanRules {
            service_plan_id: SWAY_PLAN,
            rules: ServicePlanRules {
                mutually_exclusive_with: vec![NOWHERE],
                ..ServicePlanRules::default()
            },
        },
        Command::SetServicePlanRules {
            service_plan_id: SWAY_PLAN,
            rules: ServicePlanRules {
                requires_any_of: vec![NOWHERE],
                ..ServicePlanRules::default()
            },
        },
    ];
    for command in commands {
        let error = refuse(&mut tenant.world, command);
        assert_eq!(
            error,
            CommandError::UnknownServicePlan {
                service_plan_id: NOWHERE
            }
        );
        assert_eq!(
            error.to_string(),
            format!("service plan {NOWHERE} does not exist in this tenant")
        );
    }
    Ok(())
}

#[test]
fn duplicate_user_id_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let alice = tenant.alice;
    let error = refuse(
        &mut tenant.world,
        Command::CreateUser(new_user(alice, "another.alice@contoso.com")),
    );
    assert_eq!(error, CommandError::DuplicateUserId { user_id: alice });
    assert_eq!(
        error.to_string(),
        format!("a user with id {alice} already exists")
    );
    Ok(())
}

#[test]
fn duplicate_user_principal_name_is_refused_ignoring_case() -> TestResult {
    let mut tenant = tenant()?;
    let error = refuse(
        &mut tenant.world,
        Command::CreateUser(new_user(NOWHERE, "ALICE@Contoso.com")),
    );
    assert_eq!(
        error,
        CommandError::DuplicateUserPrincipalName {
            user_principal_name: "ALICE@Contoso.com".to_string()
        }
    );
    assert_eq!(
        error.to_string(),
        "another user already has the userPrincipalName ALICE@Contoso.com"
    );
    let error = refuse(
        &mut tenant.world,
        Command::UpdateUser {
            user_id: tenant.bob,
            changes: UserChanges {
                user_principal_name: Some("alice@contoso.com".to_string()),
                display_name: Some("Bob, renamed".to_string()),
                ..UserChanges::default()
            },
        },
    );
    assert_eq!(
        error,
        CommandError::DuplicateUserPrincipalName {
            user_principal_name: "alice@contoso.com".to_string()
        }
    );
    Ok(())
}

#[test]
fn duplicate_group_id_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let sales = tenant.sales;
    let error = refuse(
        &mut tenant.world,
        Command::CreateGroup {
            group_id: sales,
            display_name: "Sales again".to_string(),
        },
    );
    assert_eq!(error, CommandError::DuplicateGroupId { group_id: sales });
    assert_eq!(
        error.to_string(),
        format!("a group with id {sales} already exists")
    );
    Ok(())
}

#[test]
fn duplicate_sku_id_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let error = refuse(
        &mut tenant.world,
        Command::AddSku(test_sku(
            OFFICE_365_E3,
            "ENTERPRISEPACK_AGAIN",
            vec![test_plan(1)],
        )),
    );
    assert_eq!(
        error,
        CommandError::DuplicateSkuId {
            sku_id: OFFICE_365_E3
        }
    );
    assert_eq!(
        error.to_string(),
        format!("a product with skuId {OFFICE_365_E3} already exists")
    );
    Ok(())
}

#[test]
fn duplicate_service_plan_in_sku_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let error = refuse(
        &mut tenant.world,
        Command::AddSku(test_sku(
            NOWHERE,
            "TWICE",
            vec![test_plan(1), test_plan(2), test_plan(1)],
        )),
    );
    assert_eq!(
        error,
        CommandError::DuplicateServicePlanInSku {
            sku_part_number: "TWICE".to_string(),
            service_plan_id: test_plan(1).service_plan_id,
        }
    );
    assert_message(
        &error,
        &["listed twice", "TWICE", &test_plan(1).service_plan_id.to_string()],
    );

    // Adding a plan the product already has.
    let error = refuse(
        &mut tenant.world,
        Command::AddServicePlanToSku {
            sku_id: OFFICE_365_E3,
            service_plan: plan_definition(SWAY_PLAN, "SWAY", "Sway"),
        },
    );
    assert_eq!(
        error,
        CommandError::DuplicateServicePlanInSku {
            sku_part_number: "ENTERPRISEPACK".to_string(),
            service_plan_id: SWAY_PLAN,
        }
    );
    assert_eq!(
        error.to_string(),
        format!("service plan {SWAY_PLAN} is listed twice in product ENTERPRISEPACK")
    );
    Ok(())
}

fn plan_definition(service_plan_id: Uuid, name: &str, display_name: &str) -> ServicePlanDefinition {
    ServicePlanDefinition {
        service_plan_id,
        service_plan_name: name.to_string(),
        display_name: display_name.to_string(),
    }
}

#[test]
fn too_many_service_plans_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let mut known: Vec<Uuid> = tenant
        .world
        .engine
        .sku_usages()
        .iter()
        .flat_map(|usage| usage.service_plans.iter().map(|(id, _, _)| *id))
        .collect();
    known.sort();
    known.dedup();
    // Fill the tenant up to the limit exactly: accepted.
    let filler: Vec<ServicePlanDefinition> = (0..(MAX_SERVICE_PLANS - known.len()) as u128)
        .map(test_plan)
        .collect();
    let filler_sku = Uuid::from_u128(0xf111_0000_0000_4000_8000_0000_0000_0001);
    tenant
        .world
        .apply(Command::AddSku(test_sku(filler_sku, "FILLER", filler)))?;
    let expected = CommandError::TooManyServicePlans {
        limit: MAX_SERVICE_PLANS,
    };

    // One more plan, added to an existing product.
    let error = refuse(
        &mut tenant.world,
        Command::AddServicePlanToSku {
            sku_id: OFFICE_365_E3,
            service_plan: test_plan(5000),
        },
    );
    assert_eq!(error, expected);
    assert_eq!(
        error.to_string(),
        format!("the tenant would know more than {MAX_SERVICE_PLANS} service plans")
    );

    // One more plan, in a new product.
    let error = refuse(
        &mut tenant.world,
        Command::AddSku(test_sku(NOWHERE, "ONE_TOO_MANY", vec![test_plan(5001)])),
    );
    assert_eq!(error, expected);
    assert!(tenant.world.engine.sku_usage(NOWHERE).is_err());
    Ok(())
}

#[test]
fn country_code_parse_rejects_anything_but_assigned_upper_case_alpha_2_codes() -> TestResult {
    for text in ["us", "Us", "USA", "U", "", "XX", "UK", "ZZ", "U1", "ÜS", " US"] {
        let error = match CountryCode::parse(text) {
            Ok(code) => panic!("{text:?} was accepted as {code}"),
            Err(error) => error,
        };
        assert_eq!(
            error,
            CommandError::InvalidUsageLocation {
                value: text.to_string()
            }
        );
        assert_eq!(
            error.to_string(),
            format!(
                "invalid usage location {text:?}: expected an ISO 3166-1 alpha-2 country code such as US"
            )
        );
    }
    for text in ["US", "NL", "CU", "GB", "ZW"] {
        assert_eq!(CountryCode::parse(text)?.as_str(), text);
    }

    // The seed world's helper parses before it applies anything: no user is created.
    let mut tenant = tenant()?;
    let before = Observed::of(&tenant.world.engine);
    let error = match tenant.world.add_user("lost", Some("XX")) {
        Ok(user) => panic!("a user {user} was created in XX"),
        Err(error) => error,
    };
    before.assert_same(&Observed::of(&tenant.world.engine), &error);
    assert_eq!(
        error,
        CommandError::InvalidUsageLocation {
            value: "XX".to_string()
        }
    );
    Ok(())
}

#[test]
fn proxy_address_parse_rejects_malformed_addresses() -> TestResult {
    let cases = [
        ("alice@contoso.com", "expected prefix:address"),
        (":alice@contoso.com", "the prefix must be letters, digits or '-'"),
        (
            "SM TP:alice@contoso.com",
            "the prefix must be letters, digits or '-'",
        ),
        (
            "ABCDEFGHIJKLMNOPQ:alice",
            "the prefix must be letters, digits or '-'",
        ),
        ("SMTP:", "must be non-empty and without spaces"),
        ("SMTP:alice @contoso.com", "must be non-empty and without spaces"),
        ("SMTP:alice", "an SMTP address must look like name@domain"),
        ("smtp:@contoso.com", "an SMTP address must look like name@domain"),
        ("SMTP:alice@", "an SMTP address must look like name@domain"),
        (
            "SMTP:a@b@contoso.com",
            "an SMTP address must look like name@domain",
        ),
    ];
    for (text, reason) in cases {
        let error = match ProxyAddress::parse(text) {
            Ok(address) => panic!("{text:?} was accepted as {address}"),
            Err(error) => error,
        };
        match &error {
            CommandError::InvalidProxyAddress {
                value,
                reason: actual,
            } => {
                assert_eq!(value, text);
                assert!(actual.contains(reason), "{actual:?} for {text:?}");
            }
            other => panic!("{text:?} refused with {other:?}"),
        }
        assert!(error
            .to_string()
            .starts_with(&format!("invalid proxy address {text:?}: ")));
    }
    for text in [
        "SMTP:alice@contoso.com",
        "smtp:alice@contoso.com",
        "SIP:alice@contoso.com",
        "X500:/o=Contoso/ou=Exchange/cn=Recipients/cn=alice",
    ] {
        assert_eq!(ProxyAddress::parse(text)?.as_str(), text);
    }
    Ok(())
}

#[test]
fn the_same_proxy_address_twice_on_one_user_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let twice = vec![
        ProxyAddress::parse("SMTP:dana@contoso.com")?,
        ProxyAddress::parse("smtp:Dana@Contoso.com")?,
    ];
    let mut dana = new_user(NOWHERE, "dana@contoso.com");
    dana.proxy_addresses = twice.clone();
    let error = refuse(&mut tenant.world, Command::CreateUser(dana));
    assert_eq!(
        error,
        CommandError::InvalidProxyAddress {
            value: "smtp:Dana@Contoso.com".to_string(),
            reason: "listed twice for the same user".to_string(),
        }
    );
    assert_eq!(
        error.to_string(),
        "invalid proxy address \"smtp:Dana@Contoso.com\": listed twice for the same user"
    );
    let error = refuse(
        &mut tenant.world,
        Command::UpdateUser {
            user_id: tenant.carol,
            changes: UserChanges {
                proxy_addresses: Some(twice),
                ..UserChanges::default()
            },
        },
    );
    assert!(
        matches!(error, CommandError::InvalidProxyAddress { .. }),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn invalid_user_principal_name_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let cases = [
        ("dana", "expected name@domain"),
        ("@contoso.com", "the part before @ must have 1 to 64 characters"),
        (
            "dana@contoso",
            "the part after @ must be a domain such as contoso.com",
        ),
        (
            "dana@contoso@com.org",
            "the part after @ must be a domain such as contoso.com",
        ),
        ("da na@contoso.com", "at most 256 characters, without spaces"),
    ];
    for (text, reason) in cases {
        let error = refuse(&mut tenant.world, Command::CreateUser(new_user(NOWHERE, text)));
        assert_eq!(
            error,
            CommandError::InvalidUserPrincipalName {
                value: text.to_string(),
                reason: reason.to_string(),
            }
        );
        assert_eq!(
            error.to_string(),
            format!("invalid userPrincipalName {text:?}: {reason}")
        );
    }
    let error = refuse(
        &mut tenant.world,
        Command::UpdateUser {
            user_id: tenant.carol,
            changes: UserChanges {
                user_principal_name: Some("carol".to_string()),
                ..UserChanges::default()
            },
        },
    );
    assert!(
        matches!(error, CommandError::InvalidUserPrincipalName { .. }),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn invalid_value_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let error = refuse(
        &mut tenant.world,
        Command::AddSku(test_sku(NOWHERE, "  ", vec![test_plan(1)])),
    );
    assert_eq!(
        error,
        CommandError::InvalidValue {
            field: "skuPartNumber",
            reason: "must not be empty".to_string(),
        }
    );
    assert_eq!(error.to_string(), "invalid skuPartNumber: must not be empty");
    let error = refuse(
        &mut tenant.world,
        Command::CreateGroup {
            group_id: NOWHERE,
            display_name: " ".to_string(),
        },
    );
    assert_eq!(
        error,
        CommandError::InvalidValue {
            field: "displayName",
            reason: "a group needs a display name".to_string(),
        }
    );
    assert_eq!(
        error.to_string(),
        "invalid displayName: a group needs a display name"
    );
    Ok(())
}

#[test]
fn invalid_plan_rule_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let cases = [
        (
            EXCHANGE_ONLINE_PLAN_1,
            ServicePlanRules {
                mutually_exclusive_with: vec![EXCHANGE_ONLINE_PLAN_2, EXCHANGE_ONLINE_PLAN_1],
                ..ServicePlanRules::default()
            },
            exchange_1(),
            "a plan cannot be mutually exclusive with itself",
        ),
        (
            WORKPLACE_ANALYTICS_PLAN,
            ServicePlanRules {
                requires_any_of: vec![WORKPLACE_ANALYTICS_PLAN],
                ..ServicePlanRules::default()
            },
            workplace_analytics(),
            "a plan cannot be its own prerequisite",
        ),
        (
            WORKPLACE_ANALYTICS_PLAN,
            ServicePlanRules {
                mutually_exclusive_with: vec![EXCHANGE_ONLINE_PLAN_1],
                requires_any_of: vec![EXCHANGE_ONLINE_PLAN_1, EXCHANGE_ONLINE_PLAN_2],
                ..ServicePlanRules::default()
            },
            workplace_analytics(),
            "a plan cannot require a plan it is mutually exclusive with",
        ),
    ];
    for (service_plan_id, rules, plan, reason) in cases {
        let error = refuse(
            &mut tenant.world,
            Command::SetServicePlanRules {
                service_plan_id,
                rules,
            },
        );
        let display_name = plan.display_name.clone();
        assert_eq!(
            error,
            CommandError::InvalidPlanRule {
                plan,
                reason: reason.to_string(),
            }
        );
        assert_eq!(
            error.to_string(),
            format!("invalid rule for service plan {display_name}: {reason}")
        );
    }
    Ok(())
}

#[test]
fn already_a_member_and_not_a_member_are_refused() -> TestResult {
    let mut tenant = tenant()?;
    let (sales, bob, carol) = (tenant.sales, tenant.bob, tenant.carol);
    let error = refuse(
        &mut tenant.world,
        Command::AddGroupMember {
            group_id: sales,
            user_id: bob,
        },
    );
    assert_eq!(
        error,
        CommandError::AlreadyMember {
            group_id: sales,
            user_id: bob
        }
    );
    assert_eq!(
        error.to_string(),
        format!("user {bob} is already a member of group {sales}")
    );
    let error = refuse(
        &mut tenant.world,
        Command::RemoveGroupMember {
            group_id: sales,
            user_id: carol,
        },
    );
    assert_eq!(
        error,
        CommandError::NotAMember {
            group_id: sales,
            user_id: carol
        }
    );
    assert_eq!(
        error.to_string(),
        format!("user {carol} is not a member of group {sales}")
    );
    Ok(())
}

#[test]
fn no_license_changes_provided() -> TestResult {
    let mut tenant = tenant()?;
    for command in [
        assign_to_user(tenant.alice, vec![], vec![]),
        assign_to_group(tenant.sales, vec![], vec![]),
    ] {
        let error = refuse(&mut tenant.world, command);
        assert_eq!(error, CommandError::NoLicenseChanges);
        assert_eq!(
            error.to_string(),
            "No license changes provided. At least one license to add or remove must be specified."
        );
    }
    Ok(())
}

#[test]
fn a_company_product_cannot_be_assigned_to_a_user() -> TestResult {
    let mut tenant = tenant()?;
    let company_sku = Uuid::from_u128(0xc0c0_0000_0000_4000_8000_0000_0000_0001);
    let mut definition = test_sku(company_sku, "TENANT_ADDON", vec![test_plan(7)]);
    definition.applies_to = AppliesTo::Company;
    tenant.world.apply(Command::AddSku(definition))?;
    for command in [
        assign_to_user(tenant.carol, vec![AssignedLicense::new(company_sku)], vec![]),
        assign_to_group(tenant.empty, vec![AssignedLicense::new(company_sku)], vec![]),
    ] {
        let error = refuse(&mut tenant.world, command);
        assert_eq!(
            error,
            CommandError::SkuNotAssignableToUsers {
                sku_id: company_sku,
                sku_part_number: "TENANT_ADDON".to_string(),
            }
        );
        assert_eq!(
            error.to_string(),
            "License TENANT_ADDON cannot be assigned to a user."
        );
    }
    Ok(())
}

#[test]
fn disabling_a_plan_the_product_does_not_have_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    // Exchange Online (Plan 2) is known to the tenant, but not part of E1; NOWHERE is unknown.
    for plan in [EXCHANGE_ONLINE_PLAN_2, NOWHERE] {
        for command in [
            assign_to_user(
                tenant.carol,
                vec![AssignedLicense::with_disabled_plans(OFFICE_365_E1, [plan])],
                vec![],
            ),
            assign_to_group(
                tenant.empty,
                vec![AssignedLicense::with_disabled_plans(OFFICE_365_E1, [plan])],
                vec![],
            ),
        ] {
            let error = refuse(&mut tenant.world, command);
            assert_eq!(
                error,
                CommandError::DisabledPlanNotInSku {
                    sku_id: OFFICE_365_E1,
                    sku_part_number: "STANDARDPACK".to_string(),
                    service_plan_id: plan,
                }
            );
            assert_eq!(
                error.to_string(),
                format!(
                    "service plan {plan} is not part of product STANDARDPACK, so it cannot be disabled in it"
                )
            );
        }
    }
    Ok(())
}

#[test]
fn a_product_listed_twice_in_one_request_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let commands = [
        assign_to_user(
            tenant.carol,
            vec![
                AssignedLicense::new(OFFICE_365_E1),
                AssignedLicense::with_disabled_plans(OFFICE_365_E1, [SHAREPOINT_PLAN_1]),
            ],
            vec![],
        ),
        assign_to_user(tenant.alice, vec![], vec![OFFICE_365_E1, OFFICE_365_E1]),
        assign_to_group(
            tenant.empty,
            vec![
                AssignedLicense::new(OFFICE_365_E1),
                AssignedLicense::new(OFFICE_365_E1),
            ],
            vec![],
        ),
    ];
    for command in commands {
        let error = refuse(&mut tenant.world, command);
        assert_eq!(
            error,
            CommandError::DuplicateLicenseInRequest {
                sku_id: OFFICE_365_E1
            }
        );
        assert_eq!(
            error.to_string(),
            format!("product {OFFICE_365_E1} is listed more than once in the request")
        );
    }
    Ok(())
}

#[test]
fn a_product_both_added_and_removed_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    for (command, sku_id) in [
        (
            assign_to_user(
                tenant.alice,
                vec![AssignedLicense::new(OFFICE_365_E1)],
                vec![OFFICE_365_E1],
            ),
            OFFICE_365_E1,
        ),
        (
            assign_to_group(
                tenant.sales,
                vec![AssignedLicense::new(OFFICE_365_E3)],
                vec![OFFICE_365_E3],
            ),
            OFFICE_365_E3,
        ),
    ] {
        let error = refuse(&mut tenant.world, command);
        assert_eq!(error, CommandError::LicenseAddedAndRemoved { sku_id });
        assert_eq!(
            error.to_string(),
            format!("product {sku_id} is both added and removed in the same request")
        );
    }
    Ok(())
}

#[test]
fn removing_a_license_that_is_not_assigned_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let (carol, empty) = (tenant.carol, tenant.empty);
    let error = refuse(
        &mut tenant.world,
        assign_to_user(carol, vec![], vec![OFFICE_365_E1]),
    );
    assert_eq!(
        error,
        CommandError::LicenseNotAssigned {
            sku_id: OFFICE_365_E1,
            sku_part_number: "STANDARDPACK".to_string(),
            target: format!("user {carol}"),
        }
    );
    assert_eq!(
        error.to_string(),
        format!("User does not have a corresponding license: product STANDARDPACK is not assigned to user {carol}")
    );
    let error = refuse(
        &mut tenant.world,
        assign_to_group(empty, vec![], vec![OFFICE_365_E3]),
    );
    assert_eq!(
        error,
        CommandError::LicenseNotAssigned {
            sku_id: OFFICE_365_E3,
            sku_part_number: "ENTERPRISEPACK".to_string(),
            target: format!("group {empty}"),
        }
    );
    assert_message(&error, &["ENTERPRISEPACK", &format!("group {empty}")]);
    Ok(())
}

#[test]
fn an_inherited_license_cannot_be_removed_from_the_user_directly() -> TestResult {
    let mut tenant = tenant()?;
    let bob = tenant.bob;
    let error = refuse(
        &mut tenant.world,
        assign_to_user(bob, vec![], vec![OFFICE_365_E3]),
    );
    assert_eq!(
        error,
        CommandError::LicenseInheritedFromGroup {
            user_id: bob,
            sku_id: OFFICE_365_E3,
            sku_part_number: "ENTERPRISEPACK".to_string(),
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "User license is inherited from group membership and cannot be removed directly from the user \
             (product ENTERPRISEPACK, user {bob})"
        )
    );
    assert_eq!(error.license_error_kind(), None);
    Ok(())
}

#[test]
fn a_direct_assignment_needs_the_users_own_usage_location() -> TestResult {
    let mut tenant = tenant()?;
    let nomad = tenant.nomad;
    // The tenant's default (US) is for group licensing only; Graph wants the user's own.
    let error = refuse(
        &mut tenant.world,
        assign_to_user(nomad, vec![AssignedLicense::new(OFFICE_365_E1)], vec![]),
    );
    assert_eq!(
        error,
        CommandError::UsageLocationRequired {
            user_id: nomad,
            sku_part_number: "STANDARDPACK".to_string(),
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "License assignment cannot be done for user with invalid usage location. User {nomad} has no usage \
             location; set one before assigning STANDARDPACK directly."
        )
    );
    assert_eq!(
        error.license_error_kind(),
        Some(LicenseErrorKind::ProhibitedInUsageLocationViolation)
    );
    Ok(())
}

#[test]
fn a_direct_assignment_in_a_prohibited_usage_location_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let havana = tenant.havana;
    let error = refuse(
        &mut tenant.world,
        assign_to_user(havana, vec![AssignedLicense::new(OFFICE_365_E1)], vec![]),
    );
    assert_eq!(
        error,
        CommandError::ProhibitedInUsageLocation {
            user_id: havana,
            sku_id: OFFICE_365_E1,
            sku_part_number: "STANDARDPACK".to_string(),
            plan: plan_name(MICROSOFT_TEAMS_PLAN, "TEAMS1", "Microsoft Teams"),
            usage_location: CountryCode::parse("CU")?,
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "License assignment cannot be done for user with invalid usage location. Service plan Microsoft \
             Teams of STANDARDPACK is not available in CU (user {havana})."
        )
    );
    assert_eq!(
        error.license_error_kind(),
        Some(LicenseErrorKind::ProhibitedInUsageLocationViolation)
    );
    // Without Teams it is allowed.
    tenant.world.assign_to_user(
        havana,
        vec![AssignedLicense::with_disabled_plans(
            OFFICE_365_E1,
            [MICROSOFT_TEAMS_PLAN],
        )],
        vec![],
    )?;
    Ok(())
}

#[test]
fn a_direct_assignment_of_mutually_exclusive_plans_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let (alice, bob, carol) = (tenant.alice, tenant.bob, tenant.carol);
    let cases = [
        // E3 over a direct E1.
        (
            assign_to_user(alice, vec![AssignedLicense::new(OFFICE_365_E3)], vec![]),
            alice,
            OFFICE_365_E3,
            "ENTERPRISEPACK",
            exchange_2(),
            exchange_1(),
        ),
        // E1 over an E3 from a group.
        (
            assign_to_user(bob, vec![AssignedLicense::new(OFFICE_365_E1)], vec![]),
            bob,
            OFFICE_365_E1,
            "STANDARDPACK",
            exchange_1(),
            exchange_2(),
        ),
        // E1 and E3 in one request.
        (
            assign_to_user(
                carol,
                vec![
                    AssignedLicense::new(OFFICE_365_E1),
                    AssignedLicense::new(OFFICE_365_E3),
                ],
                vec![],
            ),
            carol,
            OFFICE_365_E3,
            "ENTERPRISEPACK",
            exchange_2(),
            exchange_1(),
        ),
    ];
    for (command, user_id, sku_id, part_number, plan, conflicting_plan) in cases {
        let error = refuse(&mut tenant.world, command);
        let message = format!(
            "License assignment failed because service plans {}, {} are mutually exclusive. (user {user_id}, \
             product {part_number})",
            plan.display_name, conflicting_plan.display_name
        );
        assert_eq!(
            error,
            CommandError::MutuallyExclusive {
                user_id,
                sku_id,
                sku_part_number: part_number.to_string(),
                plan,
                conflicting_plan,
            }
        );
        assert_eq!(error.to_string(), message);
        assert_eq!(
            error.license_error_kind(),
            Some(LicenseErrorKind::MutuallyExclusiveViolation)
        );
    }
    Ok(())
}

#[test]
fn a_direct_assignment_without_its_prerequisite_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let (alice, carol) = (tenant.alice, tenant.carol);
    let error = refuse(
        &mut tenant.world,
        assign_to_user(carol, vec![AssignedLicense::new(WORKPLACE_ANALYTICS_SKU)], vec![]),
    );
    assert_eq!(
        error,
        CommandError::Dependency {
            user_id: carol,
            sku_id: WORKPLACE_ANALYTICS_SKU,
            sku_part_number: "WORKPLACE_ANALYTICS".to_string(),
            plan: workplace_analytics(),
            required_plans: vec![exchange_1(), exchange_2()],
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "License assignment failed because service plan Microsoft Workplace Analytics depends on the \
             service plan(s) Exchange Online (Plan 1), Exchange Online (Plan 2). (user {carol}, product \
             WORKPLACE_ANALYTICS)"
        )
    );
    assert_eq!(
        error.license_error_kind(),
        Some(LicenseErrorKind::DependencyViolation)
    );

    // Removing the prerequisite, or disabling it, is refused the same way.
    for command in [
        assign_to_user(alice, vec![], vec![OFFICE_365_E1]),
        assign_to_user(
            alice,
            vec![AssignedLicense::with_disabled_plans(
                OFFICE_365_E1,
                [EXCHANGE_ONLINE_PLAN_1],
            )],
            vec![],
        ),
    ] {
        let error = refuse(&mut tenant.world, command);
        assert_eq!(
            error,
            CommandError::Dependency {
                user_id: alice,
                sku_id: OFFICE_365_E1,
                sku_part_number: "STANDARDPACK".to_string(),
                plan: workplace_analytics(),
                required_plans: vec![exchange_1(), exchange_2()],
            }
        );
        assert_message(
            &error,
            &[
                "Microsoft Workplace Analytics depends on",
                "Exchange Online (Plan 1)",
                "STANDARDPACK",
            ],
        );
    }
    Ok(())
}

#[test]
fn a_direct_assignment_without_a_free_unit_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let carol = tenant.carol;
    let error = refuse(
        &mut tenant.world,
        assign_to_user(carol, vec![AssignedLicense::new(OFFICE_365_E3)], vec![]),
    );
    assert_eq!(
        error,
        CommandError::NotEnoughLicenses {
            user_id: carol,
            sku_id: OFFICE_365_E3,
            sku_part_number: "ENTERPRISEPACK".to_string(),
            prepaid_units: 1,
            consumed_units: 1,
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "Not enough licenses: product ENTERPRISEPACK has 1 purchased and 1 assigned, so none is available \
             for user {carol}."
        )
    );
    assert_eq!(error.license_error_kind(), Some(LicenseErrorKind::CountViolation));
    // The user who already consumes the unit can take it directly as well.
    tenant
        .world
        .assign_to_user(tenant.bob, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])?;
    assert_eq!(tenant.world.engine.sku_usage(OFFICE_365_E3)?.consumed_units, 1);
    Ok(())
}

#[test]
fn a_direct_assignment_with_a_proxy_address_in_use_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let carol = tenant.carol;
    let mut dana = new_user(NOWHERE, "dana@contoso.com");
    dana.usage_location = Some(CountryCode::parse("US")?);
    dana.proxy_addresses = vec![
        ProxyAddress::parse("SMTP:dana@contoso.com")?,
        ProxyAddress::parse("smtp:Carol@contoso.com")?,
    ];
    tenant.world.apply(Command::CreateUser(dana))?;
    let error = refuse(
        &mut tenant.world,
        assign_to_user(NOWHERE, vec![AssignedLicense::new(OFFICE_365_E1)], vec![]),
    );
    assert_eq!(
        error,
        CommandError::ProxyAddressInUse {
            user_id: NOWHERE,
            sku_id: OFFICE_365_E1,
            sku_part_number: "STANDARDPACK".to_string(),
            proxy_address: "smtp:carol@contoso.com".to_string(),
            other_user_id: carol,
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "Proxy address is already being used: smtp:carol@contoso.com of user {NOWHERE} is also held by \
             user {carol}, and STANDARDPACK contains a mailbox plan"
        )
    );
    assert_eq!(
        error.license_error_kind(),
        Some(LicenseErrorKind::UniquenessViolation)
    );
    // A product without a mailbox plan is not concerned.
    tenant.world.assign_to_user(
        NOWHERE,
        vec![AssignedLicense::new(licensd_fixtures::seed_world::EMS_E3)],
        vec![],
    )?;
    Ok(())
}

#[test]
fn a_group_without_the_prerequisite_of_an_add_on_is_refused() -> TestResult {
    let mut tenant = tenant()?;
    let (empty, sales) = (tenant.empty, tenant.sales);
    let error = refuse(
        &mut tenant.world,
        assign_to_group(empty, vec![AssignedLicense::new(WORKPLACE_ANALYTICS_SKU)], vec![]),
    );
    assert_eq!(
        error,
        CommandError::GroupPrerequisiteMissing {
            group_id: empty,
            service: workplace_analytics(),
            requires_any_of: vec![exchange_1(), exchange_2()],
        }
    );
    assert_eq!(
        error.to_string(),
        "License operation failed. Make sure that the group has necessary services before adding or removing \
         a dependent service. The service Microsoft Workplace Analytics requires Exchange Online (Plan 1) or \
         Exchange Online (Plan 2) to be enabled as well."
    );
    // E3 without Exchange Online (Plan 2) does not count as the prerequisite either.
    let error = refuse(
        &mut tenant.world,
        assign_to_group(
            sales,
            vec![
                AssignedLicense::with_disabled_plans(OFFICE_365_E3, [EXCHANGE_ONLINE_PLAN_2]),
                AssignedLicense::new(WORKPLACE_ANALYTICS_SKU),
            ],
            vec![],
        ),
    );
    assert!(matches!(error, CommandError::GroupPrerequisiteMissing { group_id, .. } if group_id == sales));
    Ok(())
}

#[test]
fn a_group_with_licenses_cannot_be_deleted() -> TestResult {
    let mut tenant = tenant()?;
    let sales = tenant.sales;
    let error = refuse(&mut tenant.world, Command::DeleteGroup { group_id: sales });
    assert_eq!(
        error,
        CommandError::GroupHasLicenses {
            group_id: sales,
            sku_count: 1,
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "group {sales} still has licenses assigned (1 products); remove its licenses before deleting it"
        )
    );
    Ok(())
}

#[test]
fn a_group_that_still_grants_a_blocked_removal_cannot_be_deleted() -> TestResult {
    let mut tenant = tenant()?;
    let carol = tenant.carol;
    let frontline = tenant.world.add_group("Frontline E1")?;
    tenant
        .world
        .assign_to_group(frontline, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])?;
    tenant.world.add_member(frontline, carol)?;
    tenant.world.process();
    tenant
        .world
        .assign_to_user(carol, vec![AssignedLicense::new(WORKPLACE_ANALYTICS_SKU)], vec![])?;
    // Removing E1 from the group would take away Exchange Online (Plan 1), which carol's
    // Workplace Analytics needs: the removal is blocked on her.
    tenant
        .world
        .assign_to_group(frontline, vec![], vec![OFFICE_365_E1])?;
    tenant.world.process();
    assert_eq!(
        tenant.world.error(carol, OFFICE_365_E1, Some(frontline)),
        Some(LicenseErrorKind::DependencyViolation)
    );

    let error = refuse(&mut tenant.world, Command::DeleteGroup { group_id: frontline });
    assert_eq!(
        error,
        CommandError::GroupStillGrantsLicenses {
            group_id: frontline,
            user_count: 1,
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "group {frontline} still grants licenses to 1 users whose removal is blocked; resolve those users \
             first"
        )
    );
    Ok(())
}
