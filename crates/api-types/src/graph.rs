//! Microsoft Graph v1.0 shapes licensd answers with and accepts: `subscribedSku`, `user`, `group`,
//! `assignedLicense`, `assignedPlan`, `licenseAssignmentState`, `licenseDetails`, collections, and
//! the request bodies of `POST`/`PATCH` and the licensing actions. Property names are Graph's.
//! Request bodies refuse properties Graph does not know (or licensd does not model), so a typo
//! never silently does nothing.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Lets a `PATCH` body tell "absent" (`None`) from "set to null" (`Some(None)`).
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Graph `servicePlanInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlanInfo {
    pub service_plan_id: Uuid,
    #[schema(example = "EXCHANGE_S_ENTERPRISE")]
    pub service_plan_name: String,
    /// `Success` when enabled, `Disabled` when switched off in the assignment.
    #[schema(example = "Success")]
    pub provisioning_status: String,
    #[schema(example = "User")]
    pub applies_to: String,
}

/// Graph `licenseUnitsDetail`: purchased units by the subscription's status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseUnitsDetail {
    pub enabled: i64,
    pub suspended: i64,
    pub warning: i64,
    pub locked_out: i64,
}

/// Graph `subscribedSku`: a product the tenant subscribes to, with its seats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribedSku {
    /// `{tenantId}_{skuId}`, as Graph builds it.
    pub id: String,
    pub account_id: Uuid,
    pub account_name: String,
    /// `User` (assignable to users and groups) or `Company`.
    #[schema(example = "User")]
    pub applies_to: String,
    /// `Enabled`, `Warning`, `Suspended`, `LockedOut` or `Deleted`.
    #[schema(example = "Enabled")]
    pub capability_status: String,
    pub consumed_units: i64,
    pub prepaid_units: LicenseUnitsDetail,
    pub service_plans: Vec<ServicePlanInfo>,
    pub sku_id: Uuid,
    #[schema(example = "ENTERPRISEPACK")]
    pub sku_part_number: String,
    pub subscription_ids: Vec<String>,
}

/// Graph `assignedLicense`: a product and the plans of it that are switched off. Also the item
/// of `addLicenses` in `assignLicense`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignedLicense {
    /// Plans of the product that are switched off (a deny-list: plans added later are on).
    #[serde(default)]
    pub disabled_plans: Vec<Uuid>,
    pub sku_id: Uuid,
    /// Sent by Microsoft's SDKs; ignored.
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub odata_type: Option<String>,
}

/// Graph `assignedPlan`: a service plan in effect for a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignedPlan {
    pub assigned_date_time: String,
    #[schema(example = "Enabled")]
    pub capability_status: String,
    /// The service the plan belongs to, such as `exchange` or `SharePoint`.
    #[schema(example = "exchange")]
    pub service: String,
    pub service_plan_id: Uuid,
}

/// Graph `licenseAssignmentState`: one entry per product and source (direct or a group).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseAssignmentState {
    /// The group the assignment comes from; `null` for a direct assignment.
    pub assigned_by_group: Option<Uuid>,
    pub disabled_plans: Vec<Uuid>,
    /// `None`, `CountViolation`, `MutuallyExclusiveViolation`, `DependencyViolation`,
    /// `ProhibitedInUsageLocationViolation`, `UniquenessViolation` or `Other`.
    #[schema(example = "None")]
    pub error: String,
    pub last_updated_date_time: Option<String>,
    pub sku_id: Uuid,
    /// `Active`, `ActiveWithError`, `Disabled` or `Error`.
    #[schema(example = "Active")]
    pub state: String,
}

/// Graph `licenseDetails`: a product in effect for a user, with the status of each plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseDetails {
    pub id: String,
    pub service_plans: Vec<ServicePlanInfo>,
    pub sku_id: Uuid,
    pub sku_part_number: String,
}

/// Graph `user`, with the properties licensd models. `assignedPlans` and
/// `licenseAssignmentStates` are returned only when named in `$select`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// `#microsoft.graph.user` in collections of directory objects (`members`, ...).
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    pub id: Uuid,
    pub display_name: String,
    #[schema(example = "adele@contoso.com")]
    pub user_principal_name: String,
    /// The primary SMTP address (`SMTP:` proxy address), if any.
    pub mail: Option<String>,
    pub account_enabled: bool,
    /// ISO 3166-1 alpha-2 code; required for direct assignments.
    #[schema(example = "US")]
    pub usage_location: Option<String>,
    #[schema(example = json!(["SMTP:adele@contoso.com"]))]
    pub proxy_addresses: Vec<String>,
    pub assigned_licenses: Vec<AssignedLicense>,
    /// Directory attribute (null when not set).
    #[serde(default)]
    pub department: Option<String>,
    /// Directory attribute (null when not set).
    #[serde(default)]
    pub job_title: Option<String>,
    /// Directory attribute (null when not set).
    #[serde(default)]
    pub company_name: Option<String>,
    /// Directory attribute (null when not set).
    #[serde(default)]
    pub office_location: Option<String>,
    /// Directory attribute (null when not set).
    #[serde(default)]
    pub city: Option<String>,
    /// Directory attribute (null when not set).
    #[serde(default)]
    pub state: Option<String>,
    /// Directory attribute (null when not set).
    #[serde(default)]
    pub country: Option<String>,
    /// Directory attribute (null when not set).
    #[serde(default)]
    pub employee_id: Option<String>,
    /// Directory attribute (null when not set).
    #[serde(default)]
    pub employee_type: Option<String>,
    /// Directory attribute (null when not set).
    #[serde(default)]
    pub user_type: Option<String>,
    /// `extensionAttribute1`–`15`; returned only when named in `$select`.
    #[serde(default)]
    #[schema(required = false)]
    pub on_premises_extension_attributes: OnPremisesExtensionAttributes,
    /// Returned only when named in `$select`.
    #[schema(required = false)]
    pub assigned_plans: Vec<AssignedPlan>,
    /// Returned only when named in `$select`.
    #[schema(required = false)]
    pub license_assignment_states: Vec<LicenseAssignmentState>,
}

