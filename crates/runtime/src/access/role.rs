//! [`Role`]: what a credential may do, modelled on Entra ID's built-in roles, and the two checks
//! every request passes: the route's [`RouteAccess`](super::RouteAccess) (what the route reads
//! and may change, before the handler runs) and [`Role::may_execute`] (by command, inside
//! `TenantRuntime::execute`, so every surface — Graph, admin API, console, SCIM — is bound by
//! the same rules).

use std::fmt;
use std::str::FromStr;

use licensd_engine::Command;

/// A licensd role. The names are Entra's; `ProvisioningAgent` is the identity provider pushing
/// users and groups over SCIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything, including tokens, subscriptions and tenant settings.
    GlobalAdministrator,
    /// Assigns and removes licenses on users and groups, reprocesses, sets usage locations,
    /// reads everything; cannot create users, groups or tokens.
    LicenseAdministrator,
    /// Users, groups, membership, and licenses too (as in Entra); not subscriptions or tokens.
    UserAdministrator,
    /// Reads everything, changes nothing.
    GlobalReader,
    /// Reads the tenant overview and the audit log only.
    ReportsReader,
    /// Creates, updates and deletes users and groups and their membership (SCIM provisioning);
    /// cannot touch licenses.
    ProvisioningAgent,
}

/// What a command changes, which decides who may run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    /// Tenant settings: default usage location, self-healing.
    TenantSettings,
    /// Products, seats, subscription status, service plan rules.
    Subscriptions,
    /// Users, groups and membership.
    Directory,
    /// A user's usage location only (License Administrators may set it, as in Entra).
    UsageLocation,
    /// License assignments and reprocessing.
    Licenses,
}

impl CommandKind {
    pub fn of(command: &Command) -> CommandKind {
        match command {
            Command::SetDefaultUsageLocation { .. }
            | Command::SetSelfHealing { .. }
            | Command::SetTransitiveLicensing { .. } => CommandKind::TenantSettings,
            Command::AddSku(_)
            | Command::AddServicePlanToSku { .. }
            | Command::SetPrepaidUnits { .. }
            | Command::SetCapabilityStatus { .. }
            | Command::SetServicePlanRules { .. } => CommandKind::Subscriptions,
            Command::UpdateUser { changes, .. }
                if changes.usage_location.is_some()
                    && changes.user_principal_name.is_none()
                    && changes.display_name.is_none()
                    && changes.proxy_addresses.is_none()
                    && changes.account_enabled.is_none()
                    && changes.attributes.is_empty() =>
            {
                CommandKind::UsageLocation
            }
            Command::CreateUser(_)
            | Command::UpdateUser { .. }
            | Command::DeleteUser { .. }
            | Command::CreateGroup { .. }
            | Command::UpdateGroup { .. }
            | Command::DeleteGroup { .. }
            | Command::AddGroupMember { .. }
            | Command::RemoveGroupMember { .. }
            | Command::AddGroupMemberGroup { .. }
            | Command::RemoveGroupMemberGroup { .. }
            | Command::SetDirectoryAttributes { .. }
            | Command::SetMembershipRule { .. } => CommandKind::Directory,
            Command::AssignUserLicenses { .. }
            | Command::AssignGroupLicenses { .. }
            | Command::ReprocessUser { .. }
            | Command::ReprocessGroup { .. } => CommandKind::Licenses,
        }
    }

    /// For a refusal: "may not <description>".
    pub fn description(self) -> &'static str {
        match self {
            CommandKind::TenantSettings => "change tenant settings",
            CommandKind::Subscriptions => "change products, seats or service plan rules",
            CommandKind::Directory => "change users, groups or group membership",
            CommandKind::UsageLocation => "change usage locations",
            CommandKind::Licenses => "assign, remove or reprocess licenses",
        }
    }
}

