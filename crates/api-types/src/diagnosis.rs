//! Wire shapes of diagnosis, fixes, what-if and the tenant advisor (`/licensd/v1/users/{id}/diagnosis`,
//! `/licensd/v1/groups/{id}/diagnosis`, `/licensd/v1/whatif`, `/licensd/v1/changes`,
//! `/licensd/v1/advisor`): changes an administrator can simulate or apply, the predicted effect
//! of a list of changes, and explained errors with their fixes.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::admin::ServicePlan;
use crate::graph::AssignedLicense;

/// Lets a body tell "absent" (`None`) from "set to null" (`Some(None)`).
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// One change to the tenant, as `whatif` simulates it and `changes` applies it. `type` says
/// which; each change is exactly one licensd command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Change {
    /// Add a user to a group.
    #[serde(rename_all = "camelCase")]
    AddGroupMember { group_id: Uuid, user_id: Uuid },
    /// Remove a user from a group.
    #[serde(rename_all = "camelCase")]
    RemoveGroupMember { group_id: Uuid, user_id: Uuid },
    /// Graph `user: assignLicense`.
    #[serde(rename_all = "camelCase")]
    AssignUserLicenses {
        user_id: Uuid,
        #[serde(default)]
        add_licenses: Vec<AssignedLicense>,
        #[serde(default)]
        remove_licenses: Vec<Uuid>,
    },
    /// Graph `group: assignLicense` (adding a product the group has replaces its disabled plans).
    #[serde(rename_all = "camelCase")]
    AssignGroupLicenses {
        group_id: Uuid,
        #[serde(default)]
        add_licenses: Vec<AssignedLicense>,
        #[serde(default)]
        remove_licenses: Vec<Uuid>,
    },
    /// Set a product's purchased seats.
    #[serde(rename_all = "camelCase")]
    SetPrepaidUnits {
        sku_id: Uuid,
        #[serde(deserialize_with = "crate::integers::u32_whole")]
        prepaid_units: u32,
    },
    /// Change a user's usage location (`null` clears it), proxy addresses or account status.
    #[serde(rename_all = "camelCase")]
    UpdateUser {
        user_id: Uuid,
        #[serde(
            default,
            deserialize_with = "present_or_null",
            skip_serializing_if = "Option::is_none"
        )]
        #[schema(schema_with = crate::schemas::optional_country_code)]
        usage_location: Option<Option<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(schema_with = crate::schemas::optional_proxy_addresses)]
        proxy_addresses: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account_enabled: Option<bool>,
    },
    /// Delete a user (its seats are freed).
    #[serde(rename_all = "camelCase")]
    DeleteUser { user_id: Uuid },
    /// Set the tenant's default usage location (`null` removes it).
    #[serde(rename_all = "camelCase")]
    SetDefaultUsageLocation {
        #[schema(schema_with = crate::schemas::optional_country_code)]
        usage_location: Option<String>,
    },
    /// Queue one user for evaluation.
    #[serde(rename_all = "camelCase")]
    ReprocessUser { user_id: Uuid },
    /// Queue every member of a group.
    #[serde(rename_all = "camelCase")]
    ReprocessGroup { group_id: Uuid },
    /// Nest a group in a group (refused when it would form a cycle).
    #[serde(rename_all = "camelCase")]
    AddGroupMemberGroup { group_id: Uuid, member_group_id: Uuid },
    /// Take a nested group out of a group.
    #[serde(rename_all = "camelCase")]
    RemoveGroupMemberGroup { group_id: Uuid, member_group_id: Uuid },
    /// Turn transitive licensing through nested groups on or off.
    #[serde(rename_all = "camelCase")]
    SetTransitiveLicensing { enabled: bool },
    /// Set a group's membership rule (`null` makes it a group with assigned members again)
    /// and its processing state (`On`, the default, or `Paused`).
    #[serde(rename_all = "camelCase")]
    SetMembershipRule {
        group_id: Uuid,
        membership_rule: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        membership_rule_processing_state: Option<String>,
    },
}

/// `POST /licensd/v1/whatif`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WhatIfRequest {
    #[schema(min_items = 1)]
    pub changes: Vec<Change>,
    /// Users listed with their states (default 100, at most 10,000); counts cover everyone.
    #[serde(default, deserialize_with = "crate::integers::optional_u32_whole")]
    #[schema(maximum = 10_000)]
    pub max_listed_users: Option<u32>,
}

/// `POST /licensd/v1/changes`: changes applied in order, each in its own transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyChangesRequest {
    #[schema(min_items = 1)]
    pub changes: Vec<Change>,
}

/// What `POST /licensd/v1/changes` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyChangesResponse {
    pub applied_changes: u64,
    /// Users queued for background evaluation by the changes.
    pub queued_users: u64,
}

/// An assignment's error: which product, which source, which rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PredictedError {
    pub sku_id: Uuid,
    /// `null` for a direct assignment.
    pub assigned_by_group: Option<Uuid>,
    #[schema(example = "CountViolation")]
    pub error: String,
}

