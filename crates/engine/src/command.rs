//! Commands: the only way to change a tenant. Each is validated synchronously by
//! [`crate::Engine::apply`]; background work they cause is queued, never done in place.

use crate::model::{
    AssignedLicense, CapabilityStatus, CountryCode, NewUser, ServicePlanDefinition, ServicePlanRules,
    SkuDefinition, UserChanges, Uuid,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Sets the tenant's default usage location (inherited by users without one).
    SetDefaultUsageLocation {
        usage_location: Option<CountryCode>,
    },
    /// Turns self-healing of errors on or off (see [`crate::TenantSettings::self_healing`]).
    SetSelfHealing {
        enabled: bool,
    },
    /// Subscribes the tenant to a product.
    AddSku(SkuDefinition),
    /// Adds a service plan to an existing product. `disabledPlans` is a deny-list, so the plan
    /// becomes enabled in every existing assignment of the product.
    AddServicePlanToSku {
        sku_id: Uuid,
        service_plan: ServicePlanDefinition,
    },
    /// Sets `prepaidUnits.enabled`. Lowering it below the consumed units takes nothing away.
    SetPrepaidUnits {
        sku_id: Uuid,
        prepaid_units: u32,
    },
    /// Sets the subscription's `capabilityStatus`.
    SetCapabilityStatus {
        sku_id: Uuid,
        capability_status: CapabilityStatus,
    },
    /// Replaces the rules of a service plan. Exclusions are symmetric: the partners' lists change too.
    SetServicePlanRules {
        service_plan_id: Uuid,
        rules: ServicePlanRules,
    },
    CreateUser(NewUser),
    UpdateUser {
        user_id: Uuid,
        changes: UserChanges,
    },
    /// Deletes a user; its units are freed.
    DeleteUser {
        user_id: Uuid,
    },
    CreateGroup {
        group_id: Uuid,
        display_name: String,
    },
    /// Renames a group (no licensing effect).
    UpdateGroup {
        group_id: Uuid,
        display_name: String,
    },
    /// Deletes a group; refused while the group carries licenses.
    DeleteGroup {
        group_id: Uuid,
    },
    AddGroupMember {
        group_id: Uuid,
        user_id: Uuid,
    },
    RemoveGroupMember {
        group_id: Uuid,
        user_id: Uuid,
    },
    /// Graph `user: assignLicense`: checked and applied at once.
    AssignUserLicenses {
        user_id: Uuid,
        add_licenses: Vec<AssignedLicense>,
        remove_licenses: Vec<Uuid>,
    },
    /// Graph `group: assignLicense`: the same-group prerequisite check at once, the rest in the
    /// background for every member. Adding a product the group already has replaces its disabled plans.
    AssignGroupLicenses {
        group_id: Uuid,
        add_licenses: Vec<AssignedLicense>,
        remove_licenses: Vec<Uuid>,
    },
    /// Queues one user for evaluation.
    ReprocessUser {
        user_id: Uuid,
    },
    /// Queues every member of a group (and every user the group still grants licenses to).
    ReprocessGroup {
        group_id: Uuid,
    },
}

impl Command {
    /// A short name of the command, for logs and audit records.
    pub fn name(&self) -> &'static str {
        match self {
            Command::SetDefaultUsageLocation { .. } => "SetDefaultUsageLocation",
            Command::SetSelfHealing { .. } => "SetSelfHealing",
            Command::AddSku(_) => "AddSku",
            Command::AddServicePlanToSku { .. } => "AddServicePlanToSku",
            Command::SetPrepaidUnits { .. } => "SetPrepaidUnits",
            Command::SetCapabilityStatus { .. } => "SetCapabilityStatus",
            Command::SetServicePlanRules { .. } => "SetServicePlanRules",
            Command::CreateUser(_) => "CreateUser",
            Command::UpdateUser { .. } => "UpdateUser",
            Command::DeleteUser { .. } => "DeleteUser",
            Command::CreateGroup { .. } => "CreateGroup",
            Command::UpdateGroup { .. } => "UpdateGroup",
            Command::DeleteGroup { .. } => "DeleteGroup",
            Command::AddGroupMember { .. } => "AddGroupMember",
            Command::RemoveGroupMember { .. } => "RemoveGroupMember",
            Command::AssignUserLicenses { .. } => "AssignUserLicenses",
            Command::AssignGroupLicenses { .. } => "AssignGroupLicenses",
            Command::ReprocessUser { .. } => "ReprocessUser",
            Command::ReprocessGroup { .. } => "ReprocessGroup",
        }
    }
}
