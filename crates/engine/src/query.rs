//! Read-only views of the engine for administrators and for the layers above: a user's
//! license assignment states with their error details, effective licenses and plans, seats per
//! product, who holds a product, groups and users in error, processing state, tenant overview.

use std::collections::BTreeMap;

use crate::error::{CommandError, LicenseErrorDetail, PlanConflict};
use crate::model::{
    AssignedLicense, AssignmentSource, AssignmentStatus, CapabilityStatus, CountryCode, LicenseErrorKind,
    LicenseProcessingState, ProxyAddress, ServicePlanRules, Timestamp, Uuid,
};
use crate::plan_set::PlanSet;
use crate::{Cause, Engine, GroupRef, SkuRef, Source, StateRecord, UserRef};

/// Graph `licenseAssignmentState`, with the structured error detail licensd adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicenseAssignmentState {
    pub sku_id: Uuid,
    pub assigned_by_group: Option<Uuid>,
    pub disabled_plans: Vec<Uuid>,
    pub state: AssignmentStatus,
    pub error: Option<LicenseErrorKind>,
    pub error_detail: Option<LicenseErrorDetail>,
    /// Plans in effect through this assignment (empty when it grants nothing).
    pub granted_plans: Vec<Uuid>,
    pub last_updated: Timestamp,
}

/// A user's directory properties and licensing intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserView {
    pub id: Uuid,
    pub user_principal_name: String,
    pub display_name: String,
    pub usage_location: Option<CountryCode>,
    pub proxy_addresses: Vec<ProxyAddress>,
    pub account_enabled: bool,
    /// Directory attributes (department, job title, ...).
    pub attributes: crate::user_attributes::UserAttributeValues,
    /// Direct assignments (intent).
    pub direct_licenses: Vec<AssignedLicense>,
    /// Groups the user is a direct member of.
    pub member_of: Vec<Uuid>,
}

/// A group's properties and licensing intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    pub id: Uuid,
    pub display_name: String,
    pub assigned_licenses: Vec<AssignedLicense>,
    pub member_count: usize,
    pub members_with_license_errors: usize,
    pub license_processing_state: LicenseProcessingState,
}

/// Seats of one product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkuUsage {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub display_name: String,
    pub capability_status: CapabilityStatus,
    pub prepaid_units: u32,
    pub consumed_units: u32,
    /// Purchased minus consumed, never below zero.
    pub available_units: u32,
    /// Consumed above purchased (after seats were lowered): nothing is taken away.
    pub over_allocated_units: u32,
    /// Users whose own error on this product is `CountViolation`.
    pub waiting_users: usize,
    pub service_plans: Vec<(Uuid, String, String)>,
}

/// A user holding (or wanting) a product, and through which assignments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicensedUser {
    pub user_id: Uuid,
    pub user_principal_name: String,
    /// Whether a direct assignment of the product is in effect.
    pub direct: bool,
    /// Groups through which the product is in effect.
    pub via_groups: Vec<Uuid>,
    /// Assignments of the product in error.
    pub errors: Vec<(AssignmentSource, LicenseErrorKind)>,
}

/// Counts for a tenant overview.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantOverview {
    pub users: usize,
    pub groups: usize,
    pub licensed_groups: usize,
    pub groups_with_errors: usize,
    pub users_with_errors: usize,
    pub queued_users: usize,
    pub errors_by_kind: BTreeMap<LicenseErrorKind, usize>,
    pub products: Vec<SkuUsage>,
}

impl Engine {
    /// Resolves a compact state record into Graph terms, with the current error detail.
    pub fn resolve_state(&self, user: UserRef, record: &StateRecord) -> LicenseAssignmentState {
        let sku = self.sku(record.sku);
        let error_detail = record
            .cause
            .map(|cause| self.error_detail(user, record, self.causes.get(cause)));
        LicenseAssignmentState {
            sku_id: sku.id,
            assigned_by_group: self.source_of(record.source).assigned_by_group(),
            disabled_plans: self.plan_ids(self.plan_sets.get(record.disabled_plans)),
            state: record.status,
            error: record.cause.map(|cause| self.causes.get(cause).kind()),
            error_detail,
            granted_plans: record
                .granted_plans
                .map(|id| self.plan_ids(self.plan_sets.get(id)))
                .unwrap_or_default(),
            last_updated: record.last_updated,
        }
    }

