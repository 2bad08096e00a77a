//! The image types: a tenant's licensing state as plain data with GUIDs, the form a store
//! persists. Kept apart from the conversions to and from an engine ([`crate::image`]) so that
//! what the engine hands back ([`crate::CommandOutcome`]) can carry images without the engine
//! depending on the code that reads it.

use std::sync::Arc;

use crate::model::{
    AssignedLicense, AssignmentSource, AssignmentStatus, CountryCode, LicenseErrorKind, ProxyAddress,
    ServicePlanDefinition, ServicePlanRules, SkuDefinition, TenantSettings, Timestamp, Uuid,
};

/// A service plan with its rules.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePlanImage {
    pub definition: ServicePlanDefinition,
    pub rules: ServicePlanRules,
}

/// A group: properties, licenses (in the order they were added) and the logical time at which it
/// last went from no products to some.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupImage {
    pub id: Uuid,
    pub display_name: String,
    pub licenses: Vec<AssignedLicense>,
    pub licensed_since: u64,
    /// The rule of a dynamic membership group, `None` for a group with assigned members.
    pub dynamic_membership: Option<DynamicMembershipImage>,
}

/// A dynamic group's rule as given and whether it is applied.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicMembershipImage {
    pub rule: String,
    pub processing_state: crate::membership_rule::RuleProcessingState,
}

/// A direct license with the logical time it was assigned.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectLicenseImage {
    pub license: AssignedLicense,
    pub since: u64,
}

/// A membership with the logical time it began.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipImage {
    pub group_id: Uuid,
    pub since: u64,
}

/// A user: properties, intent and license assignment states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserImage {
    pub id: Uuid,
    pub user_principal_name: String,
    pub display_name: String,
    pub usage_location: Option<CountryCode>,
    pub proxy_addresses: Vec<ProxyAddress>,
    pub account_enabled: bool,
    /// Directory attributes (department, job title, ...).
    pub attributes: crate::user_attributes::UserAttributeValues,
    pub direct_licenses: Vec<DirectLicenseImage>,
    pub memberships: Vec<MembershipImage>,
    pub states: Vec<StateImage>,
}

/// Why an assignment failed, with GUIDs (the persisted form of [`crate::Cause`]).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CauseImage {
    Count {
        sku_id: Uuid,
    },
    MutuallyExclusive {
        plan_id: Uuid,
        conflicting_plan_id: Uuid,
        conflicting_sku_id: Uuid,
        conflicting_source: AssignmentSource,
    },
    MissingPrerequisite {
        plan_id: Uuid,
    },
    RemovalBlocked {
        dependent_plan_id: Uuid,
        dependent_sku_id: Uuid,
        dependent_source: Option<AssignmentSource>,
    },
    UsageLocation {
        plan_id: Option<Uuid>,
        location: Option<CountryCode>,
        inherited_from_tenant: bool,
    },
    Uniqueness {
        proxy_address: String,
    },
    BlockedBySibling {
        sku_id: Uuid,
        kind: LicenseErrorKind,
    },
}

impl CauseImage {
    pub fn kind(&self) -> LicenseErrorKind {
        match self {
            CauseImage::Count { .. } => LicenseErrorKind::CountViolation,
            CauseImage::MutuallyExclusive { .. } => LicenseErrorKind::MutuallyExclusiveViolation,
            CauseImage::MissingPrerequisite { .. } | CauseImage::RemovalBlocked { .. } => {
                LicenseErrorKind::DependencyViolation
            }
            CauseImage::UsageLocation { .. } => LicenseErrorKind::ProhibitedInUsageLocationViolation,
            CauseImage::Uniqueness { .. } => LicenseErrorKind::UniquenessViolation,
            CauseImage::BlockedBySibling { kind, .. } => *kind,
        }
    }
}

/// A list of service plan ids, shared: the states of a tenant use a few thousand distinct plan
/// sets, so images of millions of states share one list per set (cloning one is a reference
/// count) and a store can encode each distinct list once. Build one with `.into()` from a
/// `Vec<Uuid>` or collect it from an iterator of ids.
pub type PlanList = Arc<[Uuid]>;

/// A license assignment state with GUIDs (the persisted form of [`crate::StateRecord`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateImage {
    pub sku_id: Uuid,
    pub assigned_by_group: Option<Uuid>,
    pub status: AssignmentStatus,
    pub cause: Option<CauseImage>,
    pub disabled_plans: PlanList,
    /// `None` when the assignment grants nothing.
    pub granted_plans: Option<PlanList>,
    pub since: u64,
    pub last_updated: Timestamp,
}

/// Identifies one license assignment state: a user's product from one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateKey {
    pub user_id: Uuid,
    pub sku_id: Uuid,
    /// `None` for a direct assignment.
    pub assigned_by_group: Option<Uuid>,
}

/// State changes as images, the last change of each state only, ready to persist
/// ([`crate::Engine::changed_states`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangedStates {
    /// States that did not exist before, with their user, in the order of their last change.
    pub inserted: Vec<(Uuid, StateImage)>,
    /// States that existed before and still exist, with their user, in the same order.
    pub updated: Vec<(Uuid, StateImage)>,
    /// Keys of the states that are gone.
    pub deleted: Vec<StateKey>,
}

impl ChangedStates {
    pub fn is_empty(&self) -> bool {
        self.inserted.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }
}

/// A whole tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantImage {
    pub settings: TenantSettings,
    /// The engine's logical clock.
    pub clock: u64,
    pub service_plans: Vec<ServicePlanImage>,
    /// Products with their current seats and status (`prepaid_units`, `capability_status`).
    pub skus: Vec<SkuDefinition>,
    pub groups: Vec<GroupImage>,
    pub users: Vec<UserImage>,
    /// Queued users, in queue order.
    pub queue: Vec<Uuid>,
    /// The opaque attributes of users and groups ([`crate::Command::SetDirectoryAttributes`]),
    /// by object id, in id order.
    pub directory_attributes: Vec<(Uuid, String)>,
    /// Nesting edges between groups, parents in engine order, member groups oldest first.
    pub group_nestings: Vec<crate::nesting::GroupNestingImage>,
}