/// Which part of the tenant a read request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadScope {
    /// The tenant overview (API and the console's home page).
    Overview,
    /// The audit log.
    AuditLog,
    /// Users, groups and their membership (what provisioning needs to see).
    Directory,
    /// Access tokens.
    Tokens,
    /// Everything else: products, licenses, states, errors, diagnosis, what-if.
    Licensing,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::GlobalAdministrator,
        Role::LicenseAdministrator,
        Role::UserAdministrator,
        Role::GlobalReader,
        Role::ReportsReader,
        Role::ProvisioningAgent,
    ];

    /// The stable name stored with tokens and accepted on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::GlobalAdministrator => "GlobalAdministrator",
            Role::LicenseAdministrator => "LicenseAdministrator",
            Role::UserAdministrator => "UserAdministrator",
            Role::GlobalReader => "GlobalReader",
            Role::ReportsReader => "ReportsReader",
            Role::ProvisioningAgent => "ProvisioningAgent",
        }
    }

    /// The name shown to people.
    pub fn display_name(self) -> &'static str {
        match self {
            Role::GlobalAdministrator => "Global Administrator",
            Role::LicenseAdministrator => "License Administrator",
            Role::UserAdministrator => "User Administrator",
            Role::GlobalReader => "Global Reader",
            Role::ReportsReader => "Reports Reader",
            Role::ProvisioningAgent => "Provisioning Agent",
        }
    }

    /// Whether the role may run the command.
    pub fn may_execute(self, command: &Command) -> bool {
        self.may_change(CommandKind::of(command))
    }

    /// Whether the role may make changes of this kind.
    pub fn may_change(self, kind: CommandKind) -> bool {
        use CommandKind::*;
        match self {
            Role::GlobalAdministrator => true,
            Role::LicenseAdministrator => matches!(kind, Licenses | UsageLocation),
            Role::UserAdministrator => matches!(kind, Licenses | UsageLocation | Directory),
            Role::ProvisioningAgent => matches!(kind, Directory | UsageLocation),
            Role::GlobalReader | Role::ReportsReader => false,
        }
    }

    /// Whether the role may read this part of the tenant.
    pub fn may_read(self, scope: ReadScope) -> bool {
        match self {
            Role::GlobalAdministrator => true,
            Role::LicenseAdministrator | Role::UserAdministrator | Role::GlobalReader => {
                scope != ReadScope::Tokens
            }
            Role::ReportsReader => matches!(scope, ReadScope::Overview | ReadScope::AuditLog),
            Role::ProvisioningAgent => scope == ReadScope::Directory,
        }
    }

    /// Whether the role may create, list and revoke access tokens.
    pub fn may_manage_tokens(self) -> bool {
        self == Role::GlobalAdministrator
    }

    /// Whether the role can change anything at all (read-only roles are refused any write
    /// before the handler runs).
    pub fn may_write(self) -> bool {
        !matches!(self, Role::GlobalReader | Role::ReportsReader)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The role name was not one of [`Role::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown role '{0}'; expected one of GlobalAdministrator, LicenseAdministrator, UserAdministrator, GlobalReader, ReportsReader, ProvisioningAgent")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    /// Accepts the stable name, the display name, or kebab-case (`license-administrator`),
    /// ignoring case.
    fn from_str(text: &str) -> Result<Role, UnknownRole> {
        let wanted: String = text
            .chars()
            .filter(|character| character.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().to_ascii_lowercase() == wanted)
            .ok_or_else(|| UnknownRole(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use licensd_engine::{UserChanges, Uuid};

    #[test]
    fn names_round_trip_in_every_spelling() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().expect("stable name"), role);
            assert_eq!(role.display_name().parse::<Role>().expect("display name"), role);
        }
        assert_eq!(
            "license-administrator".parse::<Role>().expect("kebab"),
            Role::LicenseAdministrator
        );
        assert!("Owner".parse::<Role>().is_err());
    }

    #[test]
    fn license_administrators_set_usage_locations_but_not_other_user_properties() {
        let location = Command::UpdateUser {
            user_id: Uuid::nil(),
            changes: UserChanges {
                usage_location: Some(None),
                ..Default::default()
            },
        };
        let rename = Command::UpdateUser {
            user_id: Uuid::nil(),
            changes: UserChanges {
                display_name: Some("x".into()),
                usage_location: Some(None),
                ..Default::default()
            },
        };
        assert!(Role::LicenseAdministrator.may_execute(&location));
        assert!(!Role::LicenseAdministrator.may_execute(&rename));
        assert!(Role::UserAdministrator.may_execute(&rename));
        assert!(!Role::GlobalReader.may_execute(&location));
    }

    #[test]
    fn provisioning_never_touches_licenses_and_readers_never_write() {
        let assign = Command::ReprocessUser { user_id: Uuid::nil() };
        assert!(!Role::ProvisioningAgent.may_execute(&assign));
        assert!(Role::LicenseAdministrator.may_execute(&assign));
        for role in [Role::GlobalReader, Role::ReportsReader] {
            assert!(!role.may_write());
            assert!(!role.may_execute(&assign));
        }
        assert!(Role::ReportsReader.may_read(ReadScope::Overview));
        assert!(!Role::ReportsReader.may_read(ReadScope::Licensing));
        assert!(!Role::GlobalReader.may_read(ReadScope::Tokens));
    }
}
