//! Turning a Graph export into a new licensd tenant, entirely in memory: products, the catalog's
//! default plan rules, users, groups with their licenses, direct licenses and memberships, each
//! as an ordinary engine command (so each is validated like any other change), then licensd's
//! own evaluation.
//!
//! Order matters where seats are scarce or plans conflict, and Microsoft's history is not in the
//! export; its recorded states are. So assignments Microsoft recorded as in effect are loaded and
//! evaluated first, and the others after them: a license that is active is never taken away to
//! serve another user, so licensd reaches the same winners wherever the rules allow.
//!
//! 1. direct licenses in effect (or of unknown state);
//! 2. memberships whose group licenses Microsoft recorded in effect for that user — evaluate;
//! 3. the other direct licenses, and those of step 1 that were refused (a prerequisite that a
//!    group gives comes first);
//! 4. the other memberships — evaluate;
//! 5. former memberships: a state from a group the user is no longer a member of is a removal
//!    Microsoft could not apply (a dependent plan needs it). The membership is added in step 2
//!    and removed here, so licensd records the same blocked removal — evaluate.
//!
//! 6. dynamic membership groups' rules (`groupTypes: ["DynamicMembership"]`), set with their
//!    processing state once the groups hold the members Microsoft computed: a rule that is on is
//!    applied to every user (members it does not select leave, users it selects join, and the
//!    report says how many when any), a paused one keeps the exported members — evaluate.
//!
//! A licensed group whose member list is missing from the export gets its members from the
//! users' states (every member of a licensed group has a state from it).

use std::collections::{HashMap, HashSet};

use licensd_engine::catalog::{well_known, Catalog};
use licensd_engine::setup::default_rule_commands;
use licensd_engine::{
    AppliesTo, AssignedLicense, CapabilityStatus, Command, CommandError, CountryCode, Engine, NewUser,
    ProxyAddress, RuleProcessingState, ServicePlanDefinition, SkuDefinition, TenantSettings, Timestamp, Uuid,
};

use crate::error::ImportError;
use crate::graph::{GraphLicenseAssignmentState, GraphSubscribedSku, GraphUser, Guid};
use crate::progress::{Progress, ProgressStep};
use crate::read::{GraphExport, Origin, ReadNote};
use crate::report::{ImportReport, Reason, Subject};

/// Names of the service plans that hold a mailbox: they need unique proxy addresses
/// (`UniquenessViolation`). Exchange Online Plan 1 and 2 as in the seed, and the other Exchange
/// mailbox plans of Microsoft's catalog (Kiosk, Essentials, POP, the government editions).
const MAILBOX_PLAN_NAMES: [&str; 10] = [
    "EXCHANGE_S_STANDARD",
    "EXCHANGE_S_ENTERPRISE",
    "EXCHANGE_S_DESKLESS",
    "EXCHANGE_S_ESSENTIALS",
    "EXCHANGE_L_STANDARD",
    "EXCHANGE_B_STANDARD",
    "EXCHANGE_S_STANDARD_MIDMARKET",
    "EXCHANGE_S_STANDARD_GOV",
    "EXCHANGE_S_ENTERPRISE_GOV",
    "EXCHANGE_S_DESKLESS_GOV",
];

/// The service plan names an import flags as mailbox plans.
pub fn mailbox_plan_names() -> &'static [&'static str] {
    &MAILBOX_PLAN_NAMES
}

/// Users evaluated between two progress reports.
const EVALUATION_BATCH: usize = 2_000;

/// How to build the tenant.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The new tenant's id. By default the export's organization id, else the subscriptions'
    /// `accountId`, else an id derived from the export's content.
    pub tenant_id: Option<Uuid>,
    /// The new tenant's name. By default the organization's `displayName`, else `accountName`.
    pub tenant_display_name: Option<String>,
    /// The time of the import (the engine has no clock): every command and evaluation uses it.
    pub at: Timestamp,
}

/// A finished import: the evaluated tenant, ready to be written in one go, and its report.
#[derive(Clone, Debug)]
pub struct Import {
    pub engine: Engine,
    pub report: ImportReport,
    /// The users' last sign-in and leave date from the export (the store keeps them beside the
    /// tenant, as the admin API's activity routes do), in the export's order.
    pub activity: Vec<(Uuid, licensd_engine::spend::UserActivity)>,
}

/// A license to assign directly, and whether Microsoft recorded it in effect.
#[derive(Clone, Debug)]
struct DirectLicense {
    license: AssignedLicense,
    recorded_in_effect: bool,
}

/// Where the import learned of a membership.
#[derive(Clone, Debug)]
enum MembershipSource {
    /// A group's member list.
    Listed(Origin),
    /// A state from a licensed group whose member list is not in the export.
    Inferred,
    /// A state from a group whose member list no longer names the user: a blocked removal.
    Former,
}

/// A dynamic group's rule to set once the memberships are loaded.
struct DynamicRule {
    group_id: Uuid,
    group_name: String,
    rule: String,
    processing_state: RuleProcessingState,
}

/// A membership to add, and whether Microsoft recorded the group's licenses in effect for the user.
#[derive(Clone, Debug)]
struct PendingMembership {
    group_id: Uuid,
    user_id: Uuid,
    source: MembershipSource,
    recorded_in_effect: bool,
}

impl PendingMembership {
    fn origin(&self) -> Option<Origin> {
        match &self.source {
            MembershipSource::Listed(origin) => Some(origin.clone()),
            MembershipSource::Inferred | MembershipSource::Former => None,
        }
    }
}

/// A direct license the engine refused, kept for a later attempt or the report.
type RefusedLicense = (Uuid, AssignedLicense, CommandError);

