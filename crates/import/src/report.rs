//! What an import did, precisely: counts of what was loaded, every record that was loaded with an
//! adjustment (a proxy prefix normalized, an invalid usage location dropped, ...) and every record
//! that was skipped, each with the reason (including the engine's own refusal message). The
//! report serializes to JSON for `licensd import --json`.

use std::collections::BTreeMap;
use std::fmt;

use licensd_engine::{LicenseErrorKind, Uuid};
use serde::Serialize;

use crate::compare::Comparison;
use crate::read::{FileSummary, Origin};

/// GUIDs as Graph writes them, for the report's JSON.
pub(crate) mod guid_text {
    use licensd_engine::Uuid;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(id: &Uuid, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(id)
    }

    pub mod option {
        use licensd_engine::Uuid;
        use serde::Serializer;

        pub fn serialize<S: Serializer>(id: &Option<Uuid>, serializer: S) -> Result<S::Ok, S::Error> {
            match id {
                Some(id) => serializer.collect_str(id),
                None => serializer.serialize_none(),
            }
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What a report entry is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Subject {
    Product {
        #[serde(with = "guid_text")]
        sku_id: Uuid,
        sku_part_number: Option<String>,
    },
    User {
        #[serde(with = "guid_text")]
        user_id: Uuid,
        user_principal_name: Option<String>,
        origin: Origin,
    },
    Group {
        #[serde(with = "guid_text")]
        group_id: Uuid,
        display_name: Option<String>,
    },
    GroupLicense {
        #[serde(with = "guid_text")]
        group_id: Uuid,
        group_name: String,
        #[serde(with = "guid_text")]
        sku_id: Uuid,
    },
    DirectLicense {
        #[serde(with = "guid_text")]
        user_id: Uuid,
        user_principal_name: String,
        #[serde(with = "guid_text")]
        sku_id: Uuid,
    },
    Membership {
        #[serde(with = "guid_text")]
        group_id: Uuid,
        group_name: Option<String>,
        #[serde(with = "guid_text")]
        member_id: Uuid,
        /// `None` for a membership known only from a recorded state.
        origin: Option<Origin>,
    },
    ProxyAddress {
        #[serde(with = "guid_text")]
        user_id: Uuid,
        user_principal_name: String,
        value: String,
    },
    UsageLocation {
        #[serde(with = "guid_text")]
        user_id: Uuid,
        user_principal_name: String,
        value: String,
    },
    ServicePlan {
        #[serde(with = "guid_text")]
        sku_id: Uuid,
        #[serde(with = "guid_text")]
        service_plan_id: Uuid,
    },
    /// A dynamic group's membership rule.
    MembershipRule {
        #[serde(with = "guid_text")]
        group_id: Uuid,
        group_name: String,
        rule: String,
    },
    DisabledPlan {
        #[serde(with = "guid_text")]
        sku_id: Uuid,
        #[serde(with = "guid_text")]
        service_plan_id: Uuid,
        /// "group Sales" or "user alice@contoso.com".
        assigned_to: String,
    },
}

impl fmt::Display for Subject {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Product {
                sku_id,
                sku_part_number,
            } => match sku_part_number {
                Some(part_number) => write!(formatter, "product {part_number} ({sku_id})"),
                None => write!(formatter, "product {sku_id}"),
            },
            Subject::User {
                user_id,
                user_principal_name,
                origin,
            } => match user_principal_name {
                Some(name) => write!(formatter, "user {name} ({user_id}, {origin})"),
                None => write!(formatter, "user {user_id} ({origin})"),
            },
            Subject::Group {
                group_id,
                display_name,
            } => match display_name {
                Some(name) => write!(formatter, "group \"{name}\" ({group_id})"),
                None => write!(formatter, "group {group_id}"),
            },
            Subject::GroupLicense {
                group_id,
                group_name,
                sku_id,
            } => write!(
                formatter,
                "license {sku_id} of group \"{group_name}\" ({group_id})"
            ),
            Subject::DirectLicense {
                user_principal_name,
                sku_id,
                ..
            } => write!(formatter, "direct license {sku_id} of user {user_principal_name}"),
            Subject::Membership {
                group_id,
                group_name,
                member_id,
                origin,
            } => {
                match group_name {
                    Some(name) => write!(formatter, "member {member_id} of group \"{name}\"")?,
                    None => write!(formatter, "member {member_id} of group {group_id}")?,
                }
                match origin {
                    Some(origin) => write!(formatter, " ({origin})"),
                    None => formatter.write_str(" (known from licenseAssignmentStates)"),
                }
            }
            Subject::ProxyAddress {
                user_principal_name,
                value,
                ..
            } => write!(formatter, "proxy address {value:?} of user {user_principal_name}"),
            Subject::UsageLocation {
                user_principal_name,
                value,
                ..
            } => write!(
                formatter,
                "usage location {value:?} of user {user_principal_name}"
            ),
            Subject::ServicePlan {
                sku_id,
                service_plan_id,
            } => write!(formatter, "service plan {service_plan_id} of product {sku_id}"),
            Subject::DisabledPlan {
                sku_id,
                service_plan_id,
                assigned_to,
            } => write!(
                formatter,
                "disabled plan {service_plan_id} of product {sku_id} assigned to {assigned_to}"
            ),
            Subject::MembershipRule {
                group_id,
                group_name,
                rule,
            } => write!(
                formatter,
                "membershipRule {rule:?} of group \"{group_name}\" ({group_id})"
            ),
        }
    }
}

/// Why a record was skipped or adjusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Reason {
    /// The user has no `userPrincipalName` (the export did not select it, or it is empty).
    MissingUserPrincipalName,
    /// The same id appears twice; the first record is kept.
    ListedTwice,
    /// A license names a product that is not in `subscribedSkus`.
    UnknownProduct,
    /// A license names a product that was skipped.
    ProductNotImported,
    /// A membership or license of a user that was skipped.
    UserNotImported,
    /// Members listed for a group that is not in `groups.json` (or was skipped).
    GroupNotImported,
    /// A member that is not one of the export's users.
    UnknownMember,
    /// A member that is not a user (a nested group, a device, ...): Entra licenses only the
    /// direct user members of a group.
    NotAUser { kind: String },
    /// The engine refused the command; its message says why.
    Refused {
        message: String,
        error: Option<&'static str>,
    },
    /// The proxy address's `smtp` prefix was neither `SMTP:` (primary) nor `smtp:`; it is kept as
    /// a secondary address with the prefix `smtp:`.
    ProxyPrefixNormalized { to: String },
    /// A proxy address the engine does not accept (it is ignored; only the user's other addresses
    /// take part in the uniqueness rule).
    InvalidProxyAddress { message: String },
    /// The same proxy address twice for one user (ignoring case); the first is kept.
    DuplicateProxyAddress,
    /// A sign-in or leave date that is not a date-time: ignored (the user is loaded without it).
    InvalidActivityDate { field: String, value: String },
    /// Not an ISO 3166-1 alpha-2 code: the user is loaded without a usage location.
    InvalidUsageLocation { message: String },
    /// A lower-case or padded usage location, read as the code it stands for.
    UsageLocationNormalized { to: String },
    /// `prepaidUnits.enabled` is missing: the product is loaded with no purchased seat.
    MissingPrepaidUnits,
    /// A negative or huge `prepaidUnits.enabled`: clamped to what the engine accepts.
    PrepaidUnitsOutOfRange { value: i64, to: u32 },
    /// An unknown `capabilityStatus`: read as `Enabled`.
    UnknownCapabilityStatus { value: String },
    /// An unknown `appliesTo`: read as `User`.
    UnknownAppliesTo { value: String },
    /// No `skuPartNumber`: the catalog's (or the skuId) is used.
    MissingPartNumber { to: String },
    /// A plan listed twice in one product; the first is kept.
    DuplicateServicePlan,
    /// A disabled plan that is not part of the product: dropping it changes nothing.
    DisabledPlanNotInProduct,
    /// A dynamic group's rule that licensd cannot apply (or a dynamic group without a rule): the
    /// group is loaded with its exported members, as a group with assigned members.
    RuleNotImported { message: String },
    /// An unknown `membershipRuleProcessingState`: read as `On`.
    UnknownProcessingState { value: String },
    /// Applying the rule to the export's users changed the exported members (the export may lack
    /// attributes the rule reads, or be older than the rule).
    RuleMovedMembers { joined: usize, left: usize },
}