/// A license assignment state, as predicted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PredictedLicenseState {
    pub sku_id: Uuid,
    pub assigned_by_group: Option<Uuid>,
    #[schema(example = "Active")]
    pub state: String,
    #[schema(example = "None")]
    pub error: String,
    pub disabled_plans: Vec<Uuid>,
    pub granted_plans: Vec<Uuid>,
}

/// A user whose states would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPrediction {
    pub user_id: Uuid,
    pub user_principal_name: String,
    /// `Fixed`, `NewlyBroken`, `NewError`, `StillInError` or `Changed`.
    #[schema(example = "Fixed")]
    pub effect: String,
    pub errors_before: Vec<PredictedError>,
    pub errors_after: Vec<PredictedError>,
    pub seats_consumed: Vec<Uuid>,
    pub seats_freed: Vec<Uuid>,
    pub states_before: Vec<PredictedLicenseState>,
    pub states_after: Vec<PredictedLicenseState>,
    pub deleted: bool,
}

/// A product's seats before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkuPrediction {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub prepaid_units_before: u32,
    pub prepaid_units_after: u32,
    pub consumed_units_before: u32,
    pub consumed_units_after: u32,
    pub waiting_users_before: u64,
    pub waiting_users_after: u64,
    pub users_consuming: u64,
    pub users_freeing: u64,
    pub fixed_users: u64,
    pub newly_broken_users: u64,
}

/// A group's users in error before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupPrediction {
    pub group_id: Uuid,
    pub display_name: String,
    pub users_in_error_before: u64,
    pub users_in_error_after: u64,
    pub fixed_users: u64,
    pub newly_broken_users: u64,
}

/// The predicted effect of a list of changes; nothing was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfResponse {
    pub changes: u64,
    pub evaluated_users: u64,
    pub changed_users: u64,
    pub fixed_users: u64,
    pub newly_broken_users: u64,
    /// Users still in error who would get an error they did not have.
    pub new_error_users: u64,
    pub users_with_errors_before: u64,
    pub users_with_errors_after: u64,
    /// Fixed and newly broken users first.
    pub users: Vec<UserPrediction>,
    pub users_truncated: bool,
    pub skus: Vec<SkuPrediction>,
    pub groups: Vec<GroupPrediction>,
    /// Dynamic groups whose members would change.
    #[serde(default)]
    pub membership_changes: Vec<MembershipChangePrediction>,
}

/// Who would join and leave a dynamic group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembershipChangePrediction {
    pub group_id: Uuid,
    pub display_name: String,
    pub joined: u64,
    pub left: u64,
    /// The first of the users who would join (as many as the users listed).
    pub joined_users: Vec<Uuid>,
    pub left_users: Vec<Uuid>,
}

/// An assignment named in a diagnosis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedAssignment {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub assigned_by_group: Option<Uuid>,
    pub group_display_name: Option<String>,
}

/// A user named in a diagnosis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedUser {
    pub id: Uuid,
    pub user_principal_name: String,
}

/// A product's seat figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatFigures {
    pub prepaid_units: u32,
    pub consumed_units: u32,
    pub waiting_users: u64,
}

/// What an error involves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Involvement {
    /// `seats`, `mutuallyExclusiveWith`, `requiresAnyOf`, `unavailableIn`,
    /// `needsUniqueProxyAddress` or `allProductsOfAGroup`.
    #[schema(example = "mutuallyExclusiveWith")]
    pub rule: String,
    /// The plans of this assignment the rule is about.
    pub plans: Vec<ServicePlan>,
    /// The plans elsewhere the rule is about (conflicting, required or dependent plans).
    pub other_plans: Vec<ServicePlan>,
    pub other_assignment: Option<InvolvedAssignment>,
    pub other_users: Vec<InvolvedUser>,
    pub proxy_address: Option<String>,
    pub usage_location: Option<String>,
    pub usage_location_inherited_from_tenant: bool,
    pub seats: Option<SeatFigures>,
    /// For `mutuallyExclusiveWith`: every conflicting pair of plans between this assignment and
    /// what the user has, each with the assignment that enables the other plan, so that one
    /// change can resolve them all. Absent for other rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<PlanConflict>,
}

/// One pair of mutually exclusive plans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanConflict {
    /// The plan of the failing assignment.
    pub service_plan: ServicePlan,
    /// The plan it cannot be enabled with.
    pub conflicting_service_plan: ServicePlan,
    /// The product that enables the conflicting plan.
    pub conflicting_sku_id: Uuid,
    /// The group that assigns it; `null` for a direct assignment.
    pub conflicting_assigned_by_group: Option<Uuid>,
}

/// A proposed fix: the changes and their predicted effect. Apply it with
/// `POST /licensd/v1/changes` and the same `changes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fix {
    #[schema(example = "RemoveConflictingDirectLicense")]
    pub kind: String,
    pub description: String,
    /// For a removed direct license: it is redundant with the failing assignment (E1 under E3).
    pub redundant_license: bool,
    pub changes: Vec<Change>,
    /// Diagnosed users the changes cover.
    pub covered_users: u64,
    /// Diagnosed users the prediction shows cleared; `null` when not predicted.
    pub cleared_users: Option<u64>,
    /// `null` when not predicted (simulate it with `POST /licensd/v1/whatif`).
    pub prediction: Option<WhatIfResponse>,
}