struct Builder<'export> {
    export: &'export GraphExport,
    catalog: &'static Catalog,
    engine: Engine,
    report: ImportReport,
    at: Timestamp,
    /// Products in the tenant, with their plans.
    product_plans: HashMap<Uuid, HashSet<Uuid>>,
    product_names: HashMap<Uuid, String>,
    /// Products listed in `subscribedSkus` that were refused.
    skipped_products: HashSet<Uuid>,
    /// Users in the tenant, by id: their index in `export.users` and their UPN.
    users: HashMap<Uuid, (usize, String)>,
    skipped_users: HashSet<Uuid>,
    /// Groups in the tenant, by id: their name.
    groups: HashMap<Uuid, String>,
    /// Each user's groups (in the export's member lists), for inferring direct licenses.
    groups_of_user: HashMap<Uuid, Vec<Uuid>>,
    /// Dynamic groups' rules, set in step 6.
    dynamic_rules: Vec<DynamicRule>,
    /// The loaded users' activity.
    activity: Vec<(Uuid, licensd_engine::spend::UserActivity)>,
}

/// Builds the tenant an export describes and evaluates it. Fails only when the tenant itself
/// cannot be set up; a record that cannot be loaded is skipped and reported.
pub fn build_tenant(
    export: &GraphExport,
    options: &ImportOptions,
    progress: &mut dyn Progress,
) -> Result<Import, ImportError> {
    let catalog = Catalog::bundled()?;
    let settings = tenant_settings(export, options);
    let mut report = ImportReport {
        tenant_id: settings.tenant_id,
        tenant_display_name: settings.display_name.clone(),
        default_usage_location: settings.default_usage_location.map(|code| code.to_string()),
        files: export.files.clone(),
        notes: export.notes.iter().map(ReadNote::to_string).collect(),
        ..ImportReport::default()
    };
    if let Some(organization) = &export.organization {
        let country = organization.value.country_letter_code.as_deref().map(str::trim);
        if let Some(country) = country.filter(|country| !country.is_empty()) {
            if settings.default_usage_location.is_none() {
                report.notes.push(format!(
                    "the organization's countryLetterCode {country:?} is not an ISO 3166-1 alpha-2 code: the \
                     tenant has no default usage location"
                ));
            }
        }
    }
    let mut builder = Builder {
        export,
        catalog,
        engine: Engine::new(settings),
        report,
        at: options.at,
        product_plans: HashMap::new(),
        product_names: HashMap::new(),
        skipped_products: HashSet::new(),
        users: HashMap::new(),
        skipped_users: HashSet::new(),
        groups: HashMap::new(),
        groups_of_user: HashMap::new(),
        dynamic_rules: Vec::new(),
        activity: Vec::new(),
    };
    let member_count: usize = export.group_members.iter().map(|group| group.members.len()).sum();
    let total_steps =
        export.subscribed_skus.len() + 2 * export.users.len() + 2 * export.groups.len() + member_count;
    progress.start(&ProgressStep::Loading, total_steps as u64);
    builder.load_products(progress)?;
    builder.load_rules()?;
    builder.load_users(progress);
    builder.load_groups(progress);
    let memberships = builder.collect_memberships(progress);
    builder.load_group_licenses(progress);
    let direct_licenses = builder.collect_direct_licenses(progress);
    progress.finish();

    let (inferred_memberships, former_memberships) = builder.collect_memberships_from_states(&memberships);
    let mut memberships = memberships;
    memberships.extend(inferred_memberships);

    // 1-2: what Microsoft recorded in effect, then evaluate.
    let in_effect = |wanted: bool| {
        direct_licenses
            .iter()
            .map(|(user_id, licenses)| {
                let chosen = licenses
                    .iter()
                    .filter(|direct| direct.recorded_in_effect == wanted)
                    .map(|direct| direct.license.clone())
                    .collect::<Vec<_>>();
                (*user_id, chosen)
            })
            .filter(|(_, licenses)| !licenses.is_empty())
            .collect::<Vec<_>>()
    };
    let refused_first = builder.apply_direct_licenses(in_effect(true));
    builder.apply_memberships(&memberships, true);
    builder.apply_memberships(&former_memberships, true);
    builder.evaluate(progress);
    // 3-4: the rest (and the direct licenses refused before their group prerequisite), evaluate.
    let mut retry: Vec<(Uuid, Vec<AssignedLicense>)> = Vec::new();
    let mut retry_index: HashMap<Uuid, usize> = HashMap::new();
    let refused_again = refused_first
        .into_iter()
        .map(|(user_id, license, _)| (user_id, vec![license]));
    for (user_id, licenses) in refused_again.chain(in_effect(false)) {
        match retry_index.get(&user_id).and_then(|index| retry.get_mut(*index)) {
            Some((_, existing)) => existing.extend(licenses),
            None => {
                retry_index.insert(user_id, retry.len());
                retry.push((user_id, licenses));
            }
        }
    }
    for (user_id, license, error) in builder.apply_direct_licenses(retry) {
        let user_principal_name = builder
            .users
            .get(&user_id)
            .map(|(_, name)| name.clone())
            .unwrap_or_default();
        builder.report.skip(
            Subject::DirectLicense {
                user_id,
                user_principal_name,
                sku_id: license.sku_id,
            },
            Reason::refused(&error),
        );
    }
    builder.apply_memberships(&memberships, false);
    builder.evaluate(progress);
    // 5: the removals Microsoft could not apply.
    builder.remove_former_memberships(&former_memberships);
    builder.evaluate(progress);
    // 6: dynamic groups' rules, over the members Microsoft computed.
    builder.apply_membership_rules();
    builder.evaluate(progress);

    let overview = builder.engine.tenant_overview();
    builder.report.evaluation.users_with_errors = overview.users_with_errors;
    builder.report.evaluation.groups_with_errors = overview.groups_with_errors;
    builder.report.evaluation.add_errors(&overview.errors_by_kind);
    builder.report.loaded.groups = builder.groups.len();
    builder.report.loaded.users = builder.users.len();
    builder.report.loaded.users_with_activity = builder.activity.len();
    Ok(Import {
        engine: builder.engine,
        report: builder.report,
        activity: builder.activity,
    })
}