    pub(crate) fn plan_ids(&self, plans: &PlanSet) -> Vec<Uuid> {
        plans.iter().map(|plan| self.plan(plan).id).collect()
    }

    /// The GUID-level source of a compact one.
    pub fn source_of(&self, source: Source) -> AssignmentSource {
        match source {
            Source::Direct => AssignmentSource::Direct,
            Source::Group(group) => AssignmentSource::Group(self.group_id_of(group)),
        }
    }

    fn group_id_of(&self, group: GroupRef) -> Uuid {
        match self.directory.group_if_live(group) {
            Some(group) => group.id,
            None => Uuid::nil(),
        }
    }

    pub fn sku_id_of(&self, sku: SkuRef) -> Uuid {
        self.sku(sku).id
    }

    /// Every pair of mutually exclusive plans between what `record` wants and what the user's
    /// other assignments grant (or, for plans of the record itself, what it wants), the recorded
    /// pair first. Each pair once, ordered by this side's plan, then by the other assignment.
    fn plan_conflicts(
        &self,
        user: UserRef,
        record: &StateRecord,
        recorded: PlanConflict,
    ) -> Vec<PlanConflict> {
        let wanted = self.enabled_plans(record.sku, record.disabled_plans);
        let mut conflicts = vec![recorded];
        for plan in wanted.intersection(self.catalog.plans_with_exclusions()).iter() {
            let excludes = self.plan(plan).excludes;
            for other in self.states.of(user) {
                let other_plans = if other.sku == record.sku && other.source == record.source {
                    wanted
                } else {
                    match other.granted_plans {
                        Some(id) => *self.plan_sets.get(id),
                        None => continue,
                    }
                };
                for conflicting_plan in excludes.intersection(&other_plans).iter() {
                    let conflict = PlanConflict {
                        service_plan: self.plan_name(plan),
                        conflicting_service_plan: self.plan_name(conflicting_plan),
                        conflicting_sku_id: self.sku(other.sku).id,
                        conflicting_assignment: self.source_of(other.source),
                    };
                    if !conflicts.contains(&conflict) {
                        conflicts.push(conflict);
                    }
                }
            }
        }
        conflicts
    }

