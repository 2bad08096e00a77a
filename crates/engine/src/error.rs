//! Typed errors: the synchronous refusals of commands ([`CommandError`]), and the structured
//! details of errors recorded on users by background evaluation ([`LicenseErrorDetail`]).

use crate::model::{AssignmentSource, CountryCode, LicenseErrorKind, Uuid};

/// A service plan named in an error: its id, its technical name and its display name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlanName {
    pub service_plan_id: Uuid,
    pub service_plan_name: String,
    pub display_name: String,
}

impl std::fmt::Display for PlanName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display_name)
    }
}

fn join_names(plans: &[PlanName], separator: &str) -> String {
    plans
        .iter()
        .map(|plan| plan.display_name.as_str())
        .collect::<Vec<_>>()
        .join(separator)
}

/// Why a command was refused. Nothing changes when a command returns an error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("user {user_id} does not exist")]
    UnknownUser { user_id: Uuid },
    #[error("group {group_id} does not exist")]
    UnknownGroup { group_id: Uuid },
    #[error("product (SKU) {sku_id} does not exist in this tenant")]
    UnknownSku { sku_id: Uuid },
    #[error("service plan {service_plan_id} does not exist in this tenant")]
    UnknownServicePlan { service_plan_id: Uuid },
    #[error("a user with id {user_id} already exists")]
    DuplicateUserId { user_id: Uuid },
    #[error("another user already has the userPrincipalName {user_principal_name}")]
    DuplicateUserPrincipalName { user_principal_name: String },
    #[error("a group with id {group_id} already exists")]
    DuplicateGroupId { group_id: Uuid },
    #[error("a product with skuId {sku_id} already exists")]
    DuplicateSkuId { sku_id: Uuid },
    #[error("service plan {service_plan_id} is listed twice in product {sku_part_number}")]
    DuplicateServicePlanInSku {
        sku_part_number: String,
        service_plan_id: Uuid,
    },
    #[error("the tenant would know more than {limit} service plans")]
    TooManyServicePlans { limit: usize },
    #[error("invalid usage location {value:?}: expected an ISO 3166-1 alpha-2 country code such as US")]
    InvalidUsageLocation { value: String },
    #[error("invalid proxy address {value:?}: {reason}")]
    InvalidProxyAddress { value: String, reason: String },
    #[error("invalid userPrincipalName {value:?}: {reason}")]
    InvalidUserPrincipalName { value: String, reason: String },
    #[error("invalid {field}: {reason}")]
    InvalidValue { field: &'static str, reason: String },
    #[error("invalid rule for service plan {plan}: {reason}")]
    InvalidPlanRule { plan: PlanName, reason: String },
    #[error("Invalid membershipRule at character {position}: {message}")]
    InvalidMembershipRule { position: usize, message: String },
    #[error("Group {group_id} is a dynamic membership group: its members follow its membershipRule and cannot be added or removed by hand.")]
    DynamicMembershipGroup { group_id: Uuid },
    #[error("user {user_id} is already a member of group {group_id}")]
    AlreadyMember { group_id: Uuid, user_id: Uuid },
    #[error("user {user_id} is not a member of group {group_id}")]
    NotAMember { group_id: Uuid, user_id: Uuid },
    #[error("group {member_group_id} is already a member of group {group_id}")]
    AlreadyNested { group_id: Uuid, member_group_id: Uuid },
    #[error("group {member_group_id} is not a member of group {group_id}")]
    NotNested { group_id: Uuid, member_group_id: Uuid },
    #[error("group {member_group_id} cannot become a member of group {group_id}: group {group_id} is {member_group_id} or is already nested in it, and the membership would form a cycle")]
    NestingCycle { group_id: Uuid, member_group_id: Uuid },
    #[error("License {sku_part_number} cannot be assigned to a user.")]
    SkuNotAssignableToUsers { sku_id: Uuid, sku_part_number: String },
    #[error("service plan {service_plan_id} is not part of product {sku_part_number}, so it cannot be disabled in it")]
    DisabledPlanNotInSku {
        sku_id: Uuid,
        sku_part_number: String,
        service_plan_id: Uuid,
    },
    #[error("product {sku_id} is listed more than once in the request")]
    DuplicateLicenseInRequest { sku_id: Uuid },
    #[error("product {sku_id} is both added and removed in the same request")]
    LicenseAddedAndRemoved { sku_id: Uuid },
    #[error("No license changes provided. At least one license to add or remove must be specified.")]
    NoLicenseChanges,
    #[error(
        "User does not have a corresponding license: product {sku_part_number} is not assigned to {target}"
    )]
    LicenseNotAssigned {
        sku_id: Uuid,
        sku_part_number: String,
        target: String,
    },
    #[error("User license is inherited from group membership and cannot be removed directly from the user (product {sku_part_number}, user {user_id})")]
    LicenseInheritedFromGroup {
        user_id: Uuid,
        sku_id: Uuid,
        sku_part_number: String,
    },
    #[error("License assignment cannot be done for user with invalid usage location. User {user_id} has no usage location; set one before assigning {sku_part_number} directly.")]
    UsageLocationRequired { user_id: Uuid, sku_part_number: String },
    #[error("License assignment cannot be done for user with invalid usage location. Service plan {plan} of {sku_part_number} is not available in {usage_location} (user {user_id}).")]
    ProhibitedInUsageLocation {
        user_id: Uuid,
        sku_id: Uuid,
        sku_part_number: String,
        plan: PlanName,
        usage_location: CountryCode,
    },
    #[error("License assignment failed because service plans {plan}, {conflicting_plan} are mutually exclusive. (user {user_id}, product {sku_part_number})")]
    MutuallyExclusive {
        user_id: Uuid,
        sku_id: Uuid,
        sku_part_number: String,
        plan: PlanName,
        conflicting_plan: PlanName,
    },
    #[error("License assignment failed because service plan {} depends on the service plan(s) {}. (user {user_id}, product {sku_part_number})", .plan, join_names(.required_plans, ", "))]
    Dependency {
        user_id: Uuid,
        sku_id: Uuid,
        sku_part_number: String,
        plan: PlanName,
        required_plans: Vec<PlanName>,
    },
    #[error("Not enough licenses: product {sku_part_number} has {prepaid_units} purchased and {consumed_units} assigned, so none is available for user {user_id}.")]
    NotEnoughLicenses {
        user_id: Uuid,
        sku_id: Uuid,
        sku_part_number: String,
        prepaid_units: u32,
        consumed_units: u32,
    },
    #[error("Proxy address is already being used: {proxy_address} of user {user_id} is also held by user {other_user_id}, and {sku_part_number} contains a mailbox plan")]
    ProxyAddressInUse {
        user_id: Uuid,
        sku_id: Uuid,
        sku_part_number: String,
        proxy_address: String,
        other_user_id: Uuid,
    },
    #[error("License operation failed. Make sure that the group has necessary services before adding or removing a dependent service. The service {} requires {} to be enabled as well.", .service, join_names(.requires_any_of, " or "))]
    GroupPrerequisiteMissing {
        group_id: Uuid,
        service: PlanName,
        requires_any_of: Vec<PlanName>,
    },
    #[error("group {group_id} still has licenses assigned ({sku_count} products); remove its licenses before deleting it")]
    GroupHasLicenses { group_id: Uuid, sku_count: usize },
    #[error("group {group_id} still grants licenses to {user_count} users whose removal is blocked; resolve those users first")]
    GroupStillGrantsLicenses { group_id: Uuid, user_count: usize },
}