/// Graph `onPremisesExtensionAttributes`: in a response every attribute is present (null when
/// not set); in a request only those present change (`null` clears).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnPremisesExtensionAttributes {
    /// Sent by Graph SDKs; ignored.
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub odata_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute1: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute2: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute3: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute4: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute5: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute6: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute7: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute8: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute9: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute10: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute11: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute12: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute13: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute14: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_attribute15: Option<Option<String>>,
}

impl OnPremisesExtensionAttributes {
    /// The attributes present, by number (1 to 15): `Some(None)` clears.
    pub fn present(&self) -> Vec<(u8, Option<&str>)> {
        [
            &self.extension_attribute1,
            &self.extension_attribute2,
            &self.extension_attribute3,
            &self.extension_attribute4,
            &self.extension_attribute5,
            &self.extension_attribute6,
            &self.extension_attribute7,
            &self.extension_attribute8,
            &self.extension_attribute9,
            &self.extension_attribute10,
            &self.extension_attribute11,
            &self.extension_attribute12,
            &self.extension_attribute13,
            &self.extension_attribute14,
            &self.extension_attribute15,
        ]
        .iter()
        .enumerate()
        .filter_map(|(index, value)| value.as_ref().map(|value| (index as u8 + 1, value.as_deref())))
        .collect()
    }

    /// Every attribute, present or not, from values by number (1 to 15).
    pub fn from_values(values: &[(u8, String)]) -> OnPremisesExtensionAttributes {
        let mut all: [Option<Option<String>>; 15] = Default::default();
        for slot in all.iter_mut() {
            *slot = Some(None);
        }
        for (number, value) in values {
            if let Some(slot) = all.get_mut(usize::from(*number).wrapping_sub(1)) {
                *slot = Some(Some(value.clone()));
            }
        }
        let [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15] = all;
        OnPremisesExtensionAttributes {
            odata_type: None,
            extension_attribute1: a1,
            extension_attribute2: a2,
            extension_attribute3: a3,
            extension_attribute4: a4,
            extension_attribute5: a5,
            extension_attribute6: a6,
            extension_attribute7: a7,
            extension_attribute8: a8,
            extension_attribute9: a9,
            extension_attribute10: a10,
            extension_attribute11: a11,
            extension_attribute12: a12,
            extension_attribute13: a13,
            extension_attribute14: a14,
            extension_attribute15: a15,
        }
    }
}