    fn error_detail(&self, user: UserRef, record: &StateRecord, cause: &Cause) -> LicenseErrorDetail {
        match cause {
            Cause::Count { sku } => {
                let definition = self.sku(*sku);
                LicenseErrorDetail::CountViolation {
                    sku_id: definition.id,
                    sku_part_number: definition.part_number.clone(),
                    prepaid_units: definition.prepaid_units,
                    consumed_units: self.states.consumed_units(*sku),
                    waiting_users: self.states.waiting(*sku).len(),
                }
            }
            Cause::MutuallyExclusive {
                plan,
                conflicting_plan,
                conflicting_sku,
                conflicting_source,
            } => {
                let recorded = PlanConflict {
                    service_plan: self.plan_name(*plan),
                    conflicting_service_plan: self.plan_name(*conflicting_plan),
                    conflicting_sku_id: self.sku(*conflicting_sku).id,
                    conflicting_assignment: self.source_of(*conflicting_source),
                };
                LicenseErrorDetail::MutuallyExclusiveViolation {
                    service_plan: recorded.service_plan.clone(),
                    conflicting_service_plan: recorded.conflicting_service_plan.clone(),
                    conflicting_sku_id: recorded.conflicting_sku_id,
                    conflicting_assignment: recorded.conflicting_assignment,
                    conflicts: self.plan_conflicts(user, record, recorded),
                }
            }
            Cause::MissingPrerequisite { plan } => LicenseErrorDetail::DependencyViolation {
                dependent_service_plan: self.plan_name(*plan),
                dependent_sku_id: self.sku(record.sku).id,
                dependent_assignment: Some(self.source_of(record.source)),
                required_service_plans: self.plan_names(&self.plan(*plan).requires_any_of),
                removal_blocked: false,
            },
            Cause::RemovalBlocked {
                dependent_plan,
                dependent_sku,
                dependent_source,
            } => LicenseErrorDetail::DependencyViolation {
                dependent_service_plan: self.plan_name(*dependent_plan),
                dependent_sku_id: self.sku(*dependent_sku).id,
                dependent_assignment: dependent_source.map(|source| self.source_of(source)),
                required_service_plans: self.plan_names(&self.plan(*dependent_plan).requires_any_of),
                removal_blocked: true,
            },
            Cause::UsageLocation {
                plan,
                location,
                inherited_from_tenant,
            } => LicenseErrorDetail::ProhibitedInUsageLocationViolation {
                service_plan: plan.map(|plan| self.plan_name(plan)),
                usage_location: *location,
                inherited_from_tenant: *inherited_from_tenant,
            },
            Cause::Uniqueness { proxy_address } => {
                // The owners of the address come from the proxy index (hash, then an exact check),
                // never from a scan of every user.
                let other_user_ids = self
                    .directory
                    .users_with_address(proxy_address)
                    .into_iter()
                    .map(|owner| self.user(owner).id)
                    .collect::<Vec<_>>();
                LicenseErrorDetail::UniquenessViolation {
                    proxy_address: proxy_address.to_string(),
                    other_user_ids,
                }
            }
            Cause::BlockedBySibling { sku, kind } => LicenseErrorDetail::BlockedBySibling {
                sibling_sku_id: self.sku(*sku).id,
                sibling_error: *kind,
            },
        }
    }

    /// A user's license assignment states, direct first, then by group, then by product.
    pub fn user_license_states(&self, user_id: Uuid) -> Result<Vec<LicenseAssignmentState>, CommandError> {
        let user = self.user_ref(user_id)?;
        let mut states: Vec<LicenseAssignmentState> = self
            .states
            .of(user)
            .iter()
            .map(|record| {
                let mut state = self.resolve_state(user, record);
                if let Some(LicenseErrorDetail::UniquenessViolation { other_user_ids, .. }) =
                    &mut state.error_detail
                {
                    other_user_ids.retain(|other| *other != user_id);
                }
                state
            })
            .collect();
        states.sort_by_key(|state| (state.assigned_by_group, state.sku_id));
        Ok(states)
    }

    /// The compact records of a user (for stores persisting deltas).
    pub fn user_state_records(&self, user_id: Uuid) -> Result<&[StateRecord], CommandError> {
        let user = self.user_ref(user_id)?;
        Ok(self.states.of(user))
    }

    pub(crate) fn effective_plans_of(&self, user: UserRef) -> BTreeMap<SkuRef, PlanSet> {
        let mut by_sku: BTreeMap<SkuRef, PlanSet> = BTreeMap::new();
        for record in self.states.of(user) {
            if record.status.is_in_effect() {
                let granted = record
                    .granted_plans
                    .map(|id| *self.plan_sets.get(id))
                    .unwrap_or(PlanSet::EMPTY);
                by_sku.entry(record.sku).or_default().union_with(&granted);
            }
        }
        by_sku
    }

    /// Graph `assignedLicenses`: one entry per product in effect; its disabled plans are the
    /// intersection of the disabled plans of its assignments in effect.
    pub fn user_assigned_licenses(&self, user_id: Uuid) -> Result<Vec<AssignedLicense>, CommandError> {
        let user = self.user_ref(user_id)?;
        Ok(self
            .effective_plans_of(user)
            .into_iter()
            .map(|(sku, enabled)| AssignedLicense {
                sku_id: self.sku(sku).id,
                disabled_plans: self.plan_ids(&self.sku(sku).plans.difference(&enabled)),
            })
            .collect())
    }

    /// The union of the plans in effect for a user.
    pub fn user_effective_plans(&self, user_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        let user = self.user_ref(user_id)?;
        let all = self
            .effective_plans_of(user)
            .values()
            .fold(PlanSet::EMPTY, |acc, plans| acc.union(plans));
        Ok(self.plan_ids(&all))
    }

