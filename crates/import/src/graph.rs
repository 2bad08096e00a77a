//! The Microsoft Graph v1.0 shapes an export contains, as typed records: `organization`,
//! `subscribedSku`, `user`, `group` and the directory objects of `group/members`. Reading is
//! lenient the way Graph clients are (unknown properties ignored, `null` where a value is
//! missing, the PascalCase names PowerShell's `ConvertTo-Json` writes) and strict on GUIDs.

use licensd_engine::Uuid;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A GUID as Graph writes it: 32 hexadecimal digits in the groups 8-4-4-4-12, either case.
/// Anything else is refused with a message that says what is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(pub Uuid);

/// Parses the hyphenated form of a GUID, explaining the first problem found.
pub fn parse_guid(text: &str) -> Result<Uuid, String> {
    const EXAMPLE: &str = "such as 6fd2c87f-b296-42f0-b197-1e91e994b900";
    const HYPHEN_POSITIONS: [usize; 4] = [8, 13, 18, 23];
    let characters: Vec<char> = text.chars().collect();
    if characters.len() != 36 {
        return Err(format!(
            "invalid GUID {text:?}: it has {} characters, a GUID has 36 (8-4-4-4-12 hexadecimal digits {EXAMPLE})",
            characters.len()
        ));
    }
    for (position, character) in characters.iter().enumerate() {
        let expected_hyphen = HYPHEN_POSITIONS.contains(&position);
        if expected_hyphen && *character != '-' {
            return Err(format!(
                "invalid GUID {text:?}: expected '-' at character {}, found {character:?} (a GUID is 8-4-4-4-12 \
                 hexadecimal digits {EXAMPLE})",
                position + 1
            ));
        }
        if !expected_hyphen && !character.is_ascii_hexdigit() {
            return Err(format!(
                "invalid GUID {text:?}: {character:?} at character {} is not a hexadecimal digit (a GUID is \
                 8-4-4-4-12 hexadecimal digits {EXAMPLE})",
                position + 1
            ));
        }
    }
    Uuid::parse_str(text).map_err(|error| format!("invalid GUID {text:?}: {error}"))
}

impl<'de> Deserialize<'de> for Guid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Guid, D::Error> {
        struct GuidVisitor;
        impl Visitor<'_> for GuidVisitor {
            type Value = Guid;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a GUID such as 6fd2c87f-b296-42f0-b197-1e91e994b900")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Guid, E> {
                parse_guid(value).map(Guid).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(GuidVisitor)
    }
}

/// Graph `organization` (`GET /organization`): the tenant's id, name and country, whose
/// `countryLetterCode` is the usage location of users who have none.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphOrganization {
    #[serde(alias = "Id")]
    pub id: Guid,
    #[serde(default, alias = "DisplayName")]
    pub display_name: Option<String>,
    #[serde(default, alias = "CountryLetterCode")]
    pub country_letter_code: Option<String>,
}

/// Graph `servicePlanInfo`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphServicePlanInfo {
    #[serde(alias = "ServicePlanId")]
    pub service_plan_id: Guid,
    #[serde(default, alias = "ServicePlanName")]
    pub service_plan_name: Option<String>,
    #[serde(default, alias = "ProvisioningStatus")]
    pub provisioning_status: Option<String>,
    #[serde(default, alias = "AppliesTo")]
    pub applies_to: Option<String>,
}

/// Graph `licenseUnitsDetail` (`prepaidUnits`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphLicenseUnitsDetail {
    #[serde(default, alias = "Enabled")]
    pub enabled: Option<i64>,
    #[serde(default, alias = "Suspended")]
    pub suspended: Option<i64>,
    #[serde(default, alias = "Warning")]
    pub warning: Option<i64>,
    #[serde(default, alias = "LockedOut")]
    pub locked_out: Option<i64>,
}

/// Graph `subscribedSku` (`GET /subscribedSkus`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphSubscribedSku {
    #[serde(alias = "SkuId")]
    pub sku_id: Guid,
    #[serde(default, alias = "SkuPartNumber")]
    pub sku_part_number: Option<String>,
    #[serde(default, alias = "ServicePlans")]
    pub service_plans: Option<Vec<GraphServicePlanInfo>>,
    #[serde(default, alias = "PrepaidUnits")]
    pub prepaid_units: Option<GraphLicenseUnitsDetail>,
    #[serde(default, alias = "ConsumedUnits")]
    pub consumed_units: Option<i64>,
    #[serde(default, alias = "CapabilityStatus")]
    pub capability_status: Option<String>,
    #[serde(default, alias = "AppliesTo")]
    pub applies_to: Option<String>,
    #[serde(default, alias = "AccountId")]
    pub account_id: Option<Guid>,
    #[serde(default, alias = "AccountName")]
    pub account_name: Option<String>,
}

/// Graph `assignedLicense`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphAssignedLicense {
    #[serde(alias = "SkuId")]
    pub sku_id: Guid,
    #[serde(default, alias = "DisabledPlans")]
    pub disabled_plans: Option<Vec<Guid>>,
}