/// Graph `licenseProcessingState` of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LicenseProcessingState {
    /// `QueuedForProcessing`, `ProcessingInProgress` or `ProcessingComplete`.
    #[schema(example = "ProcessingComplete")]
    pub state: String,
}

/// Graph `group`, with the properties licensd models. licensd models security groups only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// `#microsoft.graph.group` in collections of directory objects (`memberOf`).
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    pub id: Uuid,
    pub display_name: String,
    /// Always `false`: licensd models security groups.
    pub mail_enabled: bool,
    /// Always `true`: licensd models security groups.
    pub security_enabled: bool,
    /// `["DynamicMembership"]` for a dynamic membership group, else empty.
    pub group_types: Vec<String>,
    pub assigned_licenses: Vec<AssignedLicense>,
    pub license_processing_state: LicenseProcessingState,
    /// The rule of a dynamic membership group (null for a group with assigned members).
    #[schema(example = "user.department -eq \"Sales\"")]
    pub membership_rule: Option<String>,
    /// `On` or `Paused` for a dynamic membership group, else null.
    #[schema(example = "On")]
    pub membership_rule_processing_state: Option<String>,
}

/// Graph `passwordProfile`: accepted on user creation for compatibility and not stored
/// (licensd does not sign users in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordProfile {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub force_change_password_next_sign_in: Option<bool>,
    #[serde(default)]
    pub force_change_password_next_sign_in_with_mfa: Option<bool>,
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub odata_type: Option<String>,
}

/// `POST /users`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Defaults to `true`.
    #[serde(default)]
    pub account_enabled: Option<bool>,
    #[schema(pattern = "\\S")]
    pub display_name: String,
    #[schema(schema_with = crate::schemas::user_principal_name)]
    pub user_principal_name: String,
    /// Accepted for compatibility; not stored.
    #[serde(default)]
    pub mail_nickname: Option<String>,
    /// Accepted for compatibility; not stored.
    #[serde(default, deserialize_with = "crate::objects::optional_object")]
    pub password_profile: Option<PasswordProfile>,
    #[serde(default)]
    #[schema(schema_with = crate::schemas::optional_country_code)]
    pub usage_location: Option<String>,
    /// licensd extension: Graph treats `proxyAddresses` as read-only, licensd lets you set them.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::optional_proxy_addresses)]
    pub proxy_addresses: Option<Vec<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub department: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub job_title: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub company_name: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub office_location: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub city: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub state: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub country: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub employee_id: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub employee_type: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_type: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub mail: Option<Option<String>>,
    #[serde(default)]
    pub on_premises_extension_attributes: Option<OnPremisesExtensionAttributes>,
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub odata_type: Option<String>,
}

impl CreateUserRequest {
    /// The directory attributes present in the body, by Graph name (`Some(None)`: null).
    pub fn directory_attributes(&self) -> Vec<(&'static str, Option<&str>)> {
        [
            ("department", &self.department),
            ("jobTitle", &self.job_title),
            ("companyName", &self.company_name),
            ("officeLocation", &self.office_location),
            ("city", &self.city),
            ("state", &self.state),
            ("country", &self.country),
            ("employeeId", &self.employee_id),
            ("employeeType", &self.employee_type),
            ("userType", &self.user_type),
            ("mail", &self.mail),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|value| (name, value.as_deref())))
        .collect()
    }
}

