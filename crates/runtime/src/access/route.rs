//! [`RouteAccess`]: what a route asks of the caller's role, declared by each surface on its own
//! routes (never guessed from a path). Reads name the part of the tenant they show; changes name
//! the kinds of command they may run, and the command check inside `TenantRuntime::execute` then
//! judges the exact change.

use super::{CommandKind, ReadScope, Role};

/// Every kind of change: routes that run whatever command their form or body names (each is
/// checked again as a command), so any role that may change something gets past the route.
pub const ANY_CHANGE: &[CommandKind] = &[
    CommandKind::Licenses,
    CommandKind::Directory,
    CommandKind::UsageLocation,
    CommandKind::Subscriptions,
    CommandKind::TenantSettings,
];

/// What a route requires of the caller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteAccess {
    /// The route only reads this part of the tenant, whatever its method: GETs, and POSTs that
    /// change nothing (simulations, lookups by ids, searches, signing out).
    Reads(ReadScope),
    /// Reading the route needs `reads`; any other request on it makes a change of one of
    /// `kinds`.
    Changes {
        reads: ReadScope,
        kinds: &'static [CommandKind],
    },
    /// Access tokens: listed, created and revoked by Global Administrators only.
    Tokens,
    /// Any authenticated caller: a batch changes nothing itself, each of its requests is
    /// checked as if sent alone.
    AnyCaller,
}

impl RouteAccess {
    /// Whether `role` may make a request on this route; `changes` says whether the request's
    /// method may change something (anything but a read-only method such as GET).
    pub fn allows(self, role: Role, changes: bool) -> bool {
        match self {
            RouteAccess::Reads(scope) => role.may_read(scope),
            RouteAccess::Changes { reads, .. } if !changes => role.may_read(reads),
            RouteAccess::Changes { kinds, .. } => kinds.iter().any(|kind| role.may_change(*kind)),
            RouteAccess::Tokens => role.may_manage_tokens(),
            RouteAccess::AnyCaller => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LICENSES: RouteAccess = RouteAccess::Changes {
        reads: ReadScope::Licensing,
        kinds: &[CommandKind::Licenses],
    };
    const DIRECTORY: RouteAccess = RouteAccess::Changes {
        reads: ReadScope::Directory,
        kinds: &[CommandKind::Directory],
    };

    #[test]
    fn read_only_roles_may_read_but_change_nothing() {
        for role in [Role::GlobalReader, Role::ReportsReader] {
            assert!(!LICENSES.allows(role, true));
            assert!(!DIRECTORY.allows(role, true));
            assert!(!RouteAccess::Changes {
                reads: ReadScope::Licensing,
                kinds: ANY_CHANGE
            }
            .allows(role, true));
        }
        assert!(DIRECTORY.allows(Role::GlobalReader, false));
        assert!(!DIRECTORY.allows(Role::ReportsReader, false));
        assert!(RouteAccess::Reads(ReadScope::Overview).allows(Role::ReportsReader, true));
    }

    #[test]
    fn tokens_are_for_global_administrators_and_batches_for_anyone() {
        for role in Role::ALL {
            assert_eq!(
                RouteAccess::Tokens.allows(role, false),
                role == Role::GlobalAdministrator
            );
            assert!(RouteAccess::AnyCaller.allows(role, true));
        }
    }
}
