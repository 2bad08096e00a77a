//! Building the tenant: what is loaded, adjusted and skipped (with the engine's messages), the
//! states licensd evaluates, and the order that lets Microsoft's recorded winners keep their seats.

use licensd_engine::{AssignmentStatus, Command, CommandError, LicenseErrorKind, RuleProcessingState, Uuid};
use licensd_import::{build_tenant, ImportOptions, NoProgress, ProgressStep, Reason, Subject};

use crate::support::{
    contoso_user, copy_directory, fixture, import, options, read, RecordedProgress, ANALYTICS,
    CONTOSO_TENANT, EMS_E3, IMPORT_TIME, MARKETING, MOBILITY, OFFICE_365_E1, OFFICE_365_E3, SALES,
    WORKPLACE_ANALYTICS,
};

/// The state of one assignment of a user, as (state, error).
fn state_of(
    engine: &licensd_engine::Engine,
    user: Uuid,
    sku: Uuid,
    group: Option<Uuid>,
) -> Option<(AssignmentStatus, Option<LicenseErrorKind>)> {
    engine
        .user_license_states(user)
        .ok()?
        .into_iter()
        .find(|state| state.sku_id == sku && state.assigned_by_group == group)
        .map(|state| (state.state, state.error))
}

#[test]
fn the_contoso_export_loads_what_it_should() -> anyhow::Result<()> {
    let (_, import) = import(&fixture("contoso"))?;
    let report = &import.report;
    assert_eq!(report.tenant_id, CONTOSO_TENANT);
    assert_eq!(report.tenant_display_name, "Contoso");
    assert_eq!(report.default_usage_location.as_deref(), Some("US"));
    let loaded = &report.loaded;
    assert_eq!(loaded.products, 4);
    assert_eq!(loaded.mailbox_plans, 2, "Exchange Online Plan 1 and 2");
    assert_eq!(
        loaded.plans_with_rules, 5,
        "Exchange 1/2, SharePoint 1/2, Workplace Analytics"
    );
    assert_eq!(loaded.users, 15, "16 users, one without userPrincipalName");
    assert_eq!(
        loaded.users_without_usage_location, 3,
        "carol (absent), mallory (null), victor (invalid)"
    );
    assert_eq!(loaded.users_with_recorded_states, 14);
    assert_eq!(loaded.groups, 6);
    assert_eq!(loaded.licensed_groups, 4, "the add-on-only group is refused");
    assert_eq!(loaded.group_licenses, 5);
    assert_eq!(loaded.memberships, 15);
    assert_eq!(loaded.direct_licenses, 2, "erin's E3 and trent's inferred E1");
    assert_eq!(loaded.direct_licenses_inferred, 1);
    assert_eq!(import.engine.user_count(), 15);
    assert_eq!(import.engine.queued_users(), 0, "evaluated");
    assert_eq!(
        report.evaluation.evaluated_users, 16,
        "13 users, 3 of them in both evaluations"
    );
    assert_eq!(loaded.former_memberships, 0);
    Ok(())
}