/// The new tenant's id, name and default usage location.
fn tenant_settings(export: &GraphExport, options: &ImportOptions) -> TenantSettings {
    let organization = export.organization.as_ref().map(|record| &record.value);
    let first_sku = export.subscribed_skus.first().map(|record| &record.value);
    let tenant_id = options
        .tenant_id
        .or(organization.map(|organization| organization.id.0))
        .or(first_sku.and_then(|sku| sku.account_id.map(|id| id.0)))
        .unwrap_or_else(|| derived_tenant_id(export));
    let display_name = options
        .tenant_display_name
        .clone()
        .or(organization.and_then(|organization| organization.display_name.clone()))
        .or(first_sku.and_then(|sku| sku.account_name.clone()))
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "Imported tenant".to_string());
    let mut settings = TenantSettings::new(tenant_id, &display_name);
    settings.default_usage_location = organization
        .and_then(|organization| organization.country_letter_code.as_deref())
        .and_then(|code| CountryCode::parse(&code.trim().to_ascii_uppercase()).ok());
    settings
}

/// A stable id for an export that names no tenant: a hash of its products and users, shaped as
/// a random (version 4) GUID. Importing the same export twice gives the same id, so the store
/// refuses the second import instead of holding two copies.
fn derived_tenant_id(export: &GraphExport) -> Uuid {
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    let ids = export
        .subscribed_skus
        .iter()
        .map(|record| record.value.sku_id.0)
        .chain(export.users.iter().map(|record| record.value.id.0));
    for id in ids {
        for byte in id.as_bytes() {
            hash ^= u128::from(*byte);
            hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
        }
    }
    let version_4 = (hash & !(0xF_u128 << 76)) | (0x4_u128 << 76);
    Uuid::from_u128((version_4 & !(0x3_u128 << 62)) | (0x2_u128 << 62))
}

fn capability_status(text: &str) -> Option<CapabilityStatus> {
    [
        CapabilityStatus::Enabled,
        CapabilityStatus::Warning,
        CapabilityStatus::Suspended,
        CapabilityStatus::LockedOut,
        CapabilityStatus::Deleted,
    ]
    .into_iter()
    .find(|status| status.as_str().eq_ignore_ascii_case(text.trim()))
}

