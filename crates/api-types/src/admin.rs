//! licensd's own administration shapes, served under `/licensd/v1`: the bundled product catalog,
//! products with their seats, service plans with their rules, tenant settings, the tenant
//! overview and explained license states. These are not Graph shapes and do not pretend to be.

use std::collections::BTreeMap;

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

/// A service plan: its id, technical name and display name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlan {
    pub service_plan_id: Uuid,
    #[schema(example = "EXCHANGE_S_ENTERPRISE")]
    pub service_plan_name: String,
    #[schema(example = "Exchange Online (Plan 2)")]
    pub display_name: String,
}

/// A product of Microsoft's catalog bundled with licensd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogProduct {
    pub sku_id: Uuid,
    #[schema(example = "ENTERPRISEPACK")]
    pub sku_part_number: String,
    #[schema(example = "Office 365 E3")]
    pub display_name: String,
    pub service_plans: Vec<ServicePlan>,
}

/// The bundled catalog's products (filtered by the `search` parameter, if any).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatalogProductList {
    pub value: Vec<CatalogProduct>,
}

/// One product to subscribe to from the catalog, named by `skuId` or `skuPartNumber`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportProduct {
    #[serde(default)]
    pub sku_id: Option<Uuid>,
    #[serde(default)]
    #[schema(example = "ENTERPRISEPACK")]
    pub sku_part_number: Option<String>,
    /// Purchased seats.
    #[schema(example = 25)]
    #[serde(deserialize_with = "crate::integers::u32_whole")]
    pub prepaid_units: u32,
}

/// `POST /licensd/v1/catalog/import`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportCatalogRequest {
    pub products: Vec<ImportProduct>,
    /// Give the tenant's plans the catalog's default rules (exclusions, add-on prerequisites)
    /// afterwards. Defaults to `true`.
    #[serde(default)]
    pub apply_default_rules: Option<bool>,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportCatalogResponse {
    pub products: Vec<Product>,
    /// Service plans whose rules were set from the catalog's defaults.
    pub service_plans_with_default_rules: Vec<Uuid>,
}

/// A service plan of a new product. Without `servicePlanId`, a new GUID is generated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewServicePlan {
    #[serde(default)]
    pub service_plan_id: Option<Uuid>,
    pub service_plan_name: String,
    /// Defaults to the service plan name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `POST /licensd/v1/skus`: a product that is not in the catalog (or a custom one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewProductRequest {
    /// Without it, a new GUID is generated.
    #[serde(default)]
    pub sku_id: Option<Uuid>,
    #[schema(pattern = "\\S")]
    pub sku_part_number: String,
    /// Defaults to the part number.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `User` (the default) or `Company`.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::optional_applies_to)]
    pub applies_to: Option<String>,
    pub service_plans: Vec<NewServicePlan>,
    #[serde(deserialize_with = "crate::integers::u32_whole")]
    pub prepaid_units: u32,
    /// `Enabled` (the default), `Warning`, `Suspended`, `LockedOut` or `Deleted`.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::optional_capability_status)]
    pub capability_status: Option<String>,
}

/// `PATCH /licensd/v1/skus/{skuId}`: buy or reduce seats, change the subscription's status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProductRequest {
    /// The new number of purchased seats. Lowering it below consumption takes nothing away.
    #[serde(default, deserialize_with = "crate::integers::optional_u32_whole")]
    pub prepaid_units: Option<u32>,
    #[serde(default)]
    #[schema(schema_with = crate::schemas::optional_capability_status)]
    pub capability_status: Option<String>,
}

/// `POST /licensd/v1/skus/{skuId}/servicePlans`: a plan added to a product is enabled in every
/// existing assignment of it (disabled plans are a deny-list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddServicePlanRequest {
    #[serde(default)]
    pub service_plan_id: Option<Uuid>,
    pub service_plan_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A product with its seats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub display_name: String,
    pub capability_status: String,
    /// Purchased seats.
    pub prepaid_units: u32,
    /// Seats in use: one per user with at least one assignment of the product in effect.
    pub consumed_units: u32,
    /// Purchased minus consumed, never below zero.
    pub available_units: u32,
    /// Consumed above purchased (after seats were lowered): nothing is taken away.
    pub over_allocated_units: u32,
    /// Users waiting for a seat (their own error on this product is `CountViolation`).
    pub waiting_users: u64,
    pub service_plans: Vec<ServicePlan>,
}

/// Every product of the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductList {
    pub value: Vec<Product>,
}

/// An assignment of a product in error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentError {
    /// `null` for a direct assignment.
    pub assigned_by_group: Option<Uuid>,
    #[schema(example = "CountViolation")]
    pub error: String,
}