    pub fn user_view(&self, user_id: Uuid) -> Result<UserView, CommandError> {
        let user = self.user(self.user_ref(user_id)?);
        Ok(UserView {
            id: user.id,
            user_principal_name: user.user_principal_name.to_string(),
            display_name: user.display_name.to_string(),
            usage_location: user.usage_location,
            proxy_addresses: user.proxy_addresses.to_vec(),
            account_enabled: user.account_enabled,
            attributes: self.directory.user_attribute_values(user),
            direct_licenses: user
                .direct
                .iter()
                .map(|direct| AssignedLicense {
                    sku_id: self.sku(direct.sku).id,
                    disabled_plans: self.plan_ids(self.plan_sets.get(direct.disabled_plans)),
                })
                .collect(),
            member_of: user.memberships.iter().map(|m| self.group(m.group).id).collect(),
        })
    }

    /// Looks a user up by `userPrincipalName`, ignoring case.
    /// One directory attribute of a user (`None` when the user does not have it).
    pub fn user_attribute(
        &self,
        user_id: Uuid,
        attribute: crate::user_attributes::UserAttribute,
    ) -> Result<Option<&str>, CommandError> {
        let user = self.user_ref(user_id)?;
        Ok(self.directory.user_attribute(user, attribute))
    }

    pub fn user_by_principal_name(&self, user_principal_name: &str) -> Option<Uuid> {
        self.directory
            .find_user_by_principal_name(user_principal_name)
            .map(|user| self.user(user).id)
    }

    /// Every user id, in creation order.
    pub fn user_ids(&self) -> Vec<Uuid> {
        self.directory
            .users()
            .map(|(_, user)| user)
            .map(|user| user.id)
            .collect()
    }

    /// Every group id, in creation order.
    pub fn group_ids(&self) -> Vec<Uuid> {
        self.directory
            .groups()
            .map(|(_, group)| group)
            .map(|group| group.id)
            .collect()
    }

    pub fn user_count(&self) -> usize {
        self.directory.user_count()
    }

    pub fn group_count(&self) -> usize {
        self.directory.group_count()
    }

    pub fn group_view(&self, group_id: Uuid) -> Result<GroupView, CommandError> {
        let group_ref = self.group_ref(group_id)?;
        let group = self.group(group_ref);
        Ok(GroupView {
            id: group.id,
            display_name: group.display_name.clone(),
            assigned_licenses: group
                .licenses
                .iter()
                .map(|license| AssignedLicense {
                    sku_id: self.sku(license.sku).id,
                    disabled_plans: self.plan_ids(self.plan_sets.get(license.disabled_plans)),
                })
                .collect(),
            member_count: group.members.len(),
            members_with_license_errors: self.states.group_error_users(group_ref).len(),
            license_processing_state: self.processing_state_of(group_ref),
        })
    }

    /// Members of a group, oldest membership first.
    pub fn group_members(&self, group_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        let group = self.group_ref(group_id)?;
        let mut members: Vec<(u64, Uuid)> = self
            .group(group)
            .members
            .iter()
            .map(|member| {
                let user = self.user(*member);
                let since = user
                    .memberships
                    .iter()
                    .find(|m| m.group == group)
                    .map_or(0, |m| m.since);
                (since, user.id)
            })
            .collect();
        members.sort_unstable();
        Ok(members.into_iter().map(|(_, id)| id).collect())
    }

    /// A group's processing state from the queue: its queued members, and with transitive
    /// licensing on also the queued members of every group nested in it (they receive its
    /// products too), so a licensed group is complete only once the users below it are.
    fn processing_state_of(&self, group: GroupRef) -> LicenseProcessingState {
        let (mut pending_users, mut processing_started) = self.queue.group_processing(group);
        let nesting = self.directory.nesting();
        if self.settings.transitive_licensing && !nesting.children_of(group).is_empty() {
            for below in nesting.descendants(group).into_iter().skip(1) {
                let (pending, started) = self.queue.group_processing(below);
                pending_users += pending;
                processing_started |= started && pending > 0;
            }
        }
        if pending_users == 0 {
            LicenseProcessingState::ProcessingComplete
        } else if processing_started {
            LicenseProcessingState::ProcessingInProgress
        } else {
            LicenseProcessingState::QueuedForProcessing
        }
    }