/// One error of a user, explained, with fixes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub assigned_by_group: Option<Uuid>,
    pub group_display_name: Option<String>,
    /// For a state held through nested groups (transitive licensing): how the user reaches
    /// the group, "via Platform → Engineering → All Staff". Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licensed_through: Option<String>,
    pub state: String,
    pub error: String,
    pub explanation: String,
    pub involvement: Involvement,
    pub fixes: Vec<Fix>,
}

/// `GET /licensd/v1/users/{id}/diagnosis`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDiagnosis {
    pub id: Uuid,
    pub user_principal_name: String,
    pub display_name: String,
    pub account_enabled: bool,
    pub usage_location: Option<String>,
    pub effective_usage_location: Option<String>,
    /// The user waits for background processing: its states may still change by themselves.
    pub queued: bool,
    /// Why self-healing re-queued the user, while it waits to be evaluated.
    #[serde(default)]
    pub pending_self_healing: Option<RequeueReason>,
    /// The user's last automatic re-evaluation (self-healing), if any since the server started.
    #[serde(default)]
    pub last_self_healing: Option<SelfHealing>,
    pub problems: Vec<Problem>,
}

/// Why self-healing re-queued a user in error: the cause that went away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequeueReason {
    /// `SeatsAvailable`, `DirectLicenseRemoved`, `GroupAssignmentChanged`,
    /// `UsageLocationChanged`, `ProxyAddressesChanged` or `ProxyAddressFreed`.
    pub reason: String,
    /// In plain language, completing "re-evaluated automatically because …".
    pub description: String,
    /// The product whose seats became available or whose direct license was removed.
    pub sku_id: Option<Uuid>,
    /// The group whose assignment changed.
    pub group_id: Option<Uuid>,
}

/// A user's last automatic re-evaluation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfHealing {
    /// When the user was evaluated (`2024-05-01T09:30:00Z`).
    pub evaluated_date_time: String,
    #[serde(flatten)]
    pub reason: RequeueReason,
    /// Whether the user had no error left afterwards.
    pub errors_cleared: bool,
}

/// The members of a group in error for one cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CauseGroup {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub error: String,
    pub explanation: String,
    pub involvement: Involvement,
    pub user_count: u64,
    pub users: Vec<InvolvedUser>,
    pub fixes: Vec<Fix>,
}

/// `GET /licensd/v1/groups/{id}/diagnosis`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupDiagnosis {
    pub id: Uuid,
    pub display_name: String,
    pub users_in_error: u64,
    /// The most users first.
    pub causes: Vec<CauseGroup>,
}

/// A direct assignment a group makes unnecessary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedundantDirectAssignment {
    pub user: InvolvedUser,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    /// `SameProductFromGroup` or `SupersededByGroupProduct`.
    pub reason: String,
    pub group_id: Uuid,
    pub group_display_name: String,
    /// The group's product that supersedes it (for `SupersededByGroupProduct`).
    pub superseding_sku_id: Option<Uuid>,
    pub frees_seat: bool,
    pub changes: Vec<Change>,
}

/// A disabled account that holds seats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisabledAccountSeats {
    pub user: InvolvedUser,
    pub sku_ids: Vec<Uuid>,
    pub sku_part_numbers: Vec<String>,
    pub changes: Vec<Change>,
}

/// A group whose add-on fails for members without the prerequisite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOnRisk {
    pub group_id: Uuid,
    pub display_name: String,
    pub add_on_plan: ServicePlan,
    pub add_on_sku_id: Uuid,
    pub prerequisite_plans: Vec<ServicePlan>,
    pub members_without_own_prerequisite: u64,
    pub members_at_risk: u64,
    pub reason: String,
}

/// A product whose free seats do not cover the known demand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductExhaustion {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub prepaid_units: u32,
    pub consumed_units: u32,
    pub available_units: u32,
    pub waiting_users: u64,
    pub queued_demand: u64,
    pub shortfall: u32,
}

/// Seats that acting on the findings would free.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReclaimableSeats {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub seats: u32,
}

/// `GET /licensd/v1/advisor`: money and risk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvisorReport {
    pub redundant_direct_assignments: Vec<RedundantDirectAssignment>,
    pub disabled_accounts_holding_seats: Vec<DisabledAccountSeats>,
    pub add_on_risks: Vec<AddOnRisk>,
    pub products_near_exhaustion: Vec<ProductExhaustion>,
    pub reclaimable_seats: Vec<ReclaimableSeats>,
    /// What freeing the reclaimable seats saves per month, per currency, at the products'
    /// prices (`/licensd/v1/skus/{skuId}/price`); seats of unpriced products are not counted.
    #[serde(default)]
    pub money_saved_per_month: Vec<crate::spend::Amount>,
}