impl fmt::Display for Reason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::MissingUserPrincipalName => formatter.write_str("no userPrincipalName"),
            Reason::ListedTwice => formatter.write_str("listed twice; the first one is kept"),
            Reason::UnknownProduct => formatter.write_str("the product is not in subscribedSkus"),
            Reason::ProductNotImported => formatter.write_str("the product was skipped"),
            Reason::UserNotImported => formatter.write_str("the user was skipped"),
            Reason::GroupNotImported => formatter.write_str("the group is not in groups.json or was skipped"),
            Reason::UnknownMember => formatter.write_str("not one of the export's users"),
            Reason::NotAUser { kind } => write!(
                formatter,
                "a {kind}, not a user: group licensing reaches only the group's direct user members"
            ),
            Reason::Refused { message, .. } => write!(formatter, "refused: {message}"),
            Reason::ProxyPrefixNormalized { to } => {
                write!(
                    formatter,
                    "not SMTP: (primary), kept as the secondary address {to}"
                )
            }
            Reason::InvalidProxyAddress { message } => write!(formatter, "ignored: {message}"),
            Reason::DuplicateProxyAddress => {
                formatter.write_str("listed twice for the user; the first is kept")
            }
            Reason::InvalidUsageLocation { message } => {
                write!(formatter, "ignored, the user has no usage location: {message}")
            }
            Reason::UsageLocationNormalized { to } => write!(formatter, "read as {to}"),
            Reason::InvalidActivityDate { field, value } => {
                write!(formatter, "{field} {value:?} is not a date-time: ignored")
            }
            Reason::MissingPrepaidUnits => {
                formatter.write_str("no prepaidUnits.enabled: loaded with 0 purchased seats")
            }
            Reason::PrepaidUnitsOutOfRange { value, to } => {
                write!(
                    formatter,
                    "prepaidUnits.enabled {value} is out of range: loaded as {to}"
                )
            }
            Reason::UnknownCapabilityStatus { value } => {
                write!(formatter, "unknown capabilityStatus {value:?}: read as Enabled")
            }
            Reason::UnknownAppliesTo { value } => {
                write!(formatter, "unknown appliesTo {value:?}: read as User")
            }
            Reason::MissingPartNumber { to } => write!(formatter, "no skuPartNumber: named {to}"),
            Reason::DuplicateServicePlan => {
                formatter.write_str("a service plan listed twice; the first is kept")
            }
            Reason::DisabledPlanNotInProduct => {
                formatter.write_str("not a plan of the product, so disabling it changes nothing: dropped")
            }
            Reason::RuleNotImported { message } => write!(
                formatter,
                "not imported ({message}): the group keeps its exported members, as a group with assigned members"
            ),
            Reason::UnknownProcessingState { value } => {
                write!(formatter, "unknown membershipRuleProcessingState {value:?}: read as On")
            }
            Reason::RuleMovedMembers { joined, left } => write!(
                formatter,
                "applied to the export's users, the rule adds {joined} and removes {left} of the exported members \
                 (does the export hold the user properties the rule reads?)"
            ),
        }
    }
}