#[test]
fn skipped_records_say_why() -> anyhow::Result<()> {
    let (_, import) = import(&fixture("contoso"))?;
    let skipped: Vec<&str> = import
        .report
        .skipped
        .iter()
        .map(|entry| entry.message.as_str())
        .collect();
    let expected_fragments = [
        "user a11ce000-0000-4000-8000-000000000008 (",
        "users.2.json record 2): no userPrincipalName",
        "member 3a2e7000-0000-4000-8000-000000000002 of group \"Sales\"",
        "a group, not a user: group licensing reaches only the group's direct user members",
        "member 0bad0000-0000-4000-8000-000000000099 of group \"Marketing\"",
        "not one of the export's users",
        "member a11ce000-0000-4000-8000-000000000008 of group \"Mobility\"",
        "the user was skipped",
        "a device, not a user",
        "group 9de50000-0000-4000-8000-00000000dead: the group is not in groups.json or was skipped",
        "of group \"Analytics add-on only\" (a0a1e000-0000-4000-8000-000000000004): refused: License operation failed. \
         Make sure that the group has necessary services before adding or removing a dependent service. The service \
         Microsoft Workplace Analytics requires Exchange Online (Plan 2) or Exchange Online (Plan 1) to be enabled as well.",
        "direct license c42b9cae-ea4f-4ab7-9717-81576235ccac of user judy@contoso.com: the product is not in subscribedSkus",
        "direct license 18181a46-0d4e-45cd-891e-60aabd171b4e of user mallory@contoso.com: refused: License assignment \
         cannot be done for user with invalid usage location.",
        // A dynamic device group: its rule is reported, the group keeps its exported members.
        "membershipRule \"(device.deviceOSType -eq \\\"Windows\\\")\" of group \"All devices\"",
        "device rules are not supported): the group keeps its exported members, as a group with assigned members",
    ];
    for fragment in expected_fragments {
        assert!(
            skipped.iter().any(|message| message.contains(fragment)),
            "no skipped entry contains {fragment:?}:\n{skipped:#?}"
        );
    }
    assert_eq!(skipped.len(), 10, "{skipped:#?}");
    let refused_group = import.report.skipped.iter().find(|entry| {
        matches!(entry.subject, Subject::GroupLicense { sku_id, .. } if sku_id == WORKPLACE_ANALYTICS)
    });
    assert!(matches!(
        refused_group.map(|entry| &entry.reason),
        Some(Reason::Refused {
            error: Some("DependencyViolation"),
            ..
        })
    ));
    Ok(())
}

#[test]
fn lenient_readings_are_reported_as_adjustments() -> anyhow::Result<()> {
    let (_, import) = import(&fixture("contoso"))?;
    let adjusted: Vec<&Reason> = import.report.adjusted.iter().map(|entry| &entry.reason).collect();
    assert_eq!(
        adjusted,
        [
            &Reason::ProxyPrefixNormalized {
                to: "smtp:grace@contoso.com".to_string()
            },
            &Reason::InvalidProxyAddress {
                message: "invalid proxy address \"x500:/o=ExchangeLabs/ou=Exchange Administrative Group \
                          (FYDIBOHF23SPDLT)/cn=Recipients/cn=grace\": the address after the prefix must be \
                          non-empty and without spaces"
                    .to_string()
            },
            &Reason::UsageLocationNormalized { to: "US".to_string() },
            &Reason::DuplicateProxyAddress,
            &Reason::InvalidUsageLocation {
                message:
                    "invalid usage location \"ZZ\": expected an ISO 3166-1 alpha-2 country code such as US"
                        .to_string()
            },
        ]
    );
    let grace = import.engine.user_view(contoso_user(7))?;
    let addresses: Vec<&str> = grace
        .proxy_addresses
        .iter()
        .map(|address| address.as_str())
        .collect();
    assert_eq!(addresses, ["smtp:grace@contoso.com"]);
    let judy = import.engine.user_view(contoso_user(9))?;
    assert_eq!(
        judy.usage_location.map(|code| code.to_string()).as_deref(),
        Some("US")
    );
    let victor = import.engine.user_view(contoso_user(14))?;
    assert_eq!(victor.usage_location, None);
    Ok(())
}