    /// Graph `licenseProcessingState` of a group, derived from the queue.
    pub fn group_processing_state(&self, group_id: Uuid) -> Result<LicenseProcessingState, CommandError> {
        Ok(self.processing_state_of(self.group_ref(group_id)?))
    }

    /// Graph `membersWithLicenseErrors`: users with an error on an assignment from the group.
    pub fn members_with_license_errors(&self, group_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        let group = self.group_ref(group_id)?;
        Ok(self
            .states
            .group_error_users(group)
            .iter()
            .map(|user| self.user(*user).id)
            .collect())
    }

    /// Graph `hasMembersWithLicenseErrors`.
    pub fn has_members_with_license_errors(&self, group_id: Uuid) -> Result<bool, CommandError> {
        let group = self.group_ref(group_id)?;
        Ok(!self.states.group_error_users(group).is_empty())
    }

    /// Groups that need attention (at least one user in error), in creation order.
    pub fn groups_with_errors(&self) -> Vec<Uuid> {
        self.directory
            .groups()
            .filter(|(group, _)| !self.states.group_error_users(*group).is_empty())
            .map(|(_, group)| group.id)
            .collect()
    }

    /// Users with at least one license assignment state in error.
    pub fn users_with_errors(&self) -> Vec<Uuid> {
        self.states
            .users_with_errors()
            .iter()
            .map(|user| self.user(*user).id)
            .collect()
    }

    fn usage_of(&self, sku: SkuRef) -> SkuUsage {
        let definition = self.sku(sku);
        let consumed_units = self.states.consumed_units(sku);
        SkuUsage {
            sku_id: definition.id,
            sku_part_number: definition.part_number.clone(),
            display_name: definition.display_name.clone(),
            capability_status: definition.capability_status,
            prepaid_units: definition.prepaid_units,
            consumed_units,
            available_units: definition.prepaid_units.saturating_sub(consumed_units),
            over_allocated_units: consumed_units.saturating_sub(definition.prepaid_units),
            waiting_users: self.states.waiting(sku).len(),
            service_plans: definition
                .plan_order
                .iter()
                .map(|plan| {
                    let plan = self.plan(*plan);
                    (plan.id, plan.name.clone(), plan.display_name.clone())
                })
                .collect(),
        }
    }

    /// Seats of every product, in subscription order.
    pub fn sku_usages(&self) -> Vec<SkuUsage> {
        self.catalog.skus().map(|(sku, _)| self.usage_of(sku)).collect()
    }

    pub fn sku_usage(&self, sku_id: Uuid) -> Result<SkuUsage, CommandError> {
        Ok(self.usage_of(self.sku_ref(sku_id)?))
    }

    /// The portal's "Licensed users" of a product: everyone with an assignment of it, and
    /// whether it is in effect directly or through which groups.
    pub fn licensed_users(&self, sku_id: Uuid) -> Result<Vec<LicensedUser>, CommandError> {
        let sku = self.sku_ref(sku_id)?;
        let mut result = Vec::new();
        for (user_ref, user) in self.directory.users() {
            let mut entry = LicensedUser {
                user_id: user.id,
                user_principal_name: user.user_principal_name.to_string(),
                direct: false,
                via_groups: Vec::new(),
                errors: Vec::new(),
            };
            let mut any = false;
            for record in self.states.of(user_ref).iter().filter(|record| record.sku == sku) {
                any = true;
                if record.status.is_in_effect() {
                    match record.source {
                        Source::Direct => entry.direct = true,
                        Source::Group(group) => entry.via_groups.push(self.group_id_of(group)),
                    }
                }
                if let Some(cause) = record.cause {
                    entry
                        .errors
                        .push((self.source_of(record.source), self.causes.get(cause).kind()));
                }
            }
            if any {
                result.push(entry);
            }
        }
        Ok(result)
    }