impl Builder<'_> {
    // `CommandError` is the engine's, large on purpose (it names plans and products); it is only
    // built when a command is refused.
    #[allow(clippy::result_large_err)]
    fn apply(&mut self, command: Command) -> Result<(), CommandError> {
        self.engine.apply_without_images(command, self.at).map(|_| ())
    }

    fn product_label(&self, sku_id: Uuid) -> Subject {
        Subject::Product {
            sku_id,
            sku_part_number: self.product_names.get(&sku_id).cloned(),
        }
    }

    // ----- products and rules ----------------------------------------------------------------

    fn load_products(&mut self, progress: &mut dyn Progress) -> Result<(), ImportError> {
        let export = self.export;
        for record in &export.subscribed_skus {
            progress.advance(1);
            let sku = &record.value;
            let sku_id = sku.sku_id.0;
            if self.product_plans.contains_key(&sku_id) || self.skipped_products.contains(&sku_id) {
                let subject = self.product_label(sku_id);
                self.report.skip(subject, Reason::ListedTwice);
                continue;
            }
            let definition = self.sku_definition(sku);
            let plans: HashSet<Uuid> = definition
                .service_plans
                .iter()
                .map(|plan| plan.service_plan_id)
                .collect();
            let part_number = definition.sku_part_number.clone();
            match self.apply(Command::AddSku(definition)) {
                Ok(()) => {
                    self.product_names.insert(sku_id, part_number);
                    self.product_plans.insert(sku_id, plans);
                    self.report.loaded.products += 1;
                }
                Err(error) => {
                    self.skipped_products.insert(sku_id);
                    self.report.skip(
                        Subject::Product {
                            sku_id,
                            sku_part_number: Some(part_number),
                        },
                        Reason::refused(&error),
                    );
                }
            }
        }
        let all_plans: HashSet<Uuid> = self.product_plans.values().flatten().copied().collect();
        self.report.loaded.service_plans = all_plans.len();
        Ok(())
    }

    /// A product as the engine takes it: names from the export, else from the catalog.
    fn sku_definition(&mut self, sku: &GraphSubscribedSku) -> SkuDefinition {
        let sku_id = sku.sku_id.0;
        let catalog_product = self.catalog.product_by_sku_id(sku_id);
        let given_part_number = sku
            .sku_part_number
            .as_deref()
            .map(str::trim)
            .filter(|part_number| !part_number.is_empty());
        let sku_part_number = match given_part_number {
            Some(part_number) => part_number.to_string(),
            None => {
                let to = catalog_product
                    .map(|product| product.sku_part_number.clone())
                    .unwrap_or_else(|| sku_id.to_string());
                self.report.adjust(
                    Subject::Product {
                        sku_id,
                        sku_part_number: None,
                    },
                    Reason::MissingPartNumber { to: to.clone() },
                );
                to
            }
        };
        let subject = || Subject::Product {
            sku_id,
            sku_part_number: Some(sku_part_number.clone()),
        };
        let display_name = catalog_product
            .map(|product| product.display_name.clone())
            .unwrap_or_else(|| sku_part_number.clone());
        let applies_to = match sku.applies_to.as_deref().map(str::trim) {
            None | Some("") => AppliesTo::User,
            Some(text) if text.eq_ignore_ascii_case("User") => AppliesTo::User,
            Some(text) if text.eq_ignore_ascii_case("Company") => AppliesTo::Company,
            Some(text) => {
                self.report.adjust(
                    subject(),
                    Reason::UnknownAppliesTo {
                        value: text.to_string(),
                    },
                );
                AppliesTo::User
            }
        };
        let capability = match sku.capability_status.as_deref() {
            None => CapabilityStatus::Enabled,
            Some(text) => capability_status(text).unwrap_or_else(|| {
                self.report.adjust(
                    subject(),
                    Reason::UnknownCapabilityStatus {
                        value: text.to_string(),
                    },
                );
                CapabilityStatus::Enabled
            }),
        };
        let prepaid_units = match sku.prepaid_units.as_ref().and_then(|units| units.enabled) {
            None => {
                self.report.adjust(subject(), Reason::MissingPrepaidUnits);
                0
            }
            Some(value) => match u32::try_from(value) {
                Ok(units) => units,
                Err(_) => {
                    let to = if value < 0 { 0 } else { u32::MAX };
                    self.report
                        .adjust(subject(), Reason::PrepaidUnitsOutOfRange { value, to });
                    to
                }
            },
        };
        let mut seen = HashSet::new();
        let mut service_plans = Vec::new();
        for plan in sku.service_plans.iter().flatten() {
            let service_plan_id = plan.service_plan_id.0;
            if !seen.insert(service_plan_id) {
                self.report.adjust(
                    Subject::ServicePlan {
                        sku_id,
                        service_plan_id,
                    },
                    Reason::DuplicateServicePlan,
                );
                continue;
            }
            let catalog_plan = catalog_product
                .and_then(|product| {
                    product
                        .service_plans
                        .iter()
                        .find(|candidate| candidate.service_plan_id == service_plan_id)
                })
                .or_else(|| self.catalog.service_plan(service_plan_id));
            let service_plan_name = plan
                .service_plan_name
                .as_deref()
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .or(catalog_plan.map(|catalog_plan| catalog_plan.service_plan_name.clone()))
                .unwrap_or_else(|| service_plan_id.to_string());
            let display_name = catalog_plan
                .map(|catalog_plan| catalog_plan.display_name.clone())
                .unwrap_or_else(|| service_plan_name.clone());
            service_plans.push(ServicePlanDefinition {
                service_plan_id,
                service_plan_name,
                display_name,
            });
        }
        SkuDefinition {
            sku_id,
            sku_part_number,
            display_name,
            applies_to,
            service_plans,
            prepaid_units,
            capability_status: capability,
        }
    }

    /// The catalog's exclusions and prerequisites among the tenant's plans, and the mailbox flag.
    fn load_rules(&mut self) -> Result<(), ImportError> {
        let mut plans_with_rules = HashSet::new();
        for command in default_rule_commands(self.catalog, &self.engine) {
            if let Command::SetServicePlanRules { service_plan_id, .. } = &command {
                plans_with_rules.insert(*service_plan_id);
            }
            self.apply(command)
                .map_err(|error| ImportError::TenantSetup(Box::new(error)))?;
        }
        let mut mailbox_plans = Vec::new();
        for record in &self.export.subscribed_skus {
            for plan in record.value.service_plans.iter().flatten() {
                let service_plan_id = plan.service_plan_id.0;
                let by_name = |name: &str| {
                    MAILBOX_PLAN_NAMES
                        .iter()
                        .any(|mailbox| mailbox.eq_ignore_ascii_case(name.trim()))
                };
                let is_mailbox = service_plan_id == well_known::EXCHANGE_ONLINE_PLAN_1
                    || service_plan_id == well_known::EXCHANGE_ONLINE_PLAN_2
                    || plan.service_plan_name.as_deref().is_some_and(by_name)
                    || self
                        .catalog
                        .service_plan(service_plan_id)
                        .is_some_and(|catalog_plan| by_name(&catalog_plan.service_plan_name));
                if is_mailbox
                    && self.engine.knows_service_plan(service_plan_id)
                    && !mailbox_plans.contains(&service_plan_id)
                {
                    mailbox_plans.push(service_plan_id);
                }
            }
        }
        for service_plan_id in mailbox_plans {
            let mut rules = self
                .engine
                .service_plan_rules(service_plan_id)
                .map_err(|error| ImportError::TenantSetup(Box::new(error)))?;
            rules.needs_unique_proxy_address = true;
            self.apply(Command::SetServicePlanRules {
                service_plan_id,
                rules,
            })
            .map_err(|error| ImportError::TenantSetup(Box::new(error)))?;
            plans_with_rules.insert(service_plan_id);
            self.report.loaded.mailbox_plans += 1;
        }
        self.report.loaded.plans_with_rules = plans_with_rules.len();
        Ok(())
    }

    // ----- users and groups ------------------------------------------------------------------

    fn load_users(&mut self, progress: &mut dyn Progress) {
        let export = self.export;
        for (index, record) in export.users.iter().enumerate() {
            progress.advance(1);
            let user = &record.value;
            let user_id = user.id.0;
            let user_principal_name = user
                .user_principal_name
                .as_deref()
                .map(str::trim)
                .filter(|name| !name.is_empty());
            let subject = Subject::User {
                user_id,
                user_principal_name: user_principal_name.map(str::to_string),
                origin: record.origin.clone(),
            };
            if self.users.contains_key(&user_id) {
                self.report.skip(subject, Reason::ListedTwice);
                continue;
            }
            let Some(user_principal_name) = user_principal_name else {
                self.skipped_users.insert(user_id);
                self.report.skip(subject, Reason::MissingUserPrincipalName);
                continue;
            };
            let mut new_user = NewUser::new(user_id, user_principal_name);
            if let Some(display_name) = user
                .display_name
                .as_deref()
                .filter(|name| !name.trim().is_empty())
            {
                new_user.display_name = display_name.to_string();
            }
            new_user.account_enabled = user.account_enabled.unwrap_or(true);
            new_user.usage_location = self.usage_location(user, user_principal_name);
            new_user.proxy_addresses = self.proxy_addresses(user, user_principal_name);
            // Attributes licensd keeps, with values it accepts (others are left out rather than
            // losing the user).
            new_user.attributes = user
                .directory_attributes()
                .into_iter()
                .filter_map(|(name, value)| {
                    let attribute = licensd_engine::UserAttribute::from_name(name)?;
                    attribute.check_value(value).ok()?;
                    Some((attribute, value.to_string()))
                })
                .collect();
            let without_location = new_user.usage_location.is_none();
            match self.apply(Command::CreateUser(new_user)) {
                Ok(()) => {
                    self.users
                        .insert(user_id, (index, user_principal_name.to_string()));
                    if without_location {
                        self.report.loaded.users_without_usage_location += 1;
                    }
                    if user.license_assignment_states.is_some() {
                        self.report.loaded.users_with_recorded_states += 1;
                    }
                    let subject = Subject::User {
                        user_id,
                        user_principal_name: Some(user_principal_name.to_string()),
                        origin: record.origin.clone(),
                    };
                    if let Some(activity) = self.activity_of(user, subject) {
                        self.activity.push((user_id, activity));
                    }
                }
                Err(error) => {
                    self.skipped_users.insert(user_id);
                    self.report.skip(subject, Reason::refused(&error));
                }
            }
        }
    }

    /// The user's last sign-in and leave date, if the export gives either; a date that cannot be
    /// read is reported and left out.
    fn activity_of(
        &mut self,
        user: &GraphUser,
        subject: Subject,
    ) -> Option<licensd_engine::spend::UserActivity> {
        let mut date = |field: &str, text: Option<&str>| -> Option<Timestamp> {
            let text = text.map(str::trim).filter(|text| !text.is_empty())?;
            match licensd_api_types::time::parse_date_time(text) {
                Some(at) => Some(Timestamp(at)),
                None => {
                    self.report.adjust(
                        subject.clone(),
                        Reason::InvalidActivityDate {
                            field: field.to_string(),
                            value: text.to_string(),
                        },
                    );
                    None
                }
            }
        };
        let last_sign_in = date(
            "signInActivity.lastSignInDateTime",
            user.sign_in_activity
                .as_ref()
                .and_then(|activity| activity.last_sign_in_date_time.as_deref()),
        );
        let leave_date = date("employeeLeaveDateTime", user.employee_leave_date_time.as_deref());
        (last_sign_in.is_some() || leave_date.is_some()).then_some(licensd_engine::spend::UserActivity {
            last_sign_in,
            leave_date,
        })
    }

    fn usage_location(&mut self, user: &GraphUser, user_principal_name: &str) -> Option<CountryCode> {
        let given = user.usage_location.as_deref()?;
        let normalized = given.trim().to_ascii_uppercase();
        if normalized.is_empty() {
            return None;
        }
        let subject = || Subject::UsageLocation {
            user_id: user.id.0,
            user_principal_name: user_principal_name.to_string(),
            value: given.to_string(),
        };
        match CountryCode::parse(&normalized) {
            Ok(code) => {
                if normalized != given {
                    self.report
                        .adjust(subject(), Reason::UsageLocationNormalized { to: normalized });
                }
                Some(code)
            }
            Err(error) => {
                self.report.adjust(
                    subject(),
                    Reason::InvalidUsageLocation {
                        message: error.to_string(),
                    },
                );
                None
            }
        }
    }

    fn proxy_addresses(&mut self, user: &GraphUser, user_principal_name: &str) -> Vec<ProxyAddress> {
        let mut addresses: Vec<ProxyAddress> = Vec::new();
        for given in user.proxy_addresses.iter().flatten() {
            let subject = || Subject::ProxyAddress {
                user_id: user.id.0,
                user_principal_name: user_principal_name.to_string(),
                value: given.clone(),
            };
            let trimmed = given.trim();
            let text = match trimmed.split_once(':') {
                Some((prefix, address))
                    if prefix.eq_ignore_ascii_case("smtp") && prefix != "SMTP" && prefix != "smtp" =>
                {
                    let to = format!("smtp:{address}");
                    self.report
                        .adjust(subject(), Reason::ProxyPrefixNormalized { to: to.clone() });
                    to
                }
                _ => trimmed.to_string(),
            };
            match ProxyAddress::parse(&text) {
                Ok(address) => {
                    if addresses
                        .iter()
                        .any(|existing| existing.normalized() == address.normalized())
                    {
                        self.report.adjust(subject(), Reason::DuplicateProxyAddress);
                    } else {
                        addresses.push(address);
                    }
                }
                Err(error) => self.report.adjust(
                    subject(),
                    Reason::InvalidProxyAddress {
                        message: error.to_string(),
                    },
                ),
            }
        }
        addresses
    }

    fn load_groups(&mut self, progress: &mut dyn Progress) {
        let export = self.export;
        for record in &export.groups {
            progress.advance(1);
            let group = &record.value;
            let group_id = group.id.0;
            let display_name = group
                .display_name
                .clone()
                .filter(|name| !name.trim().is_empty())
                .unwrap_or_else(|| group_id.to_string());
            let subject = Subject::Group {
                group_id,
                display_name: Some(display_name.clone()),
            };
            if self.groups.contains_key(&group_id) {
                self.report.skip(subject, Reason::ListedTwice);
                continue;
            }
            match self.apply(Command::CreateGroup {
                group_id,
                display_name: display_name.clone(),
            }) {
                Ok(()) => {
                    self.groups.insert(group_id, display_name.clone());
                    if group.is_dynamic() {
                        self.collect_dynamic_rule(group, display_name);
                    }
                }
                Err(error) => self.report.skip(subject, Reason::refused(&error)),
            }
        }
    }

    /// Keeps a dynamic group's rule for step 6; a dynamic group without a rule stays a group
    /// with assigned members.
    fn collect_dynamic_rule(&mut self, group: &crate::graph::GraphGroup, group_name: String) {
        let group_id = group.id.0;
        let rule = group.membership_rule.clone().unwrap_or_default();
        let subject = Subject::MembershipRule {
            group_id,
            group_name: group_name.clone(),
            rule: rule.clone(),
        };
        if rule.trim().is_empty() {
            self.report.skip(
                subject,
                Reason::RuleNotImported {
                    message: "groupTypes says DynamicMembership but the export has no membershipRule"
                        .to_string(),
                },
            );
            return;
        }
        let processing_state = match group.membership_rule_processing_state.as_deref() {
            None => RuleProcessingState::On,
            Some(value) => RuleProcessingState::parse(value.trim()).unwrap_or_else(|| {
                self.report.adjust(
                    subject,
                    Reason::UnknownProcessingState {
                        value: value.to_string(),
                    },
                );
                RuleProcessingState::On
            }),
        };
        self.dynamic_rules.push(DynamicRule {
            group_id,
            group_name,
            rule,
            processing_state,
        });
    }

    /// Step 6: each dynamic group's rule, set with its processing state over the exported
    /// members; a rule licensd refuses leaves the group with its exported members.
    fn apply_membership_rules(&mut self) {
        for dynamic in std::mem::take(&mut self.dynamic_rules) {
            let subject = Subject::MembershipRule {
                group_id: dynamic.group_id,
                group_name: dynamic.group_name.clone(),
                rule: dynamic.rule.clone(),
            };
            let members = |engine: &Engine| -> HashSet<Uuid> {
                engine
                    .group_members(dynamic.group_id)
                    .unwrap_or_default()
                    .into_iter()
                    .collect()
            };
            let before = members(&self.engine);
            match self.apply(Command::SetMembershipRule {
                group_id: dynamic.group_id,
                rule: Some(dynamic.rule.clone()),
                processing_state: dynamic.processing_state,
            }) {
                Ok(()) => {
                    self.report.loaded.dynamic_groups += 1;
                    let after = members(&self.engine);
                    let joined = after.difference(&before).count();
                    let left = before.difference(&after).count();
                    if joined + left > 0 {
                        self.report
                            .adjust(subject, Reason::RuleMovedMembers { joined, left });
                    }
                }
                Err(error) => self.report.skip(
                    subject,
                    Reason::RuleNotImported {
                        message: error.to_string(),
                    },
                ),
            }
        }
    }

    /// The memberships to add, in the export's order, with everything that cannot be one skipped.
    fn collect_memberships(&mut self, progress: &mut dyn Progress) -> Vec<PendingMembership> {
        let export = self.export;
        let mut memberships = Vec::new();
        let mut seen: HashSet<(Uuid, Uuid)> = HashSet::new();
        for group in &export.group_members {
            progress.advance(group.members.len() as u64);
            let group_id = group.group_id;
            let Some(group_name) = self.groups.get(&group_id).cloned() else {
                self.report.skip(
                    Subject::Group {
                        group_id,
                        display_name: None,
                    },
                    Reason::GroupNotImported,
                );
                continue;
            };
            for member in &group.members {
                let member_id = member.value.id.0;
                let subject = || Subject::Membership {
                    group_id,
                    group_name: Some(group_name.clone()),
                    member_id,
                    origin: Some(member.origin.clone()),
                };
                let kind = member.value.kind();
                if let Some(kind) = kind.filter(|kind| !kind.eq_ignore_ascii_case("user")) {
                    self.report.skip(
                        subject(),
                        Reason::NotAUser {
                            kind: kind.to_string(),
                        },
                    );
                    continue;
                }
                let Some((user_index, _)) = self.users.get(&member_id).cloned() else {
                    let reason = if self.skipped_users.contains(&member_id) {
                        Reason::UserNotImported
                    } else if self.groups.contains_key(&member_id) {
                        Reason::NotAUser {
                            kind: "group".to_string(),
                        }
                    } else {
                        Reason::UnknownMember
                    };
                    self.report.skip(subject(), reason);
                    continue;
                };
                if !seen.insert((group_id, member_id)) {
                    self.report.skip(subject(), Reason::ListedTwice);
                    continue;
                }
                let recorded_in_effect = export
                    .users
                    .get(user_index)
                    .and_then(|record| record.value.license_assignment_states.as_ref())
                    .is_some_and(|states| {
                        let mut of_group = states
                            .iter()
                            .filter(|state| state.assigned_by_group.map(|id| id.0) == Some(group_id))
                            .peekable();
                        of_group.peek().is_some() && of_group.all(GraphLicenseAssignmentState::is_in_effect)
                    });
                self.groups_of_user.entry(member_id).or_default().push(group_id);
                memberships.push(PendingMembership {
                    group_id,
                    user_id: member_id,
                    source: MembershipSource::Listed(member.origin.clone()),
                    recorded_in_effect,
                });
            }
        }
        memberships
    }

    /// A license as the engine takes it: known product, disabled plans of that product only.
    /// `None` (reported) when the product is not in the tenant.
    fn checked_license(
        &mut self,
        sku_id: Uuid,
        disabled_plans: &[Guid],
        license_subject: Subject,
        assigned_to: &str,
    ) -> Option<AssignedLicense> {
        let Some(plans) = self.product_plans.get(&sku_id) else {
            let reason = if self.skipped_products.contains(&sku_id) {
                Reason::ProductNotImported
            } else {
                Reason::UnknownProduct
            };
            self.report.skip(license_subject, reason);
            return None;
        };
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        for plan in disabled_plans {
            if !plans.contains(&plan.0) {
                dropped.push(plan.0);
            } else if !kept.contains(&plan.0) {
                kept.push(plan.0);
            }
        }
        for service_plan_id in dropped {
            self.report.adjust(
                Subject::DisabledPlan {
                    sku_id,
                    service_plan_id,
                    assigned_to: assigned_to.to_string(),
                },
                Reason::DisabledPlanNotInProduct,
            );
        }
        Some(AssignedLicense::with_disabled_plans(sku_id, kept))
    }

    fn load_group_licenses(&mut self, progress: &mut dyn Progress) {
        let export = self.export;
        let mut done = HashSet::new();
        for record in &export.groups {
            progress.advance(1);
            let group = &record.value;
            let group_id = group.id.0;
            let Some(group_name) = self.groups.get(&group_id).cloned() else {
                continue;
            };
            if !done.insert(group_id) {
                continue;
            }
            let mut licenses = Vec::new();
            let mut seen = HashSet::new();
            for license in group.assigned_licenses.iter().flatten() {
                let subject = Subject::GroupLicense {
                    group_id,
                    group_name: group_name.clone(),
                    sku_id: license.sku_id.0,
                };
                if !seen.insert(license.sku_id.0) {
                    self.report.skip(subject, Reason::ListedTwice);
                    continue;
                }
                let disabled = license.disabled_plans.clone().unwrap_or_default();
                let assigned_to = format!("group \"{group_name}\"");
                if let Some(checked) =
                    self.checked_license(license.sku_id.0, &disabled, subject, &assigned_to)
                {
                    licenses.push(checked);
                }
            }
            if licenses.is_empty() {
                continue;
            }
            let count = licenses.len();
            let skus: Vec<Uuid> = licenses.iter().map(|license| license.sku_id).collect();
            match self.apply(Command::AssignGroupLicenses {
                group_id,
                add_licenses: licenses,
                remove_licenses: Vec::new(),
            }) {
                Ok(()) => {
                    self.report.loaded.licensed_groups += 1;
                    self.report.loaded.group_licenses += count;
                }
                Err(error) => {
                    for sku_id in skus {
                        self.report.skip(
                            Subject::GroupLicense {
                                group_id,
                                group_name: group_name.clone(),
                                sku_id,
                            },
                            Reason::refused(&error),
                        );
                    }
                }
            }
        }
    }

    /// Each user's direct licenses: the recorded states without `assignedByGroup`, or, when the
    /// export has no states for the user, `assignedLicenses` minus the products of its groups.
    fn collect_direct_licenses(&mut self, progress: &mut dyn Progress) -> Vec<(Uuid, Vec<DirectLicense>)> {
        let export = self.export;
        let group_products: HashMap<Uuid, HashSet<Uuid>> = export
            .groups
            .iter()
            .map(|record| {
                let products = record
                    .value
                    .assigned_licenses
                    .iter()
                    .flatten()
                    .map(|license| license.sku_id.0)
                    .collect();
                (record.value.id.0, products)
            })
            .collect();
        let mut result = Vec::new();
        for (index, record) in export.users.iter().enumerate() {
            progress.advance(1);
            let user = &record.value;
            let user_id = user.id.0;
            let Some((loaded_index, user_principal_name)) = self.users.get(&user_id).cloned() else {
                continue;
            };
            if loaded_index != index {
                continue; // a second record of the same user, skipped as such
            }
            // (product, disabled plans, whether Microsoft recorded it in effect)
            let mut wanted: Vec<(Uuid, Vec<Guid>, bool)> = Vec::new();
            match &user.license_assignment_states {
                Some(states) => {
                    for state in states.iter().filter(|state| state.assigned_by_group.is_none()) {
                        if wanted.iter().any(|(sku_id, _, _)| *sku_id == state.sku_id.0) {
                            continue;
                        }
                        let disabled = state.disabled_plans.clone().unwrap_or_default();
                        let in_effect = state.state.is_none() || state.is_in_effect();
                        wanted.push((state.sku_id.0, disabled, in_effect));
                    }
                }
                None => {
                    let inherited: HashSet<Uuid> = self
                        .groups_of_user
                        .get(&user_id)
                        .into_iter()
                        .flatten()
                        .filter_map(|group_id| group_products.get(group_id))
                        .flatten()
                        .copied()
                        .collect();
                    for license in user.assigned_licenses.iter().flatten() {
                        let sku_id = license.sku_id.0;
                        if inherited.contains(&sku_id)
                            || wanted.iter().any(|(wanted, _, _)| *wanted == sku_id)
                        {
                            continue;
                        }
                        let disabled = license.disabled_plans.clone().unwrap_or_default();
                        wanted.push((sku_id, disabled, true));
                        self.report.loaded.direct_licenses_inferred += 1;
                    }
                }
            }
            let mut licenses = Vec::new();
            for (sku_id, disabled, recorded_in_effect) in wanted {
                let subject = Subject::DirectLicense {
                    user_id,
                    user_principal_name: user_principal_name.clone(),
                    sku_id,
                };
                let assigned_to = format!("user {user_principal_name}");
                if let Some(license) = self.checked_license(sku_id, &disabled, subject, &assigned_to) {
                    licenses.push(DirectLicense {
                        license,
                        recorded_in_effect,
                    });
                }
            }
            if !licenses.is_empty() {
                result.push((user_id, licenses));
            }
        }
        result
    }

    // ----- applying licenses and memberships -------------------------------------------------

    /// Assigns direct licenses. All of a user's licenses go in one request; if it is refused,
    /// one by one, repeating while any succeeds (so a prerequisite listed after its dependent
    /// still comes first). Returns the licenses still refused, with the engine's reason.
    fn apply_direct_licenses(&mut self, wanted: Vec<(Uuid, Vec<AssignedLicense>)>) -> Vec<RefusedLicense> {
        let mut refused = Vec::new();
        for (user_id, licenses) in wanted {
            let count = licenses.len();
            let all_at_once = self.apply(Command::AssignUserLicenses {
                user_id,
                add_licenses: licenses.clone(),
                remove_licenses: Vec::new(),
            });
            if all_at_once.is_ok() {
                self.report.loaded.direct_licenses += count;
                continue;
            }
            let mut remaining: Vec<(AssignedLicense, Option<CommandError>)> =
                licenses.into_iter().map(|license| (license, None)).collect();
            loop {
                let before = remaining.len();
                let mut still_refused = Vec::new();
                for (license, _) in remaining {
                    match self.apply(Command::AssignUserLicenses {
                        user_id,
                        add_licenses: vec![license.clone()],
                        remove_licenses: Vec::new(),
                    }) {
                        Ok(()) => self.report.loaded.direct_licenses += 1,
                        Err(error) => still_refused.push((license, Some(error))),
                    }
                }
                remaining = still_refused;
                if remaining.is_empty() || remaining.len() == before {
                    break;
                }
            }
            refused.extend(
                remaining
                    .into_iter()
                    .filter_map(|(license, error)| error.map(|error| (user_id, license, error))),
            );
        }
        refused
    }

    /// Memberships that only the recorded states show. For a licensed group whose member list
    /// is not in the export, the users with a state from the group are its members (inferred).
    /// For a group whose list is there, an in-effect state of a user it does not name is a former
    /// membership whose removal Microsoft could not apply.
    fn collect_memberships_from_states(
        &mut self,
        memberships: &[PendingMembership],
    ) -> (Vec<PendingMembership>, Vec<PendingMembership>) {
        let export = self.export;
        let listed_groups: HashSet<Uuid> = export.group_members.iter().map(|group| group.group_id).collect();
        let listed: HashSet<(Uuid, Uuid)> = memberships
            .iter()
            .map(|membership| (membership.group_id, membership.user_id))
            .collect();
        let mut inferred: Vec<PendingMembership> = Vec::new();
        let mut former: Vec<PendingMembership> = Vec::new();
        let mut seen: HashSet<(Uuid, Uuid)> = HashSet::new();
        for (index, record) in export.users.iter().enumerate() {
            let user_id = record.value.id.0;
            if self.users.get(&user_id).map(|(loaded, _)| *loaded) != Some(index) {
                continue;
            }
            let states = record
                .value
                .license_assignment_states
                .as_deref()
                .unwrap_or_default();
            for state in states {
                let Some(group_id) = state.assigned_by_group.map(|id| id.0) else {
                    continue;
                };
                let licensed = self.groups.contains_key(&group_id)
                    && self
                        .engine
                        .group_view(group_id)
                        .is_ok_and(|group| !group.assigned_licenses.is_empty());
                if !licensed || listed.contains(&(group_id, user_id)) || !seen.insert((group_id, user_id)) {
                    continue;
                }
                let of_group = || {
                    states
                        .iter()
                        .filter(move |state| state.assigned_by_group.map(|id| id.0) == Some(group_id))
                };
                let all_in_effect = of_group().all(GraphLicenseAssignmentState::is_in_effect);
                if !listed_groups.contains(&group_id) {
                    self.groups_of_user.entry(user_id).or_default().push(group_id);
                    inferred.push(PendingMembership {
                        group_id,
                        user_id,
                        source: MembershipSource::Inferred,
                        recorded_in_effect: all_in_effect,
                    });
                } else if of_group().any(GraphLicenseAssignmentState::is_in_effect) {
                    former.push(PendingMembership {
                        group_id,
                        user_id,
                        source: MembershipSource::Former,
                        recorded_in_effect: true,
                    });
                }
            }
        }
        let mut inferred_groups: Vec<Uuid> = Vec::new();
        for membership in &inferred {
            if !inferred_groups.contains(&membership.group_id) {
                inferred_groups.push(membership.group_id);
            }
        }
        for group_id in inferred_groups {
            let count = inferred
                .iter()
                .filter(|membership| membership.group_id == group_id)
                .count();
            let name = self.groups.get(&group_id).cloned().unwrap_or_default();
            self.report.notes.push(format!(
                "group \"{name}\" ({group_id}) has no member list in the export: its {count} members were \
                 taken from the users' licenseAssignmentStates"
            ));
        }
        (inferred, former)
    }

    fn remove_former_memberships(&mut self, former: &[PendingMembership]) {
        for membership in former {
            let removed = self.apply(Command::RemoveGroupMember {
                group_id: membership.group_id,
                user_id: membership.user_id,
            });
            if removed.is_ok() {
                self.report.loaded.former_memberships += 1;
            }
        }
    }

    fn apply_memberships(&mut self, memberships: &[PendingMembership], in_effect: bool) {
        for membership in memberships
            .iter()
            .filter(|membership| membership.recorded_in_effect == in_effect)
        {
            match self.apply(Command::AddGroupMember {
                group_id: membership.group_id,
                user_id: membership.user_id,
            }) {
                Ok(()) => match membership.source {
                    MembershipSource::Listed(_) => self.report.loaded.memberships += 1,
                    MembershipSource::Inferred => self.report.loaded.memberships_inferred += 1,
                    MembershipSource::Former => {}
                },
                Err(error) => {
                    let group_name = self.groups.get(&membership.group_id).cloned();
                    self.report.skip(
                        Subject::Membership {
                            group_id: membership.group_id,
                            group_name,
                            member_id: membership.user_id,
                            origin: membership.origin(),
                        },
                        Reason::refused(&error),
                    );
                }
            }
        }
    }

    /// Evaluates every queued user, reporting progress in batches.
    fn evaluate(&mut self, progress: &mut dyn Progress) {
        let queued = self.engine.queued_users();
        if queued == 0 {
            return;
        }
        progress.start(&ProgressStep::Evaluating, queued as u64);
        while self.engine.queued_users() > 0 {
            let report = self.engine.process_batch(EVALUATION_BATCH, self.at);
            if report.evaluated_users == 0 {
                break;
            }
            self.report.evaluation.evaluated_users += report.evaluated_users;
            progress.advance(report.evaluated_users as u64);
        }
        progress.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_statuses_are_read_in_any_case() {
        assert_eq!(capability_status("Suspended"), Some(CapabilityStatus::Suspended));
        assert_eq!(
            capability_status(" lockedout "),
            Some(CapabilityStatus::LockedOut)
        );
        assert_eq!(capability_status("Expired"), None);
    }

    #[test]
    fn a_derived_tenant_id_is_stable_and_shaped_as_a_random_guid() {
        let export = GraphExport::default();
        let id = derived_tenant_id(&export);
        assert_eq!(id, derived_tenant_id(&export));
        assert_eq!(id.get_version_num(), 4);
        assert_eq!((id.as_u128() >> 62) & 0x3, 0x2, "the RFC 4122 variant");
    }

    #[test]
    fn the_mailbox_plans_include_exchange_online_plan_1_and_2() {
        assert!(mailbox_plan_names().contains(&"EXCHANGE_S_STANDARD"));
        assert!(mailbox_plan_names().contains(&"EXCHANGE_S_ENTERPRISE"));
        assert!(!mailbox_plan_names().contains(&"EXCHANGE_S_FOUNDATION"));
    }
}