/// `PATCH /users/{id}`: only the properties present change; `usageLocation: null` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub account_enabled: Option<bool>,
    #[serde(default)]
    #[schema(pattern = "\\S")]
    pub display_name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::schemas::optional_user_principal_name)]
    pub user_principal_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = crate::schemas::optional_country_code)]
    pub usage_location: Option<Option<String>>,
    /// licensd extension (read-only in Graph).
    #[serde(default)]
    #[schema(schema_with = crate::schemas::optional_proxy_addresses)]
    pub proxy_addresses: Option<Vec<String>>,
    /// Accepted for compatibility; not stored.
    #[serde(default)]
    pub mail_nickname: Option<String>,
    /// Accepted for compatibility; not stored.
    #[serde(default, deserialize_with = "crate::objects::optional_object")]
    pub password_profile: Option<PasswordProfile>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub department: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub job_title: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub company_name: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub office_location: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub city: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub state: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub country: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub employee_id: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub employee_type: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_type: Option<Option<String>>,
    /// Directory attribute; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub mail: Option<Option<String>>,
    #[serde(default)]
    pub on_premises_extension_attributes: Option<OnPremisesExtensionAttributes>,
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub odata_type: Option<String>,
}

impl UpdateUserRequest {
    /// The directory attributes present in the body, by Graph name (`Some(None)`: null).
    pub fn directory_attributes(&self) -> Vec<(&'static str, Option<&str>)> {
        [
            ("department", &self.department),
            ("jobTitle", &self.job_title),
            ("companyName", &self.company_name),
            ("officeLocation", &self.office_location),
            ("city", &self.city),
            ("state", &self.state),
            ("country", &self.country),
            ("employeeId", &self.employee_id),
            ("employeeType", &self.employee_type),
            ("userType", &self.user_type),
            ("mail", &self.mail),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|value| (name, value.as_deref())))
        .collect()
    }
}

/// `POST /groups`. Graph requires `mailEnabled`, `mailNickname` and `securityEnabled`; licensd
/// accepts them and models security groups only (`securityEnabled: false` or `mailEnabled: true`
/// is refused).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroupRequest {
    #[schema(pattern = "\\S")]
    pub display_name: String,
    #[serde(default)]
    #[schema(schema_with = crate::schemas::optional_false)]
    pub mail_enabled: Option<bool>,
    /// Accepted for compatibility; not stored.
    #[serde(default)]
    pub mail_nickname: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::schemas::optional_true)]
    pub security_enabled: Option<bool>,
    /// Empty, or `["DynamicMembership"]` with a `membershipRule` (no Microsoft 365 groups).
    #[serde(default)]
    #[schema(max_items = 1)]
    pub group_types: Option<Vec<String>>,
    /// The rule of a dynamic membership group (Entra's rule syntax, at most 3072 characters).
    #[serde(default)]
    #[schema(example = "user.department -eq \"Sales\"")]
    pub membership_rule: Option<String>,
    /// `On` (the default) or `Paused`.
    #[serde(default)]
    #[schema(example = "On")]
    pub membership_rule_processing_state: Option<String>,
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub odata_type: Option<String>,
}

/// `PATCH /groups/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateGroupRequest {
    #[serde(default)]
    #[schema(pattern = "\\S")]
    pub display_name: Option<String>,
    /// `["DynamicMembership"]` makes the group dynamic (with a `membershipRule`), `[]` makes it
    /// a group with assigned members again (keeping its members).
    #[serde(default)]
    #[schema(max_items = 1)]
    pub group_types: Option<Vec<String>>,
    /// A new rule for a dynamic membership group.
    #[serde(default)]
    pub membership_rule: Option<String>,
    /// `On` or `Paused`.
    #[serde(default)]
    pub membership_rule_processing_state: Option<String>,
    /// Accepted for compatibility; not stored.
    #[serde(default)]
    pub mail_nickname: Option<String>,
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub odata_type: Option<String>,
}

/// `POST /users/{id}/assignLicense` and `POST /groups/{id}/assignLicense`. Both arrays are
/// required by Graph and may be empty; the server reports which one is missing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignLicenseRequest {
    #[serde(default)]
    #[schema(required = true, nullable = false)]
    pub add_licenses: Option<Vec<AssignedLicense>>,
    #[serde(default)]
    #[schema(required = true, nullable = false)]
    pub remove_licenses: Option<Vec<Uuid>>,
}

