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
    /// Nests a group in a group (Graph `POST /groups/{id}/members/$ref` with a group). Refused
    /// when it would form a cycle (`NestingCycle`) or is already there (`AlreadyNested`).
    AddGroupMemberGroup {
        group_id: Uuid,
        member_group_id: Uuid,
    },
    /// Takes a nested group out of a group (`NotNested` when it is not in it).
    RemoveGroupMemberGroup {
        group_id: Uuid,
        member_group_id: Uuid,
    },
    /// Turns transitive licensing on or off (see [`crate::TenantSettings::transitive_licensing`]);
    /// every user below a nested group is evaluated again.
    SetTransitiveLicensing {
        enabled: bool,
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
    /// Sets (or with `None` clears) the attributes a provisioning client keeps with a user or a
    /// group beyond what licensing models (SCIM's `externalId`, `name`, enterprise extension...).
    /// The engine stores the text as given, never interprets it and queues nobody; it is refused
    /// when `object_id` is neither a user nor a group (`UnknownUser`) or when it is longer than
    /// [`MAX_DIRECTORY_ATTRIBUTES_BYTES`] (`InvalidValue`). Deleting the object deletes them.
    SetDirectoryAttributes {
        object_id: Uuid,
        attributes: Option<String>,
    },
    /// Makes a group a dynamic membership group (`rule: Some`) or a group with assigned members
    /// again (`None`, keeping its members). A rule that is on is applied to every user at once;
    /// a paused one freezes the members. Refused when the rule does not parse
    /// (`InvalidMembershipRule`, with the character) or names missing groups or a cycle.
    SetMembershipRule {
        group_id: Uuid,
        rule: Option<String>,
        processing_state: crate::membership_rule::RuleProcessingState,
    },
}

/// The longest text [`Command::SetDirectoryAttributes`] accepts, in bytes.
pub const MAX_DIRECTORY_ATTRIBUTES_BYTES: usize = 64 * 1024;

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
            Command::AddGroupMemberGroup { .. } => "AddGroupMemberGroup",
            Command::RemoveGroupMemberGroup { .. } => "RemoveGroupMemberGroup",
            Command::SetTransitiveLicensing { .. } => "SetTransitiveLicensing",
            Command::AssignUserLicenses { .. } => "AssignUserLicenses",
            Command::AssignGroupLicenses { .. } => "AssignGroupLicenses",
            Command::ReprocessUser { .. } => "ReprocessUser",
            Command::ReprocessGroup { .. } => "ReprocessGroup",
            Command::SetDirectoryAttributes { .. } => "SetDirectoryAttributes",
            Command::SetMembershipRule { .. } => "SetMembershipRule",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TenantSettings, Timestamp};
    use crate::{CommandError, Engine};

    #[test]
    fn directory_attributes_are_kept_cleared_refused_and_deleted_with_their_object() {
        let mut engine = Engine::new(TenantSettings::new(Uuid::from_u128(1), "Contoso"));
        let (user, group) = (Uuid::from_u128(10), Uuid::from_u128(20));
        let at = Timestamp(0);
        engine
            .apply(Command::CreateUser(NewUser::new(user, "a@contoso.com")), at)
            .expect("user");
        engine
            .apply(
                Command::CreateGroup {
                    group_id: group,
                    display_name: "Sales".to_string(),
                },
                at,
            )
            .expect("group");
        for object_id in [user, group] {
            let outcome = engine
                .apply(
                    Command::SetDirectoryAttributes {
                        object_id,
                        attributes: Some(format!("{{\"externalId\":\"{object_id}\"}}")),
                    },
                    at,
                )
                .expect("set");
            assert_eq!(outcome.touched.directory_attributes, [object_id]);
            assert_eq!(outcome.queued_users, 0, "no licensing effect");
        }
        assert_eq!(
            engine.directory_attributes(user),
            Some(format!("{{\"externalId\":\"{user}\"}}").as_str())
        );
        let image = engine.to_image();
        assert_eq!(image.directory_attributes.len(), 2);
        let restored = Engine::from_image(image).expect("restored");
        assert_eq!(
            restored.directory_attributes(group),
            engine.directory_attributes(group)
        );

        let unknown = Uuid::from_u128(99);
        assert_eq!(
            engine.apply(
                Command::SetDirectoryAttributes {
                    object_id: unknown,
                    attributes: Some(String::new())
                },
                at
            ),
            Err(CommandError::UnknownUser { user_id: unknown })
        );
        let too_long = "x".repeat(MAX_DIRECTORY_ATTRIBUTES_BYTES + 1);
        assert!(matches!(
            engine.apply(
                Command::SetDirectoryAttributes {
                    object_id: user,
                    attributes: Some(too_long)
                },
                at
            ),
            Err(CommandError::InvalidValue { .. })
        ));
        assert!(
            engine.directory_attributes(user).is_some(),
            "a refusal changes nothing"
        );

        engine
            .apply(
                Command::SetDirectoryAttributes {
                    object_id: group,
                    attributes: None,
                },
                at,
            )
            .expect("clear");
        assert_eq!(engine.directory_attributes(group), None);
        engine
            .apply(Command::DeleteUser { user_id: user }, at)
            .expect("delete");
        assert_eq!(engine.directory_attributes(user), None);
        assert!(engine.to_image().directory_attributes.is_empty());
    }
}