#[test]
fn licensd_evaluates_the_imported_tenant() -> anyhow::Result<()> {
    let (_, import) = import(&fixture("contoso"))?;
    let engine = &import.engine;
    let active = Some((AssignmentStatus::Active, None));
    let error = |kind| Some((AssignmentStatus::Error, Some(kind)));
    assert_eq!(
        state_of(engine, contoso_user(1), OFFICE_365_E3, Some(SALES)),
        active
    );
    assert_eq!(state_of(engine, contoso_user(1), EMS_E3, Some(MOBILITY)), active);
    assert_eq!(
        state_of(engine, contoso_user(3), OFFICE_365_E3, Some(SALES)),
        active,
        "carol has no usage location: the tenant's US applies"
    );
    assert_eq!(
        state_of(engine, contoso_user(5), OFFICE_365_E3, None),
        active,
        "erin's direct E3"
    );
    assert_eq!(
        state_of(engine, contoso_user(6), OFFICE_365_E1, Some(MARKETING)),
        error(LicenseErrorKind::MutuallyExclusiveViolation)
    );
    assert_eq!(
        state_of(engine, contoso_user(12), WORKPLACE_ANALYTICS, Some(ANALYTICS)),
        active
    );
    assert_eq!(
        state_of(engine, contoso_user(13), OFFICE_365_E1, None),
        active,
        "trent's inferred direct E1"
    );
    assert_eq!(state_of(engine, contoso_user(14), EMS_E3, Some(MOBILITY)), active);
    assert_eq!(
        state_of(engine, contoso_user(16), OFFICE_365_E1, Some(MARKETING)),
        error(LicenseErrorKind::UniquenessViolation),
        "wendy shares sales@contoso.com with walter, and E1 holds a mailbox"
    );
    let marketing = engine.group_view(MARKETING)?;
    assert_eq!(
        marketing.assigned_licenses[0].disabled_plans.len(),
        1,
        "Yammer stays disabled"
    );
    assert_eq!(engine.sku_usage(OFFICE_365_E3)?.consumed_units, 5);
    Ok(())
}

#[test]
fn assignments_microsoft_recorded_in_effect_keep_their_seats() -> anyhow::Result<()> {
    // Sales lists dave before frank, and E3 has 5 seats for 6 candidates. Microsoft recorded frank
    // Active and dave in CountViolation; licensd evaluates recorded winners first, so it agrees.
    let (_, import) = import(&fixture("contoso"))?;
    let engine = &import.engine;
    assert_eq!(
        state_of(engine, contoso_user(6), OFFICE_365_E3, Some(SALES)),
        Some((AssignmentStatus::Active, None))
    );
    assert_eq!(
        state_of(engine, contoso_user(4), OFFICE_365_E3, Some(SALES)),
        Some((AssignmentStatus::Error, Some(LicenseErrorKind::CountViolation)))
    );
    Ok(())
}

#[test]
fn a_refused_export_builds_nothing() {
    // Reading fails before any engine exists: there is nothing to write.
    for name in ["broken-json", "invalid-guid", "missing-users"] {
        assert!(read(&fixture(name)).is_err(), "{name}");
    }
}

#[test]
fn the_same_export_gives_the_same_tenant() -> anyhow::Result<()> {
    let (_, first) = import(&fixture("contoso"))?;
    let (_, second) = import(&fixture("contoso"))?;
    assert_eq!(first.engine.license_snapshot(), second.engine.license_snapshot());
    assert_eq!(first.report, second.report);
    Ok(())
}

#[test]
fn the_tenant_id_comes_from_the_options_the_organization_or_the_subscriptions() -> anyhow::Result<()> {
    let export = read(&fixture("powershell"))?;
    let from_account = build_tenant(&export, &options(), &mut NoProgress)?;
    assert_eq!(
        from_account.report.tenant_id,
        Uuid::from_u128(0xfe11fe11_0000_4000_8000_000000000001)
    );
    assert_eq!(from_account.report.tenant_display_name, "Fabrikam");
    let chosen = Uuid::from_u128(42);
    let given = ImportOptions {
        tenant_id: Some(chosen),
        tenant_display_name: Some("Fabrikam (snapshot)".to_string()),
        ..options()
    };
    let from_options = build_tenant(&export, &given, &mut NoProgress)?;
    assert_eq!(from_options.engine.settings().tenant_id, chosen);
    assert_eq!(from_options.engine.settings().display_name, "Fabrikam (snapshot)");
    Ok(())
}