/// `POST /groups/{id}/members/$ref`: `{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/{id}"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceRequest {
    #[serde(rename = "@odata.id")]
    #[schema(
        example = "https://graph.microsoft.com/v1.0/directoryObjects/6e7b768e-07e2-4810-8459-485f84f8f204",
        pattern = "(?:^|/)\\s*(?:[^/]*\\('[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}'\\)|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})/*\\s*$"
    )]
    pub odata_id: String,
}

/// Declares an OData collection response type for one item type.
macro_rules! collection_response {
    ($(#[$documentation:meta])* $name:ident, $item:ty) => {
        $(#[$documentation])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        pub struct $name {
            #[serde(rename = "@odata.context")]
            pub odata_context: String,
            /// With `$count=true` (and `ConsistencyLevel: eventual`): the number of matching items.
            #[serde(rename = "@odata.count", default, skip_serializing_if = "Option::is_none")]
            pub odata_count: Option<u64>,
            /// The absolute address of the next page (with `$skiptoken`), when there is one.
            #[serde(rename = "@odata.nextLink", default, skip_serializing_if = "Option::is_none")]
            pub odata_next_link: Option<String>,
            pub value: Vec<$item>,
        }
    };
}

collection_response!(
    /// A page of users.
    UserCollectionResponse,
    User
);
collection_response!(
    /// A page of groups.
    GroupCollectionResponse,
    Group
);
collection_response!(
    /// Products the tenant subscribes to.
    SubscribedSkuCollectionResponse,
    SubscribedSku
);
collection_response!(
    /// A user's products in effect.
    LicenseDetailsCollectionResponse,
    LicenseDetails
);
/// `POST /directoryObjects/getByIds`: up to 1000 ids, optionally limited to some types
/// (`user`, `group`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetByIdsRequest {
    #[schema(example = json!(["6e7b768e-07e2-4810-8459-485f84f8f204"]), schema_with = crate::schemas::guid_texts)]
    pub ids: Vec<String>,
    #[serde(default)]
    #[schema(example = json!(["user", "group"]), schema_with = crate::schemas::optional_directory_object_types)]
    pub types: Option<Vec<String>>,
}

collection_response!(
    /// A page of directory objects: users (with `@odata.type` `#microsoft.graph.user`) or groups
    /// (`#microsoft.graph.group`).
    DirectoryObjectCollectionResponse,
    serde_json::Value
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_bodies_tell_absent_from_null() {
        let absent: UpdateUserRequest = serde_json::from_str("{}").expect("valid");
        assert_eq!(absent.usage_location, None);
        let null: UpdateUserRequest = serde_json::from_str(r#"{"usageLocation": null}"#).expect("valid");
        assert_eq!(null.usage_location, Some(None));
        let set: UpdateUserRequest = serde_json::from_str(r#"{"usageLocation": "NL"}"#).expect("valid");
        assert_eq!(set.usage_location, Some(Some("NL".to_string())));
    }

    #[test]
    fn unknown_properties_are_refused_and_sdk_type_annotations_accepted() {
        let error = serde_json::from_str::<CreateUserRequest>(
            r#"{"displayName": "A", "userPrincipalName": "a@x", "favouriteColour": "red"}"#,
        )
        .expect_err("unknown field");
        assert!(error.to_string().contains("favouriteColour"));
        let accepted: CreateUserRequest = serde_json::from_str(
            r##"{"@odata.type": "#microsoft.graph.user", "displayName": "A", "userPrincipalName": "a@x",
                "passwordProfile": {"password": "x", "forceChangePasswordNextSignIn": true}}"##,
        )
        .expect("the SDK's body");
        assert_eq!(accepted.display_name, "A");
    }

    #[test]
    fn assign_license_arrays_are_optional_in_the_shape_so_the_server_can_name_the_missing_one() {
        let body: AssignLicenseRequest =
            serde_json::from_str(r#"{"removeLicenses": []}"#).expect("valid shape");
        assert_eq!(body.add_licenses, None);
        assert_eq!(body.remove_licenses, Some(Vec::new()));
    }
}