    /// The portal's "Licensed groups" of a product.
    pub fn licensed_groups(&self, sku_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        let sku = self.sku_ref(sku_id)?;
        Ok(self
            .directory
            .groups_with_sku(sku)
            .into_iter()
            .map(|group| self.group_id_of(group))
            .collect())
    }

    /// The rules of a service plan.
    pub fn service_plan_rules(&self, service_plan_id: Uuid) -> Result<ServicePlanRules, CommandError> {
        Ok(self.plan(self.catalog.plan_ref(service_plan_id)?).rules.clone())
    }

    /// Counts for the tenant overview page.
    /// How many license assignment states the tenant has, by status (every user's, one pass;
    /// for metrics).
    pub fn state_counts(&self) -> BTreeMap<AssignmentStatus, usize> {
        let mut counts = BTreeMap::new();
        for (user, _) in self.directory.users() {
            for record in self.states.of(user) {
                *counts.entry(record.status).or_insert(0) += 1;
            }
        }
        counts
    }

    pub fn tenant_overview(&self) -> TenantOverview {
        let mut errors_by_kind = BTreeMap::new();
        for user in self.states.users_with_errors() {
            for record in self.states.of(*user) {
                if let Some(cause) = record.cause {
                    *errors_by_kind.entry(self.causes.get(cause).kind()).or_insert(0) += 1;
                }
            }
        }
        TenantOverview {
            users: self.user_count(),
            groups: self.group_count(),
            licensed_groups: self
                .directory
                .groups()
                .filter(|(_, g)| !g.licenses.is_empty())
                .count(),
            groups_with_errors: self
                .directory
                .groups()
                .filter(|(group, _)| !self.states.group_error_users(*group).is_empty())
                .count(),
            users_with_errors: self.states.users_with_errors().len(),
            queued_users: self.queued_users(),
            errors_by_kind,
            products: self.sku_usages(),
        }
    }

    /// The last automatic re-evaluation of a user (self-healing), if any since the engine was
    /// loaded.
    pub fn last_self_healing(&self, user_id: Uuid) -> Option<&crate::SelfHealing> {
        self.healing.last(self.directory.find_user(user_id)?)
    }

    /// Why a queued user will be re-evaluated by itself, if it was re-queued by self-healing.
    pub fn pending_self_healing(&self, user_id: Uuid) -> Option<&crate::RequeueReason> {
        self.healing.pending(self.directory.find_user(user_id)?)
    }

    /// Every user's states, keyed by user id: a canonical picture of the tenant's licensing
    /// outcome, independent of engine-local handles (used to compare engines).
    pub fn license_snapshot(&self) -> BTreeMap<Uuid, Vec<LicenseAssignmentState>> {
        self.directory
            .users()
            .map(|(_, user)| {
                let states = self.user_license_states(user.id).unwrap_or_default();
                (user.id, states)
            })
            .collect()
    }
}

impl Engine {
    fn sku_label(&self, sku_id: Uuid) -> String {
        match self.catalog.find_sku(sku_id) {
            Some(sku) => {
                let sku = self.sku(sku);
                format!("{} ({})", sku.display_name, sku.part_number)
            }
            None => sku_id.to_string(),
        }
    }

    fn source_label(&self, source: &AssignmentSource) -> String {
        match source {
            AssignmentSource::Direct => "a direct assignment".to_string(),
            AssignmentSource::Group(group_id) => match self.directory.find_group(*group_id) {
                Some(group) => format!("group \"{}\"", self.group(group).display_name),
                None => format!("group {group_id}"),
            },
        }
    }

    fn user_label(&self, user_id: &Uuid) -> String {
        match self.directory.find_user(*user_id) {
            Some(user) => self.user(user).user_principal_name.to_string(),
            None => user_id.to_string(),
        }
    }