#[test]
fn a_company_product_cannot_be_assigned_to_a_user() -> anyhow::Result<()> {
    let (_, import) = import(&fixture("powershell"))?;
    let messages: Vec<&str> = import
        .report
        .skipped
        .iter()
        .map(|entry| entry.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "direct license c0de0000-0000-4000-8000-00000000c0de of user sam@fabrikam.com: refused: License \
          COMPANY_STORAGE_ADDON cannot be assigned to a user."
        ]
    );
    assert_eq!(import.report.default_usage_location, None);
    Ok(())
}

#[test]
fn building_reports_commands_and_evaluated_users() -> anyhow::Result<()> {
    let export = read(&fixture("contoso"))?;
    let mut progress = RecordedProgress::default();
    build_tenant(&export, &options(), &mut progress)?;
    let steps: Vec<&ProgressStep> = progress.steps.iter().map(|(step, _, _)| step).collect();
    assert_eq!(
        steps,
        [
            &ProgressStep::Loading,
            &ProgressStep::Evaluating,
            &ProgressStep::Evaluating
        ]
    );
    let (_, total, done) = &progress.steps[0];
    assert_eq!(total, done);
    let evaluated: u64 = progress.steps[1..].iter().map(|(_, _, done)| done).sum();
    assert_eq!(evaluated, 16);
    Ok(())
}

#[test]
fn a_missing_member_list_is_taken_from_the_recorded_states() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    copy_directory(&fixture("contoso"), directory.path())?;
    std::fs::remove_dir_all(directory.path().join("groups"))?;
    let (export, import) = import(directory.path())?;
    assert_eq!(
        import.report.loaded.memberships_inferred, 5,
        "alice, bob, carol, dave and frank"
    );
    assert!(
        import.report.notes.iter().any(|note| note.contains(
            "group \"Sales\" (5a1e5000-0000-4000-8000-000000000001) has no member list in the export: its 5 \
             members were taken from the users' licenseAssignmentStates"
        )),
        "{:?}",
        import.report.notes
    );
    let (_, listed) = crate::support::import(&fixture("contoso"))?;
    assert_eq!(import.engine.license_snapshot(), listed.engine.license_snapshot());
    assert_eq!(
        licensd_import::compare(&export, &import.engine).summary.differing,
        3
    );
    Ok(())
}

/// Directory attributes of an export (selected properties and `onPremisesExtensionAttributes`)
/// are loaded; a value over Graph's limit is left out rather than losing the user.
#[test]
fn directory_attributes_are_imported() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    copy_directory(&fixture("contoso"), directory.path())?;
    let path = directory.path().join("users.json");
    let mut users: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let alice = &mut users["value"][0];
    alice["department"] = serde_json::json!("Sales");
    alice["companyName"] = serde_json::json!("Contoso Ltd");
    alice["employeeId"] = serde_json::json!("12345678901234567");
    alice["onPremisesExtensionAttributes"] =
        serde_json::json!({"extensionAttribute1": "cost-center-7", "extensionAttribute2": null});
    std::fs::write(&path, serde_json::to_string(&users)?)?;
    let (_, import) = import(directory.path())?;
    let alice = contoso_user(1);
    let view = import.engine.user_view(alice)?;
    let attribute =
        |attribute: licensd_engine::UserAttribute| view.attributes.get(&attribute).map(String::as_str);
    assert_eq!(
        attribute(licensd_engine::UserAttribute::DEPARTMENT),
        Some("Sales")
    );
    assert_eq!(
        attribute(licensd_engine::UserAttribute::COMPANY_NAME),
        Some("Contoso Ltd")
    );
    assert_eq!(
        attribute(licensd_engine::UserAttribute::EMPLOYEE_ID),
        None,
        "over 16 characters"
    );
    assert_eq!(
        attribute(licensd_engine::UserAttribute::extension(1).expect("1")),
        Some("cost-center-7")
    );
    assert_eq!(
        attribute(licensd_engine::UserAttribute::extension(2).expect("2")),
        None
    );
    Ok(())
}