/// Graph `licenseAssignmentState`: what Microsoft recorded for one product from one source.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphLicenseAssignmentState {
    #[serde(alias = "SkuId")]
    pub sku_id: Guid,
    /// `null` for a direct assignment.
    #[serde(default, alias = "AssignedByGroup")]
    pub assigned_by_group: Option<Guid>,
    #[serde(default, alias = "DisabledPlans")]
    pub disabled_plans: Option<Vec<Guid>>,
    #[serde(default, alias = "State")]
    pub state: Option<String>,
    #[serde(default, alias = "Error")]
    pub error: Option<String>,
    #[serde(default, alias = "LastUpdatedDateTime")]
    pub last_updated_date_time: Option<String>,
}

impl GraphLicenseAssignmentState {
    /// Whether Microsoft recorded the assignment as in effect (`Active` or `ActiveWithError`).
    pub fn is_in_effect(&self) -> bool {
        self.state.as_deref().is_some_and(|state| {
            state.eq_ignore_ascii_case("Active") || state.eq_ignore_ascii_case("ActiveWithError")
        })
    }

    /// The recorded error, `None` when there is none (`"None"`, empty or missing).
    pub fn error_code(&self) -> Option<&str> {
        normalized_error(self.error.as_deref())
    }
}

/// `None` for Graph's ways of saying "no error": a missing value, an empty string or `"None"`.
pub fn normalized_error(error: Option<&str>) -> Option<&str> {
    error
        .map(str::trim)
        .filter(|error| !error.is_empty() && !error.eq_ignore_ascii_case("None"))
}

/// Graph `user` with the licensing properties (`$select`ed: `usageLocation`,
/// `licenseAssignmentStates` and `assignedLicenses` are not returned by default).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphUser {
    #[serde(alias = "Id")]
    pub id: Guid,
    #[serde(default, alias = "UserPrincipalName")]
    pub user_principal_name: Option<String>,
    #[serde(default, alias = "DisplayName")]
    pub display_name: Option<String>,
    #[serde(default, alias = "AccountEnabled")]
    pub account_enabled: Option<bool>,
    #[serde(default, alias = "UsageLocation")]
    pub usage_location: Option<String>,
    #[serde(default, alias = "ProxyAddresses")]
    pub proxy_addresses: Option<Vec<String>>,
    #[serde(default, alias = "AssignedLicenses")]
    pub assigned_licenses: Option<Vec<GraphAssignedLicense>>,
    /// `None` when the export did not select the property: nothing is known of the states then.
    #[serde(default, alias = "LicenseAssignmentStates")]
    pub license_assignment_states: Option<Vec<GraphLicenseAssignmentState>>,
    // Directory attributes, when the export selected them.
    #[serde(default, alias = "Department")]
    pub department: Option<String>,
    #[serde(default, alias = "JobTitle")]
    pub job_title: Option<String>,
    #[serde(default, alias = "CompanyName")]
    pub company_name: Option<String>,
    #[serde(default, alias = "OfficeLocation")]
    pub office_location: Option<String>,
    #[serde(default, alias = "City")]
    pub city: Option<String>,
    #[serde(default, alias = "State")]
    pub state: Option<String>,
    #[serde(default, alias = "Country")]
    pub country: Option<String>,
    #[serde(default, alias = "EmployeeId")]
    pub employee_id: Option<String>,
    #[serde(default, alias = "EmployeeType")]
    pub employee_type: Option<String>,
    #[serde(default, alias = "Mail")]
    pub mail: Option<String>,
    #[serde(default, alias = "UserType")]
    pub user_type: Option<String>,
    #[serde(default, alias = "OnPremisesExtensionAttributes")]
    pub on_premises_extension_attributes: Option<std::collections::BTreeMap<String, Option<String>>>,
    /// The last sign-in, when the export selected `signInActivity` (it needs AuditLog.Read.All).
    #[serde(default, alias = "SignInActivity")]
    pub sign_in_activity: Option<GraphSignInActivity>,
    /// When the user leaves or left the company, when the export selected it.
    #[serde(default, alias = "EmployeeLeaveDateTime")]
    pub employee_leave_date_time: Option<String>,
}

/// Graph `signInActivity`, the part licensd keeps.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphSignInActivity {
    #[serde(default, alias = "LastSignInDateTime")]
    pub last_sign_in_date_time: Option<String>,
}