impl Reason {
    /// The engine's refusal of a command, with its Graph error code when it is a licensing rule.
    pub fn refused(error: &licensd_engine::CommandError) -> Reason {
        Reason::Refused {
            message: error.to_string(),
            error: error.license_error_kind().map(|kind| kind.as_str()),
        }
    }
}

/// One adjusted or skipped record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportEntry {
    pub subject: Subject,
    pub reason: Reason,
    /// The subject and reason in one sentence.
    pub message: String,
}

impl ReportEntry {
    pub fn new(subject: Subject, reason: Reason) -> ReportEntry {
        let message = format!("{subject}: {reason}");
        ReportEntry {
            subject,
            reason,
            message,
        }
    }
}

impl fmt::Display for ReportEntry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

/// What was loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadedCounts {
    pub products: usize,
    pub service_plans: usize,
    /// Plans given rules: the catalog's exclusions and prerequisites among the tenant's plans,
    /// and the mailbox flag.
    pub plans_with_rules: usize,
    pub mailbox_plans: usize,
    pub users: usize,
    pub users_without_usage_location: usize,
    /// Users whose `licenseAssignmentStates` the export holds (the ones `--compare` can check).
    pub users_with_recorded_states: usize,
    /// Users with a last sign-in (`signInActivity.lastSignInDateTime`) or a leave date
    /// (`employeeLeaveDateTime`) in the export: their activity is stored with the tenant.
    pub users_with_activity: usize,
    pub groups: usize,
    pub licensed_groups: usize,
    pub group_licenses: usize,
    pub memberships: usize,
    /// Dynamic membership groups loaded with their rule (`groupTypes: ["DynamicMembership"]`).
    pub dynamic_groups: usize,
    /// Memberships of licensed groups whose member list is not in the export, taken from the
    /// users' `licenseAssignmentStates`.
    pub memberships_inferred: usize,
    /// Former memberships Microsoft still applies while it cannot remove them (a dependent plan
    /// needs their licenses): added and removed again so licensd records the same blocked removal.
    pub former_memberships: usize,
    pub direct_licenses: usize,
    /// Direct licenses taken from `assignedLicenses` minus the user's groups' products, because
    /// the user's `licenseAssignmentStates` were not in the export.
    pub direct_licenses_inferred: usize,
}