    /// The plain-language reason of a state's error and the ways to resolve it the seed lists.
    pub fn explain(&self, state: &LicenseAssignmentState) -> Option<String> {
        let detail = state.error_detail.as_ref()?;
        let product = self.sku_label(state.sku_id);
        let text = match detail {
            LicenseErrorDetail::CountViolation {
                prepaid_units,
                consumed_units,
                waiting_users,
                ..
            } => format!(
                "Not enough licenses: {product} has {prepaid_units} purchased and {consumed_units} assigned; \
                 {waiting_users} user(s) are waiting. Buy more licenses or free some (remove direct \
                 assignments that a group also gives, or users who no longer need it), then reprocess."
            ),
            LicenseErrorDetail::MutuallyExclusiveViolation {
                service_plan,
                conflicting_service_plan,
                conflicting_sku_id,
                conflicting_assignment,
                conflicts,
            } => {
                let mut text = format!(
                    "Conflicting service plans: {service_plan} in {product} cannot be enabled together with \
                     {conflicting_service_plan}, which the user has from {} through {}",
                    self.sku_label(*conflicting_sku_id),
                    self.source_label(conflicting_assignment)
                );
                // The other pairs, so that one change resolves every conflict.
                for conflict in conflicts.iter().skip(1) {
                    text.push_str(&format!(
                        "; and {} cannot be enabled together with {}, from {} through {}",
                        conflict.service_plan,
                        conflict.conflicting_service_plan,
                        self.sku_label(conflict.conflicting_sku_id),
                        self.source_label(&conflict.conflicting_assignment)
                    ));
                }
                let which = if conflicts.len() > 1 {
                    "all these plans"
                } else {
                    "one of the two plans"
                };
                text.push_str(&format!(
                    ". Remove that license if it is redundant, or disable {which} on one side (in the \
                     group's assignment or in the other one), then reprocess."
                ));
                text
            }
            LicenseErrorDetail::DependencyViolation {
                dependent_service_plan,
                dependent_sku_id,
                dependent_assignment,
                required_service_plans,
                removal_blocked,
            } => {
                let required = required_service_plans
                    .iter()
                    .map(|plan| plan.display_name.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ");
                if *removal_blocked {
                    format!(
                        "Other products depend on this license: removing it would take away the last of \
                         {required}, which {dependent_service_plan} in {} (from {}) needs. Keep the prerequisite through \
                         another assignment or disable the dependent plan first, then reprocess.",
                        self.sku_label(*dependent_sku_id),
                        dependent_assignment
                            .as_ref()
                            .map(|source| self.source_label(source))
                            .unwrap_or_else(|| "this user".to_string())
                    )
                } else {
                    format!(
                        "Missing prerequisite: {dependent_service_plan} in {product} requires {required} to be \
                         enabled as well. Assign a product with it in the same group, then reprocess."
                    )
                }
            }
            LicenseErrorDetail::ProhibitedInUsageLocationViolation {
                service_plan,
                usage_location,
                inherited_from_tenant,
            } => match (service_plan, usage_location) {
                (Some(plan), Some(location)) => format!(
                    "Usage location isn't allowed: {plan} in {product} is not available in {location}{}. \
                     Correct the user's usage location if it is wrong, or remove the user from the group.",
                    if *inherited_from_tenant {
                        " (the tenant's default, as the user has none)"
                    } else {
                        ""
                    }
                ),
                _ => "No usage location: neither the user nor the tenant has one. Set the user's usage \
                      location (or the tenant's default), then reprocess."
                    .to_string(),
            },
            LicenseErrorDetail::UniquenessViolation {
                proxy_address,
                other_user_ids,
            } => format!(
                "Duplicate proxy address: {proxy_address} is also used by {}, and {product} contains a \
                 mailbox plan. Fix the duplicate address, then reprocess.",
                other_user_ids
                    .iter()
                    .map(|id| self.user_label(id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            LicenseErrorDetail::BlockedBySibling {
                sibling_sku_id,
                sibling_error,
            } => format!(
                "Not assigned because {} of the same group failed ({}): a group's products are assigned all \
                 together or not at all. Resolve that error, then reprocess.",
                self.sku_label(*sibling_sku_id),
                sibling_error.as_str()
            ),
        };
        Some(text)
    }
}