impl GraphUser {
    /// The directory attributes the export gives, by Graph name (extension attributes by
    /// their own name), empty values left out.
    pub fn directory_attributes(&self) -> Vec<(&str, &str)> {
        let mut attributes: Vec<(&str, &str)> = [
            ("department", &self.department),
            ("jobTitle", &self.job_title),
            ("companyName", &self.company_name),
            ("officeLocation", &self.office_location),
            ("city", &self.city),
            ("state", &self.state),
            ("country", &self.country),
            ("employeeId", &self.employee_id),
            ("employeeType", &self.employee_type),
            ("mail", &self.mail),
            ("userType", &self.user_type),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
        .collect();
        if let Some(extensions) = &self.on_premises_extension_attributes {
            for (name, value) in extensions {
                if let Some(value) = value.as_deref() {
                    attributes.push((name.as_str(), value));
                }
            }
        }
        attributes.retain(|(_, value)| !value.trim().is_empty());
        attributes
    }
}

/// Graph `group` with `assignedLicenses` and, for dynamic groups, `groupTypes`, `membershipRule`
/// and `membershipRuleProcessingState` (`$select`ed).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphGroup {
    #[serde(alias = "Id")]
    pub id: Guid,
    #[serde(default, alias = "DisplayName")]
    pub display_name: Option<String>,
    #[serde(default, alias = "AssignedLicenses")]
    pub assigned_licenses: Option<Vec<GraphAssignedLicense>>,
    /// `["DynamicMembership"]` for a dynamic membership group (when the export selected it).
    #[serde(default, alias = "GroupTypes")]
    pub group_types: Option<Vec<String>>,
    /// A dynamic group's rule, in Entra's rule language.
    #[serde(default, alias = "MembershipRule")]
    pub membership_rule: Option<String>,
    /// `On` or `Paused`.
    #[serde(default, alias = "MembershipRuleProcessingState")]
    pub membership_rule_processing_state: Option<String>,
}

impl GraphGroup {
    /// Whether `groupTypes` says the group is a dynamic membership group.
    pub fn is_dynamic(&self) -> bool {
        self.group_types
            .iter()
            .flatten()
            .any(|kind| kind.eq_ignore_ascii_case("DynamicMembership"))
    }
}

/// One entry of `GET /groups/{id}/members`: a user, or another kind of directory object
/// (a nested group, a device, a service principal) that group licensing does not reach.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphDirectoryObject {
    #[serde(alias = "Id")]
    pub id: Guid,
    /// `#microsoft.graph.user`, `#microsoft.graph.group`, ...; missing in some client outputs.
    #[serde(default, rename = "@odata.type", alias = "OdataType")]
    pub odata_type: Option<String>,
    #[serde(default, alias = "UserPrincipalName")]
    pub user_principal_name: Option<String>,
}

impl GraphDirectoryObject {
    /// The kind of object without the `#microsoft.graph.` prefix, when the export says it.
    pub fn kind(&self) -> Option<&str> {
        self.odata_type.as_deref().map(|odata_type| {
            odata_type
                .trim_start_matches('#')
                .trim_start_matches("microsoft.graph.")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hyphenated_guids_in_either_case() {
        let lower = parse_guid("6fd2c87f-b296-42f0-b197-1e91e994b900");
        let upper = parse_guid("6FD2C87F-B296-42F0-B197-1E91E994B900");
        assert!(lower.is_ok());
        assert_eq!(lower, upper);
    }

    #[test]
    fn explains_what_is_wrong_with_a_guid() {
        let short = parse_guid("6fd2c87f-b296-42f0-b197").unwrap_err();
        assert!(short.contains("23 characters"), "{short}");
        let letter = parse_guid("6fd2c87f-b296-42f0-b197-1e91e994b90z").unwrap_err();
        assert!(letter.contains("'z' at character 36"), "{letter}");
        let underscore = parse_guid("6fd2c87f_b296-42f0-b197-1e91e994b900").unwrap_err();
        assert!(
            underscore.contains("expected '-' at character 9, found '_'"),
            "{underscore}"
        );
        let braces = parse_guid("{6fd2c87f-b296-42f0-b197-1e91e994b9}").unwrap_err();
        assert!(
            braces.contains("'{' at character 1 is not a hexadecimal digit"),
            "{braces}"
        );
    }

    #[test]
    fn reads_camel_case_and_pascal_case_and_ignores_unknown_properties() {
        let camel: GraphUser = serde_json::from_str(
            r#"{"id":"00000000-0000-4000-8000-000000000001","userPrincipalName":"a@contoso.com",
                "mail":"a@contoso.com","usageLocation":null,"licenseAssignmentStates":[]}"#,
        )
        .unwrap();
        assert_eq!(camel.user_principal_name.as_deref(), Some("a@contoso.com"));
        assert_eq!(camel.usage_location, None);
        assert_eq!(
            camel.license_assignment_states.map(|states| states.len()),
            Some(0)
        );
        let pascal: GraphUser = serde_json::from_str(
            r#"{"Id":"00000000-0000-4000-8000-000000000001","UserPrincipalName":"a@contoso.com",
                "AdditionalProperties":{}}"#,
        )
        .unwrap();
        assert_eq!(pascal.user_principal_name.as_deref(), Some("a@contoso.com"));
        assert!(pascal.license_assignment_states.is_none());
    }

    #[test]
    fn none_and_empty_errors_mean_no_error() {
        assert_eq!(normalized_error(Some("None")), None);
        assert_eq!(normalized_error(Some("")), None);
        assert_eq!(normalized_error(None), None);
        assert_eq!(normalized_error(Some("CountViolation")), Some("CountViolation"));
    }

    #[test]
    fn member_kinds_lose_the_namespace() {
        let member: GraphDirectoryObject = serde_json::from_str(
            r##"{"@odata.type":"#microsoft.graph.group","id":"00000000-0000-4000-8000-000000000001"}"##,
        )
        .unwrap();
        assert_eq!(member.kind(), Some("group"));
    }
}