impl CommandError {
    /// The Graph licensing error code of a refusal, where it is one of the licensing rules.
    pub fn license_error_kind(&self) -> Option<LicenseErrorKind> {
        match self {
            CommandError::NotEnoughLicenses { .. } => Some(LicenseErrorKind::CountViolation),
            CommandError::MutuallyExclusive { .. } => Some(LicenseErrorKind::MutuallyExclusiveViolation),
            CommandError::Dependency { .. } | CommandError::GroupPrerequisiteMissing { .. } => {
                Some(LicenseErrorKind::DependencyViolation)
            }
            CommandError::UsageLocationRequired { .. } | CommandError::ProhibitedInUsageLocation { .. } => {
                Some(LicenseErrorKind::ProhibitedInUsageLocationViolation)
            }
            CommandError::ProxyAddressInUse { .. } => Some(LicenseErrorKind::UniquenessViolation),
            _ => None,
        }
    }

    /// Whether the command named something that does not exist (an HTTP layer answers 404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            CommandError::UnknownUser { .. } | CommandError::UnknownGroup { .. }
        )
    }
}

/// One pair of mutually exclusive plans: a plan of the failing assignment and the plan of
/// another assignment (or of the same one) it cannot be enabled with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanConflict {
    pub service_plan: PlanName,
    pub conflicting_service_plan: PlanName,
    pub conflicting_sku_id: Uuid,
    pub conflicting_assignment: AssignmentSource,
}

/// The structured reason of an error recorded on a user's license assignment state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LicenseErrorDetail {
    /// No free unit of the product. Figures are the current ones.
    CountViolation {
        sku_id: Uuid,
        sku_part_number: String,
        prepaid_units: u32,
        consumed_units: u32,
        /// Users whose own error on this product is `CountViolation`: the demand waiting for units.
        waiting_users: usize,
    },
    /// A plan of this assignment conflicts with a plan the user already has from another
    /// assignment (or from another product of the same group).
    MutuallyExclusiveViolation {
        service_plan: PlanName,
        conflicting_service_plan: PlanName,
        conflicting_sku_id: Uuid,
        conflicting_assignment: AssignmentSource,
        /// Every conflicting pair of plans between this assignment and what the user has, the
        /// pair above first, so that one change can resolve them all (an assignment in conflict
        /// on Exchange usually is on SharePoint too). Computed from the user's current states.
        conflicts: Vec<PlanConflict>,
    },
    /// Either a plan of this assignment lacks its prerequisite, or (removal blocked) this
    /// assignment holds the last prerequisite of another enabled plan.
    DependencyViolation {
        dependent_service_plan: PlanName,
        dependent_sku_id: Uuid,
        dependent_assignment: Option<AssignmentSource>,
        required_service_plans: Vec<PlanName>,
        /// True when the assignment could not be removed (or reduced) because of the dependent plan.
        removal_blocked: bool,
    },
    /// A plan is not available in the user's effective usage location, or there is none.
    ProhibitedInUsageLocationViolation {
        service_plan: Option<PlanName>,
        usage_location: Option<CountryCode>,
        /// True when the location is the tenant's default, because the user has none.
        inherited_from_tenant: bool,
    },
    /// A mailbox plan needs unique proxy addresses, and one is shared.
    UniquenessViolation {
        proxy_address: String,
        other_user_ids: Vec<Uuid>,
    },
    /// All of a group's products or none: another product of the same group failed.
    BlockedBySibling {
        sibling_sku_id: Uuid,
        sibling_error: LicenseErrorKind,
    },
}