/// The evaluation licensd ran after loading.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationSummary {
    pub evaluated_users: usize,
    pub users_with_errors: usize,
    pub groups_with_errors: usize,
    /// Error states per Graph error code.
    pub errors_by_kind: BTreeMap<String, usize>,
}

impl EvaluationSummary {
    pub(crate) fn add_errors(&mut self, errors_by_kind: &BTreeMap<LicenseErrorKind, usize>) {
        for (kind, count) in errors_by_kind {
            *self.errors_by_kind.entry(kind.as_str().to_string()).or_insert(0) += count;
        }
    }
}

/// Everything an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    #[serde(with = "guid_text")]
    pub tenant_id: Uuid,
    pub tenant_display_name: String,
    pub default_usage_location: Option<String>,
    pub files: Vec<FileSummary>,
    /// Notes about the files (ignored files, incomplete paging).
    pub notes: Vec<String>,
    pub loaded: LoadedCounts,
    /// Records loaded with a change, and why.
    pub adjusted: Vec<ReportEntry>,
    /// Records not loaded, and why.
    pub skipped: Vec<ReportEntry>,
    pub evaluation: EvaluationSummary,
}

impl ImportReport {
    pub(crate) fn skip(&mut self, subject: Subject, reason: Reason) {
        self.skipped.push(ReportEntry::new(subject, reason));
    }

    pub(crate) fn adjust(&mut self, subject: Subject, reason: Reason) {
        self.adjusted.push(ReportEntry::new(subject, reason));
    }
}

/// Pretty JSON of a report value. Serializing these types cannot fail (every map key is a
/// string); should it ever, the text is a JSON object with the error.
fn pretty_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|error| {
        serde_json::json!({ "error": format!("cannot encode the report: {error}") }).to_string()
    })
}

/// What `licensd import --json` prints: the report, the comparison when one was asked for, and
/// where the tenant was written.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportOutcome<'a> {
    pub report: &'a ImportReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<&'a Comparison>,
    pub database_url: &'a str,
    /// The tenant's version in the store after the write.
    pub tenant_version: u64,
}

impl ImportOutcome<'_> {
    pub fn to_json(&self) -> String {
        pretty_json(self)
    }
}