/// Dynamic membership groups of an export (`groupTypes: ["DynamicMembership"]`,
/// `membershipRule`, `membershipRuleProcessingState`) are imported with their rule: a rule that
/// is on is applied to the export's users (members follow the attributes, licenses follow the
/// members), a paused one keeps the exported members, and a rule licensd cannot apply leaves the
/// group with its exported members, reported.
#[test]
fn dynamic_groups_are_imported_with_their_rules() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    copy_directory(&fixture("contoso"), directory.path())?;
    let users_path = directory.path().join("users.json");
    let mut users: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&users_path)?)?;
    users["value"][0]["department"] = serde_json::json!("Sales"); // alice, a member
    users["value"][3]["department"] = serde_json::json!("Finance"); // dave, a member
    users["value"][4]["department"] = serde_json::json!("sales"); // erin, not a member
    std::fs::write(&users_path, serde_json::to_string(&users)?)?;
    let groups_path = directory.path().join("groups.json");
    let mut groups: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&groups_path)?)?;
    let dynamic = |group: &mut serde_json::Value, rule: &str, state: Option<&str>| {
        group["groupTypes"] = serde_json::json!(["DynamicMembership"]);
        group["membershipRule"] = serde_json::json!(rule);
        if let Some(state) = state {
            group["membershipRuleProcessingState"] = serde_json::json!(state);
        }
    };
    dynamic(&mut groups["value"][0], r#"user.department -eq "Sales""#, None);
    dynamic(
        &mut groups["value"][1],
        r#"user.department -eq "Marketing""#,
        Some("Paused"),
    );
    dynamic(
        &mut groups["value"][2],
        r#"device.deviceOSType -eq "iPad""#,
        Some("On"),
    );
    std::fs::write(&groups_path, serde_json::to_string(&groups)?)?;

    let (_, plain) = import(&fixture("contoso"))?;
    let (_, import) = import(directory.path())?;
    let engine = &import.engine;
    let sorted = |mut ids: Vec<Uuid>| {
        ids.sort();
        ids
    };

    // Sales: the rule is on, so its members are the users in Sales (any case), whatever the
    // export listed, and the group's licenses follow.
    let sales = engine.dynamic_membership(SALES)?.expect("Sales is dynamic");
    assert_eq!(sales.rule.text(), r#"user.department -eq "Sales""#);
    assert_eq!(sales.processing_state, RuleProcessingState::On);
    assert_eq!(
        sorted(engine.group_members(SALES)?),
        sorted(vec![contoso_user(1), contoso_user(5)])
    );
    assert!(state_of(engine, contoso_user(5), OFFICE_365_E3, Some(SALES)).is_some());
    assert_eq!(
        state_of(engine, contoso_user(4), OFFICE_365_E3, Some(SALES)),
        None
    );
    let refused = engine.clone().apply(
        Command::AddGroupMember {
            group_id: SALES,
            user_id: contoso_user(2),
        },
        IMPORT_TIME,
    );
    assert!(
        matches!(refused, Err(CommandError::DynamicMembershipGroup { .. })),
        "{refused:?}"
    );
    // Marketing: paused, the exported members stay.
    let marketing = engine
        .dynamic_membership(MARKETING)?
        .expect("Marketing is dynamic");
    assert_eq!(marketing.processing_state, RuleProcessingState::Paused);
    assert_eq!(
        sorted(engine.group_members(MARKETING)?),
        sorted(plain.engine.group_members(MARKETING)?)
    );
    // Analytics: a device rule, which licensd does not apply: a group with assigned members.
    assert!(engine.dynamic_membership(ANALYTICS)?.is_none());
    assert_eq!(
        engine.group_members(ANALYTICS)?,
        plain.engine.group_members(ANALYTICS)?
    );

    let report = &import.report;
    assert_eq!(report.loaded.dynamic_groups, 2);
    assert_eq!(plain.report.loaded.dynamic_groups, 0);
    let moved = report
        .adjusted
        .iter()
        .find(|entry| matches!(entry.subject, Subject::MembershipRule { group_id, .. } if group_id == SALES))
        .expect("Sales' rule moved members");
    // Bob, carol, dave and frank leave; erin joins.
    assert_eq!(moved.reason, Reason::RuleMovedMembers { joined: 1, left: 4 });
    let refused = report
        .skipped
        .iter()
        .find(|entry| matches!(entry.subject, Subject::MembershipRule { group_id, .. } if group_id == ANALYTICS))
        .expect("the device rule is reported");
    assert!(
        refused.message.contains("not imported") && refused.message.contains("device"),
        "{}",
        refused.message
    );
    Ok(())
}

/// The users' last sign-in (`signInActivity.lastSignInDateTime`) and leave date
/// (`employeeLeaveDateTime`) come with the import, for the store; a date that cannot be read is
/// reported and left out, a user without either has no activity.
#[test]
fn sign_in_activity_and_leave_dates_are_imported() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    copy_directory(&fixture("contoso"), directory.path())?;
    let path = directory.path().join("users.json");
    let mut users: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    users["value"][0]["signInActivity"] = serde_json::json!({"lastSignInDateTime": "2026-08-01T10:00:00Z", "lastNonInteractiveSignInDateTime": null});
    users["value"][1]["employeeLeaveDateTime"] = serde_json::json!("2026-10-31T00:00:00Z");
    users["value"][1]["signInActivity"] = serde_json::json!({"lastSignInDateTime": "2026-05-02T08:15:00Z"});
    users["value"][2]["signInActivity"] = serde_json::Value::Null;
    users["value"][3]["employeeLeaveDateTime"] = serde_json::json!("soon");
    std::fs::write(&path, serde_json::to_string(&users)?)?;
    let (_, import) = import(directory.path())?;
    let first = Uuid::parse_str(users["value"][0]["id"].as_str().expect("id"))?;
    let second = Uuid::parse_str(users["value"][1]["id"].as_str().expect("id"))?;
    let fourth = Uuid::parse_str(users["value"][3]["id"].as_str().expect("id"))?;
    let at = |text: &str| licensd_api_types::time::parse_date_time(text).map(licensd_engine::Timestamp);
    assert_eq!(
        import.activity,
        vec![
            (
                first,
                licensd_engine::spend::UserActivity {
                    last_sign_in: at("2026-08-01T10:00:00Z"),
                    leave_date: None,
                }
            ),
            (
                second,
                licensd_engine::spend::UserActivity {
                    last_sign_in: at("2026-05-02T08:15:00Z"),
                    leave_date: at("2026-10-31T00:00:00Z"),
                }
            ),
        ]
    );
    assert_eq!(import.report.loaded.users_with_activity, 2);
    let refused: Vec<&licensd_import::ReportEntry> = import
        .report
        .adjusted
        .iter()
        .filter(|entry| matches!(entry.reason, Reason::InvalidActivityDate { .. }))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(
        matches!(&refused[0].subject, Subject::User { user_id, .. } if *user_id == fourth),
        "{refused:#?}"
    );
    assert!(
        refused[0]
            .message
            .contains("employeeLeaveDateTime \"soon\" is not a date-time"),
        "{refused:#?}"
    );
    // The unchanged fixture has no activity.
    let (_, plain) = import_fixture()?;
    assert!(plain.activity.is_empty());
    Ok(())
}

fn import_fixture() -> anyhow::Result<(licensd_import::GraphExport, licensd_import::Import)> {
    import(&fixture("contoso"))
}