/// A user holding or wanting a product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicensedUser {
    pub user_id: Uuid,
    pub user_principal_name: String,
    /// Whether a direct assignment is in effect.
    pub direct: bool,
    /// Groups through which the product is in effect.
    pub via_groups: Vec<Uuid>,
    pub errors: Vec<AssignmentError>,
}

/// A product with its seats, who holds it, and which groups assign it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductDetails {
    #[serde(flatten)]
    pub product: Product,
    pub licensed_users: Vec<LicensedUser>,
    pub licensed_groups: Vec<Uuid>,
}

/// A service plan's rules (licensd's model; Graph has no equivalent). `PUT` replaces them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePlanRules {
    /// Plans that can never be enabled together with this one on a user (kept symmetric).
    #[serde(default)]
    pub mutually_exclusive_with: Vec<Uuid>,
    /// Prerequisites: at least one must be enabled wherever this plan is.
    #[serde(default)]
    pub requires_any_of: Vec<Uuid>,
    /// Usage locations (ISO 3166-1 alpha-2) where the plan may not be assigned.
    #[serde(default)]
    #[schema(example = json!(["CN"]), schema_with = crate::schemas::country_codes)]
    pub unavailable_in: Vec<String>,
    /// Mailbox plans: the user's proxy addresses must be unique in the tenant.
    #[serde(default)]
    pub needs_unique_proxy_address: bool,
}

/// A service plan with its rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlanWithRules {
    #[serde(flatten)]
    pub service_plan: ServicePlan,
    pub rules: ServicePlanRules,
}

/// Every service plan the tenant knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServicePlanList {
    pub value: Vec<ServicePlanWithRules>,
}

/// What applying the catalog's default rules did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultRulesResponse {
    pub service_plans_with_default_rules: Vec<Uuid>,
}

/// Tenant-wide settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSettings {
    pub tenant_id: Uuid,
    pub display_name: String,
    /// Users without a usage location inherit this one for group licensing.
    #[schema(example = "US")]
    pub default_usage_location: Option<String>,
    /// When on (the default), errors resolve by themselves once their cause goes away.
    pub self_healing: bool,
    /// When on, members of groups nested in a licensed group receive its products too; off (the
    /// default, Entra ID's behaviour) only direct members do.
    #[serde(default)]
    pub transitive_licensing: bool,
}

/// `PATCH /licensd/v1/settings`: only the properties present change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSettingsRequest {
    /// `null` removes the default.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = crate::schemas::optional_country_code)]
    pub default_usage_location: Option<Option<String>>,
    #[serde(default)]
    pub self_healing: Option<bool>,
    /// Turns transitive licensing through nested groups on or off; the tenant is reprocessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transitive_licensing: Option<bool>,
}

/// A group whose members have license errors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupNeedingAttention {
    pub id: Uuid,
    pub display_name: String,
    pub members_with_license_errors: u64,
    pub license_processing_state: String,
}

/// The tenant at a glance: what needs attention and the seats of every product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantOverview {
    pub users: u64,
    pub groups: u64,
    pub licensed_groups: u64,
    pub groups_with_errors: u64,
    pub users_with_errors: u64,
    /// Users waiting for background processing.
    pub queued_users: u64,
    /// License assignment states in error, by Graph error code.
    pub errors_by_kind: BTreeMap<String, u64>,
    pub groups_needing_attention: Vec<GroupNeedingAttention>,
    pub products: Vec<Product>,
}

/// A license assignment state with licensd's explanation of its error and the ways to resolve it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedLicenseState {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub assigned_by_group: Option<Uuid>,
    pub state: String,
    pub error: String,
    pub disabled_plans: Vec<Uuid>,
    /// Plans in effect through this assignment.
    pub granted_plans: Vec<Uuid>,
    pub last_updated_date_time: Option<String>,
    /// What went wrong and how to resolve it; `null` without an error.
    pub explanation: Option<String>,
    /// For a state the user holds through nested groups (transitive licensing): the groups from
    /// the user's own group to the one that carries the license, as ids and as text
    /// ("via Engineering → All Staff"). Absent for direct members and direct assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licensed_through: Option<LicensingPath>,
}

/// How a user reaches the group that licenses it through nested groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicensingPath {
    /// Group ids, from the user's own group to the group that carries the license.
    pub group_ids: Vec<Uuid>,
    /// The same path in words: "via Engineering → All Staff".
    pub text: String,
}

/// A user's explained license states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExplainedLicenseStateList {
    pub value: Vec<ExplainedLicenseState>,
}
