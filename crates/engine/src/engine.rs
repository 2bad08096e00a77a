//! The engine: a tenant's licensing world in memory, changed only through [`Command`]s, with a
//! queue of users whose licenses must be evaluated again and the license assignment states that
//! evaluation produced.

use std::collections::{BTreeSet, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::command::Command;
use crate::error::{CommandError, PlanName};
use crate::model::{
    AppliesTo, AssignedLicense, AssignmentStatus, CapabilityStatus, CountryCode, LicenseErrorKind, NewUser,
    ProxyAddress, ServicePlanDefinition, ServicePlanRules, SkuDefinition, TenantSettings, Timestamp,
    UserChanges, Uuid,
};
use crate::plan_set::{PlanRef, PlanSet, PlanSetId, PlanSetInterner, MAX_SERVICE_PLANS};
use crate::self_healing::RequeueReason;

/// Engine-local handle of a user (stable for the engine's lifetime, never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserRef(pub u32);

/// Engine-local handle of a group (stable for the engine's lifetime, never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupRef(pub u32);

/// Engine-local handle of a product (SKU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SkuRef(pub u16);

/// Where an assignment comes from, in engine-local handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Direct,
    Group(GroupRef),
}

/// Handle of an interned error cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CauseId(pub u32);

/// Why an assignment failed, in engine-local handles. Interned: the members of one group that
/// fail for one reason share one cause.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// No free unit of the product.
    Count { sku: SkuRef },
    /// `plan` of this assignment conflicts with `conflicting_plan`, enabled by `conflicting_source`
    /// through `conflicting_sku` (possibly this very group or product).
    MutuallyExclusive {
        plan: PlanRef,
        conflicting_plan: PlanRef,
        conflicting_sku: SkuRef,
        conflicting_source: Source,
    },
    /// `plan` of this assignment has none of its prerequisites enabled.
    MissingPrerequisite { plan: PlanRef },
    /// This assignment cannot be removed or reduced: it holds the last prerequisite of
    /// `dependent_plan`, enabled through `dependent_sku` by `dependent_source`.
    RemovalBlocked {
        dependent_plan: PlanRef,
        dependent_sku: SkuRef,
        dependent_source: Option<Source>,
    },
    /// `plan` is unavailable in `location`; `plan` is `None` when there is no location at all.
    UsageLocation {
        plan: Option<PlanRef>,
        location: Option<CountryCode>,
        inherited_from_tenant: bool,
    },
    /// A mailbox plan would be enabled while `proxy_address` (normalized) is shared.
    Uniqueness { proxy_address: Box<str> },
    /// Another product of the same group failed with `kind`.
    BlockedBySibling { sku: SkuRef, kind: LicenseErrorKind },
}

impl Cause {
    /// Whether the cause names `group` as the source of another assignment.
    pub(crate) fn names_group(&self, group: GroupRef) -> bool {
        match self {
            Cause::MutuallyExclusive {
                conflicting_source, ..
            } => *conflicting_source == Source::Group(group),
            Cause::RemovalBlocked { dependent_source, .. } => *dependent_source == Some(Source::Group(group)),
            Cause::Count { .. }
            | Cause::MissingPrerequisite { .. }
            | Cause::UsageLocation { .. }
            | Cause::Uniqueness { .. }
            | Cause::BlockedBySibling { .. } => false,
        }
    }

    /// The cause with `group` no longer named, for an assignment from `own_source`: what the
    /// evaluation records when it cannot tell the holder (a conflict held by the assignment
    /// itself, a dependent of unknown source). `None` when the cause does not name the group.
    pub(crate) fn without_group(&self, group: GroupRef, own_source: Source) -> Option<Cause> {
        if !self.names_group(group) {
            return None;
        }
        let mut cause = self.clone();
        match &mut cause {
            Cause::MutuallyExclusive {
                conflicting_source, ..
            } => *conflicting_source = own_source,
            Cause::RemovalBlocked { dependent_source, .. } => *dependent_source = None,
            _ => {}
        }
        Some(cause)
    }

    pub fn kind(&self) -> LicenseErrorKind {
        match self {
            Cause::Count { .. } => LicenseErrorKind::CountViolation,
            Cause::MutuallyExclusive { .. } => LicenseErrorKind::MutuallyExclusiveViolation,
            Cause::MissingPrerequisite { .. } | Cause::RemovalBlocked { .. } => {
                LicenseErrorKind::DependencyViolation
            }
            Cause::UsageLocation { .. } => LicenseErrorKind::ProhibitedInUsageLocationViolation,
            Cause::Uniqueness { .. } => LicenseErrorKind::UniquenessViolation,
            Cause::BlockedBySibling { kind, .. } => *kind,
        }
    }
}

/// One license assignment state of a user (Graph `licenseAssignmentState`), in compact form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateRecord {
    pub sku: SkuRef,
    pub source: Source,
    pub status: AssignmentStatus,
    /// The error, `None` when the state is `Active` or `Disabled`.
    pub cause: Option<CauseId>,
    /// The plans the assignment switches off (its intent).
    pub disabled_plans: PlanSetId,
    /// The plans actually in effect through this assignment; `None` when it grants nothing.
    pub granted_plans: Option<PlanSetId>,
    /// Processing sequence number at which the current status and error began; orders users
    /// waiting for units first come, first served.
    pub since: u64,
    pub last_updated: Timestamp,
}

impl StateRecord {
    /// Equal in everything but time stamps.
    pub(crate) fn same_outcome(&self, other: &StateRecord) -> bool {
        self.sku == other.sku
            && self.source == other.source
            && self.status == other.status
            && self.cause == other.cause
            && self.disabled_plans == other.disabled_plans
            && self.granted_plans == other.granted_plans
    }

    pub(crate) fn holds_unit(&self) -> bool {
        self.status.is_in_effect()
    }
}

/// A change to one license assignment state, so a store can persist exactly the delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub user: UserRef,
    pub user_id: Uuid,
    pub sku: SkuRef,
    pub source: Source,
    pub before: Option<StateRecord>,
    /// `None` when the state is gone (removed license, deleted user).
    pub after: Option<StateRecord>,
}

/// What a command did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutcome {
    /// State changes applied at once (direct assignments, deleted users).
    pub changes: Vec<StateChange>,
    /// Number of users newly queued for background evaluation.
    pub queued_users: usize,
    /// The users newly queued, in queue order (a store persists them as queue entries).
    pub newly_queued: Vec<Uuid>,
    /// The entities whose stored intent the command changed.
    pub touched: Touched,
}

/// Which stored entities a command changed, so a store rewrites exactly those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    pub settings: bool,
    /// Products whose definition, seats or status changed.
    pub skus: Vec<Uuid>,
    /// Whether service plans or their rules changed.
    pub service_plans: bool,
    /// Users whose properties, direct licenses or memberships changed.
    pub users: Vec<Uuid>,
    pub deleted_users: Vec<Uuid>,
    /// Groups whose properties or licenses changed.
    pub groups: Vec<Uuid>,
    pub deleted_groups: Vec<Uuid>,
    /// Users and groups whose directory attributes were set or cleared
    /// ([`Command::SetDirectoryAttributes`]; deleting an object deletes them without a mention here).
    pub directory_attributes: Vec<Uuid>,
}

/// What one processing step did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessReport {
    pub evaluated_users: usize,
    pub changes: Vec<StateChange>,
    /// Users still queued after this step.
    pub remaining_users: usize,
    /// The users evaluated, in order.
    pub evaluated: Vec<Uuid>,
    /// Users queued during this step (self-healing hand-offs, ...) and still queued at its end.
    pub requeued: Vec<Uuid>,
}

#[derive(Clone, Debug)]
pub(crate) struct ServicePlan {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) rules: ServicePlanRules,
    pub(crate) excludes: PlanSet,
    pub(crate) requires_any_of: PlanSet,
}

#[derive(Clone, Debug)]
pub(crate) struct Sku {
    pub(crate) id: Uuid,
    pub(crate) part_number: String,
    pub(crate) display_name: String,
    pub(crate) applies_to: AppliesTo,
    /// Plans in catalog order.
    pub(crate) plan_order: Vec<PlanRef>,
    pub(crate) plans: PlanSet,
    pub(crate) prepaid_units: u32,
    pub(crate) consumed_units: u32,
    pub(crate) capability_status: CapabilityStatus,
    /// Users whose own error on this product is `CountViolation`, first come first.
    pub(crate) waiting: BTreeSet<(u64, UserRef)>,
    /// Users whose assignment of this product is blocked by a sibling product of the same group
    /// and who hold no unit of it: once no unit is free, their own error is `CountViolation`,
    /// so they are evaluated again then.
    pub(crate) blocked_without_unit: BTreeSet<UserRef>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirectLicense {
    pub(crate) sku: SkuRef,
    pub(crate) disabled_plans: PlanSetId,
    pub(crate) since: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    pub(crate) group: GroupRef,
    pub(crate) since: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) id: Uuid,
    pub(crate) user_principal_name: Box<str>,
    pub(crate) display_name: Box<str>,
    pub(crate) usage_location: Option<CountryCode>,
    pub(crate) proxy_addresses: Box<[ProxyAddress]>,
    /// How many of the user's address hashes other users also have (kept by the proxy index),
    /// so the uniqueness check costs nothing for the many users who share no address.
    pub(crate) shared_addresses: u32,
    pub(crate) account_enabled: bool,
    pub(crate) direct: Vec<DirectLicense>,
    pub(crate) memberships: Vec<Membership>,
    pub(crate) states: Vec<StateRecord>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupLicense {
    pub(crate) sku: SkuRef,
    pub(crate) disabled_plans: PlanSetId,
}

#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) id: Uuid,
    pub(crate) display_name: String,
    pub(crate) licenses: Vec<GroupLicense>,
    /// Sequence number at which the group last went from no products to some.
    pub(crate) licensed_since: u64,
    pub(crate) members: FxHashSet<UserRef>,
    /// Users with an error on an assignment from this group (members, or former members whose
    /// removal is blocked).
    pub(crate) error_users: BTreeSet<UserRef>,
    /// Number of state records whose source is this group.
    pub(crate) state_records: u64,
    /// Queued users who are members.
    pub(crate) pending_users: u64,
    pub(crate) processing_started: bool,
}

/// An assignLicense request resolved to products: (product, disabled plans) to add, products to remove.
type ResolvedLicenseRequest = (Vec<(SkuRef, PlanSet)>, Vec<SkuRef>);

/// Owners of one proxy address hash.
#[derive(Clone, Debug)]
pub(crate) enum ProxyOwners {
    One(UserRef),
    Many(Vec<UserRef>),
}

#[derive(Clone, Debug, Default)]
pub(crate) struct CauseInterner {
    pub(crate) causes: Vec<Cause>,
    ids: FxHashMap<Cause, CauseId>,
}

impl CauseInterner {
    pub(crate) fn intern(&mut self, cause: Cause) -> CauseId {
        if let Some(id) = self.ids.get(&cause) {
            return *id;
        }
        let id = CauseId(self.causes.len() as u32);
        self.causes.push(cause.clone());
        self.ids.insert(cause, id);
        id
    }
}

/// A tenant's licensing engine. See the crate documentation for the evaluation rules.
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) settings: TenantSettings,
    pub(crate) plans: Vec<ServicePlan>,
    pub(crate) plan_index: FxHashMap<Uuid, PlanRef>,
    pub(crate) skus: Vec<Sku>,
    pub(crate) sku_index: FxHashMap<Uuid, SkuRef>,
    pub(crate) users: Vec<Option<User>>,
    pub(crate) user_index: FxHashMap<Uuid, UserRef>,
    pub(crate) upn_index: FxHashMap<Box<str>, UserRef>,
    pub(crate) groups: Vec<Option<Group>>,
    pub(crate) group_index: FxHashMap<Uuid, GroupRef>,
    pub(crate) plan_sets: PlanSetInterner,
    pub(crate) causes: CauseInterner,
    pub(crate) proxy_owners: FxHashMap<u64, ProxyOwners>,
    /// Derived from the rules: plans unavailable per location.
    pub(crate) prohibited_by_location: FxHashMap<CountryCode, PlanSet>,
    /// Derived from the rules: mailbox plans.
    pub(crate) mailbox_plans: PlanSet,
    /// Derived from the rules: plans with at least one exclusion / prerequisite.
    pub(crate) plans_with_exclusions: PlanSet,
    pub(crate) plans_with_prerequisites: PlanSet,
    pub(crate) queue: VecDeque<UserRef>,
    pub(crate) queued: Vec<bool>,
    pub(crate) queued_count: usize,
    /// Users queued since the last command or processing step returned.
    pub(crate) newly_queued: Vec<UserRef>,
    /// Logical clock: advanced by every accepted command and every evaluation.
    pub(crate) clock: u64,
    pub(crate) users_with_errors: BTreeSet<UserRef>,
    /// Opaque attributes of users and groups, by object id ([`Command::SetDirectoryAttributes`]).
    pub(crate) directory_attributes: FxHashMap<Uuid, Box<str>>,
    /// Why queued users in error were re-queued by self-healing ([`crate::self_healing`]).
    pub(crate) pending_self_healing: FxHashMap<UserRef, crate::self_healing::RequeueReason>,
    /// Each user's last automatic re-evaluation.
    pub(crate) last_self_healing: FxHashMap<UserRef, crate::self_healing::SelfHealing>,
    pub(crate) scratch: crate::evaluate::Scratch,
}

fn validate_user_principal_name(value: &str) -> Result<(), CommandError> {
    let invalid = |reason: &str| CommandError::InvalidUserPrincipalName {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let Some((local, domain)) = value.split_once('@') else {
        return Err(invalid("expected name@domain"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(invalid("the part before @ must have 1 to 64 characters"));
    }
    if domain.is_empty() || domain.contains('@') || !domain.contains('.') {
        return Err(invalid("the part after @ must be a domain such as contoso.com"));
    }
    if value.len() > 256 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("at most 256 characters, without spaces"));
    }
    Ok(())
}

pub(crate) fn proxy_hash(normalized: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = rustc_hash::FxHasher::default();
    normalized.hash(&mut hasher);
    hasher.finish()
}

impl Engine {
    pub fn new(settings: TenantSettings) -> Engine {
        Engine {
            settings,
            plans: Vec::new(),
            plan_index: FxHashMap::default(),
            skus: Vec::new(),
            sku_index: FxHashMap::default(),
            users: Vec::new(),
            user_index: FxHashMap::default(),
            upn_index: FxHashMap::default(),
            groups: Vec::new(),
            group_index: FxHashMap::default(),
            plan_sets: PlanSetInterner::default(),
            causes: CauseInterner::default(),
            proxy_owners: FxHashMap::default(),
            prohibited_by_location: FxHashMap::default(),
            mailbox_plans: PlanSet::EMPTY,
            plans_with_exclusions: PlanSet::EMPTY,
            plans_with_prerequisites: PlanSet::EMPTY,
            queue: VecDeque::new(),
            queued: Vec::new(),
            queued_count: 0,
            newly_queued: Vec::new(),
            clock: 0,
            users_with_errors: BTreeSet::new(),
            directory_attributes: FxHashMap::default(),
            pending_self_healing: FxHashMap::default(),
            last_self_healing: FxHashMap::default(),
            scratch: Default::default(),
        }
    }

    pub fn settings(&self) -> &TenantSettings {
        &self.settings
    }

    /// Applies one command: validates it completely, then changes the tenant, applies what is
    /// synchronous (direct assignments, deletions) and queues the users whose licenses it affects.
    /// On error nothing has changed.
    pub fn apply(&mut self, command: Command, at: Timestamp) -> Result<CommandOutcome, CommandError> {
        self.newly_queued.clear();
        let touched = self.touched_by(&command);
        let mut changes = Vec::new();
        match command {
            Command::SetDefaultUsageLocation { usage_location } => {
                self.tick();
                self.settings.default_usage_location = usage_location;
                self.enqueue_users_where(|_, user| user.usage_location.is_none());
            }
            Command::SetSelfHealing { enabled } => {
                self.tick();
                self.settings.self_healing = enabled;
            }
            Command::AddSku(definition) => self.add_sku(definition)?,
            Command::AddServicePlanToSku { sku_id, service_plan } => {
                self.add_service_plan_to_sku(sku_id, service_plan)?
            }
            Command::SetPrepaidUnits {
                sku_id,
                prepaid_units,
            } => {
                let sku = self.sku_ref(sku_id)?;
                self.tick();
                self.skus[sku.0 as usize].prepaid_units = prepaid_units;
            }
            Command::SetCapabilityStatus {
                sku_id,
                capability_status,
            } => {
                let sku = self.sku_ref(sku_id)?;
                self.tick();
                self.skus[sku.0 as usize].capability_status = capability_status;
                self.enqueue_users_with_skus(&[sku]);
            }
            Command::SetServicePlanRules {
                service_plan_id,
                rules,
            } => self.set_service_plan_rules(service_plan_id, rules)?,
            Command::CreateUser(new_user) => self.create_user(new_user)?,
            Command::UpdateUser {
                user_id,
                changes: user_changes,
            } => self.update_user(user_id, user_changes)?,
            Command::DeleteUser { user_id } => self.delete_user(user_id, &mut changes)?,
            Command::CreateGroup {
                group_id,
                display_name,
            } => self.create_group(group_id, display_name)?,
            Command::UpdateGroup {
                group_id,
                display_name,
            } => self.rename_group(group_id, display_name)?,
            Command::DeleteGroup { group_id } => self.delete_group(group_id, &mut changes)?,
            Command::AddGroupMember { group_id, user_id } => self.add_group_member(group_id, user_id)?,
            Command::RemoveGroupMember { group_id, user_id } => {
                self.remove_group_member(group_id, user_id)?
            }
            Command::AssignUserLicenses {
                user_id,
                add_licenses,
                remove_licenses,
            } => self.assign_user_licenses(user_id, &add_licenses, &remove_licenses, at, &mut changes)?,
            Command::AssignGroupLicenses {
                group_id,
                add_licenses,
                remove_licenses,
            } => self.assign_group_licenses(group_id, &add_licenses, &remove_licenses)?,
            Command::ReprocessUser { user_id } => {
                let user = self.user_ref(user_id)?;
                self.tick();
                self.enqueue(user);
            }
            Command::ReprocessGroup { group_id } => {
                let group = self.group_ref(group_id)?;
                self.tick();
                self.enqueue_group_users(group);
            }
            Command::SetDirectoryAttributes {
                object_id,
                attributes,
            } => self.set_directory_attributes(object_id, attributes)?,
        }
        self.hand_off_free_units();
        let newly_queued: Vec<Uuid> = std::mem::take(&mut self.newly_queued)
            .into_iter()
            .filter_map(|user| self.users[user.0 as usize].as_ref().map(|user| user.id))
            .collect();
        Ok(CommandOutcome {
            changes,
            queued_users: newly_queued.len(),
            newly_queued,
            touched,
        })
    }

    /// The entities a command will change if it is accepted.
    fn touched_by(&self, command: &Command) -> Touched {
        let mut touched = Touched::default();
        match command {
            Command::SetDefaultUsageLocation { .. } | Command::SetSelfHealing { .. } => {
                touched.settings = true
            }
            Command::AddSku(definition) => {
                touched.skus.push(definition.sku_id);
                touched.service_plans = true;
            }
            Command::AddServicePlanToSku { sku_id, .. } => {
                touched.skus.push(*sku_id);
                touched.service_plans = true;
            }
            Command::SetPrepaidUnits { sku_id, .. } | Command::SetCapabilityStatus { sku_id, .. } => {
                touched.skus.push(*sku_id)
            }
            Command::SetServicePlanRules { .. } => touched.service_plans = true,
            Command::CreateUser(new_user) => touched.users.push(new_user.id),
            Command::UpdateUser { user_id, .. }
            | Command::AddGroupMember { user_id, .. }
            | Command::RemoveGroupMember { user_id, .. }
            | Command::AssignUserLicenses { user_id, .. } => touched.users.push(*user_id),
            Command::DeleteUser { user_id } => touched.deleted_users.push(*user_id),
            Command::CreateGroup { group_id, .. }
            | Command::UpdateGroup { group_id, .. }
            | Command::AssignGroupLicenses { group_id, .. } => touched.groups.push(*group_id),
            Command::DeleteGroup { group_id } => touched.deleted_groups.push(*group_id),
            Command::ReprocessUser { .. } | Command::ReprocessGroup { .. } => {}
            Command::SetDirectoryAttributes { object_id, .. } => {
                touched.directory_attributes.push(*object_id)
            }
        }
        touched
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    // ----- lookups -------------------------------------------------------------------------

    pub(crate) fn user_ref(&self, user_id: Uuid) -> Result<UserRef, CommandError> {
        self.user_index
            .get(&user_id)
            .copied()
            .ok_or(CommandError::UnknownUser { user_id })
    }

    pub(crate) fn group_ref(&self, group_id: Uuid) -> Result<GroupRef, CommandError> {
        self.group_index
            .get(&group_id)
            .copied()
            .ok_or(CommandError::UnknownGroup { group_id })
    }

    pub(crate) fn sku_ref(&self, sku_id: Uuid) -> Result<SkuRef, CommandError> {
        self.sku_index
            .get(&sku_id)
            .copied()
            .ok_or(CommandError::UnknownSku { sku_id })
    }

    pub(crate) fn plan_ref(&self, service_plan_id: Uuid) -> Result<PlanRef, CommandError> {
        self.plan_index
            .get(&service_plan_id)
            .copied()
            .ok_or(CommandError::UnknownServicePlan { service_plan_id })
    }

    pub(crate) fn user(&self, user: UserRef) -> &User {
        match &self.users[user.0 as usize] {
            Some(user) => user,
            None => unreachable_deleted(),
        }
    }

    pub(crate) fn user_mut(&mut self, user: UserRef) -> &mut User {
        match &mut self.users[user.0 as usize] {
            Some(user) => user,
            None => unreachable_deleted(),
        }
    }

    pub(crate) fn group(&self, group: GroupRef) -> &Group {
        match &self.groups[group.0 as usize] {
            Some(group) => group,
            None => unreachable_deleted(),
        }
    }

    pub(crate) fn group_mut(&mut self, group: GroupRef) -> &mut Group {
        match &mut self.groups[group.0 as usize] {
            Some(group) => group,
            None => unreachable_deleted(),
        }
    }

    pub(crate) fn sku(&self, sku: SkuRef) -> &Sku {
        &self.skus[sku.0 as usize]
    }

    pub(crate) fn plan(&self, plan: PlanRef) -> &ServicePlan {
        &self.plans[plan.0 as usize]
    }

    pub(crate) fn plan_name(&self, plan: PlanRef) -> PlanName {
        let plan = self.plan(plan);
        PlanName {
            service_plan_id: plan.id,
            service_plan_name: plan.name.clone(),
            display_name: plan.display_name.clone(),
        }
    }

    pub(crate) fn plan_names(&self, plans: &PlanSet) -> Vec<PlanName> {
        plans.iter().map(|plan| self.plan_name(plan)).collect()
    }

    /// The enabled plans of a product with the given disabled plans.
    pub(crate) fn enabled_plans(&self, sku: SkuRef, disabled_plans: PlanSetId) -> PlanSet {
        self.sku(sku).plans.difference(self.plan_sets.get(disabled_plans))
    }

    fn disabled_plan_set(&self, sku: SkuRef, disabled_plans: &[Uuid]) -> Result<PlanSet, CommandError> {
        let definition = self.sku(sku);
        let mut set = PlanSet::EMPTY;
        for service_plan_id in disabled_plans {
            let plan = self
                .plan_index
                .get(service_plan_id)
                .copied()
                .filter(|plan| definition.plans.contains(*plan))
                .ok_or_else(|| CommandError::DisabledPlanNotInSku {
                    sku_id: definition.id,
                    sku_part_number: definition.part_number.clone(),
                    service_plan_id: *service_plan_id,
                })?;
            set.insert(plan);
        }
        Ok(set)
    }

    // ----- catalog and rules ---------------------------------------------------------------

    fn register_plans(
        &mut self,
        definitions: &[ServicePlanDefinition],
    ) -> Result<Vec<PlanRef>, CommandError> {
        let new_plans: FxHashSet<Uuid> = definitions
            .iter()
            .map(|definition| definition.service_plan_id)
            .filter(|id| !self.plan_index.contains_key(id))
            .collect();
        if self.plans.len() + new_plans.len() > MAX_SERVICE_PLANS {
            return Err(CommandError::TooManyServicePlans {
                limit: MAX_SERVICE_PLANS,
            });
        }
        let mut refs = Vec::with_capacity(definitions.len());
        for definition in definitions {
            let plan = match self.plan_index.get(&definition.service_plan_id) {
                Some(plan) => *plan,
                None => {
                    let plan = PlanRef(self.plans.len() as u16);
                    self.plans.push(ServicePlan {
                        id: definition.service_plan_id,
                        name: definition.service_plan_name.clone(),
                        display_name: definition.display_name.clone(),
                        rules: ServicePlanRules::default(),
                        excludes: PlanSet::EMPTY,
                        requires_any_of: PlanSet::EMPTY,
                    });
                    self.plan_index.insert(definition.service_plan_id, plan);
                    plan
                }
            };
            refs.push(plan);
        }
        Ok(refs)
    }

    fn add_sku(&mut self, definition: SkuDefinition) -> Result<(), CommandError> {
        if self.sku_index.contains_key(&definition.sku_id) {
            return Err(CommandError::DuplicateSkuId {
                sku_id: definition.sku_id,
            });
        }
        if definition.sku_part_number.trim().is_empty() {
            return Err(CommandError::InvalidValue {
                field: "skuPartNumber",
                reason: "must not be empty".to_string(),
            });
        }
        if self.skus.len() >= u16::MAX as usize {
            return Err(CommandError::InvalidValue {
                field: "skuId",
                reason: "a tenant can subscribe to at most 65535 products".to_string(),
            });
        }
        let mut seen = FxHashSet::default();
        for plan in &definition.service_plans {
            if !seen.insert(plan.service_plan_id) {
                return Err(CommandError::DuplicateServicePlanInSku {
                    sku_part_number: definition.sku_part_number.clone(),
                    service_plan_id: plan.service_plan_id,
                });
            }
        }
        let plan_order = self.register_plans(&definition.service_plans)?;
        self.tick();
        let sku = SkuRef(self.skus.len() as u16);
        self.skus.push(Sku {
            id: definition.sku_id,
            part_number: definition.sku_part_number,
            display_name: definition.display_name,
            applies_to: definition.applies_to,
            plans: PlanSet::from_plans(plan_order.iter().copied()),
            plan_order,
            prepaid_units: definition.prepaid_units,
            consumed_units: 0,
            capability_status: definition.capability_status,
            waiting: BTreeSet::new(),
            blocked_without_unit: BTreeSet::new(),
        });
        self.sku_index.insert(definition.sku_id, sku);
        Ok(())
    }

    fn add_service_plan_to_sku(
        &mut self,
        sku_id: Uuid,
        service_plan: ServicePlanDefinition,
    ) -> Result<(), CommandError> {
        let sku = self.sku_ref(sku_id)?;
        if let Some(plan) = self.plan_index.get(&service_plan.service_plan_id) {
            if self.sku(sku).plans.contains(*plan) {
                return Err(CommandError::DuplicateServicePlanInSku {
                    sku_part_number: self.sku(sku).part_number.clone(),
                    service_plan_id: service_plan.service_plan_id,
                });
            }
        }
        let plan = self.register_plans(std::slice::from_ref(&service_plan))?[0];
        self.tick();
        let definition = &mut self.skus[sku.0 as usize];
        definition.plans.insert(plan);
        definition.plan_order.push(plan);
        self.enqueue_users_with_skus(&[sku]);
        // Groups whose members are not evaluated yet have no state records: queue them too.
        let groups: Vec<GroupRef> = self.groups_with_sku(sku);
        for group in groups {
            self.enqueue_group_users(group);
        }
        Ok(())
    }

    fn set_service_plan_rules(
        &mut self,
        service_plan_id: Uuid,
        rules: ServicePlanRules,
    ) -> Result<(), CommandError> {
        let plan = self.plan_ref(service_plan_id)?;
        let mut excludes = PlanSet::EMPTY;
        for partner in &rules.mutually_exclusive_with {
            let partner = self.plan_ref(*partner)?;
            if partner == plan {
                return Err(CommandError::InvalidPlanRule {
                    plan: self.plan_name(plan),
                    reason: "a plan cannot be mutually exclusive with itself".to_string(),
                });
            }
            excludes.insert(partner);
        }
        let mut requires = PlanSet::EMPTY;
        for required in &rules.requires_any_of {
            let required = self.plan_ref(*required)?;
            if required == plan {
                return Err(CommandError::InvalidPlanRule {
                    plan: self.plan_name(plan),
                    reason: "a plan cannot be its own prerequisite".to_string(),
                });
            }
            requires.insert(required);
        }
        if excludes.intersects(&requires) {
            return Err(CommandError::InvalidPlanRule {
                plan: self.plan_name(plan),
                reason: "a plan cannot require a plan it is mutually exclusive with".to_string(),
            });
        }
        self.tick();
        let old = self.plans[plan.0 as usize].clone();
        // Exclusions are symmetric: drop this plan from its old partners, add it to the new ones.
        for partner in old.excludes.iter() {
            self.plans[partner.0 as usize].excludes.remove(plan);
            self.plans[partner.0 as usize]
                .rules
                .mutually_exclusive_with
                .retain(|id| *id != service_plan_id);
        }
        for partner in excludes.iter() {
            let partner_plan = &mut self.plans[partner.0 as usize];
            partner_plan.excludes.insert(plan);
            if !partner_plan
                .rules
                .mutually_exclusive_with
                .contains(&service_plan_id)
            {
                partner_plan.rules.mutually_exclusive_with.push(service_plan_id);
            }
        }
        let mut normalized = rules;
        normalized.mutually_exclusive_with = excludes.iter().map(|p| self.plans[p.0 as usize].id).collect();
        normalized.requires_any_of = requires.iter().map(|p| self.plans[p.0 as usize].id).collect();
        normalized.unavailable_in.sort();
        normalized.unavailable_in.dedup();
        let entry = &mut self.plans[plan.0 as usize];
        entry.excludes = excludes;
        entry.requires_any_of = requires;
        entry.rules = normalized;
        self.rebuild_derived_rules();

        let mut affected_plans = old
            .excludes
            .union(&excludes)
            .union(&old.requires_any_of)
            .union(&requires);
        affected_plans.insert(plan);
        let affected_skus: Vec<SkuRef> = (0..self.skus.len())
            .map(|index| SkuRef(index as u16))
            .filter(|sku| self.sku(*sku).plans.intersects(&affected_plans))
            .collect();
        self.enqueue_users_with_skus(&affected_skus);
        Ok(())
    }

    pub(crate) fn rebuild_derived_rules(&mut self) {
        self.prohibited_by_location.clear();
        self.mailbox_plans = PlanSet::EMPTY;
        self.plans_with_exclusions = PlanSet::EMPTY;
        self.plans_with_prerequisites = PlanSet::EMPTY;
        for (index, plan) in self.plans.iter().enumerate() {
            let plan_ref = PlanRef(index as u16);
            for location in &plan.rules.unavailable_in {
                self.prohibited_by_location
                    .entry(*location)
                    .or_default()
                    .insert(plan_ref);
            }
            if plan.rules.needs_unique_proxy_address {
                self.mailbox_plans.insert(plan_ref);
            }
            if !plan.excludes.is_empty() {
                self.plans_with_exclusions.insert(plan_ref);
            }
            if !plan.requires_any_of.is_empty() {
                self.plans_with_prerequisites.insert(plan_ref);
            }
        }
    }

    // ----- users ---------------------------------------------------------------------------

    fn check_proxy_addresses(addresses: &[ProxyAddress]) -> Result<(), CommandError> {
        let mut seen = FxHashSet::default();
        for address in addresses {
            if !seen.insert(address.normalized()) {
                return Err(CommandError::InvalidProxyAddress {
                    value: address.to_string(),
                    reason: "listed twice for the same user".to_string(),
                });
            }
        }
        Ok(())
    }

    fn create_user(&mut self, new_user: NewUser) -> Result<(), CommandError> {
        if self.user_index.contains_key(&new_user.id) {
            return Err(CommandError::DuplicateUserId { user_id: new_user.id });
        }
        validate_user_principal_name(&new_user.user_principal_name)?;
        let upn_key: Box<str> = new_user.user_principal_name.to_lowercase().into();
        if self.upn_index.contains_key(&upn_key) {
            return Err(CommandError::DuplicateUserPrincipalName {
                user_principal_name: new_user.user_principal_name,
            });
        }
        Self::check_proxy_addresses(&new_user.proxy_addresses)?;
        self.tick();
        let user = UserRef(self.users.len() as u32);
        self.users.push(Some(User {
            id: new_user.id,
            user_principal_name: new_user.user_principal_name.into(),
            display_name: new_user.display_name.into(),
            usage_location: new_user.usage_location,
            proxy_addresses: new_user.proxy_addresses.into(),
            shared_addresses: 0,
            account_enabled: new_user.account_enabled,
            direct: Vec::new(),
            memberships: Vec::new(),
            states: Vec::new(),
        }));
        self.queued.push(false);
        self.user_index.insert(new_user.id, user);
        self.upn_index.insert(upn_key, user);
        self.index_proxy_addresses(user);
        // Users who already had one of these addresses now share it: their mailbox plans are
        // flagged when they are evaluated again.
        for other in self.users_sharing_addresses(user) {
            self.enqueue(other);
        }
        Ok(())
    }

    fn update_user(&mut self, user_id: Uuid, changes: UserChanges) -> Result<(), CommandError> {
        let user = self.user_ref(user_id)?;
        if let Some(upn) = &changes.user_principal_name {
            validate_user_principal_name(upn)?;
            if let Some(owner) = self.upn_index.get(upn.to_lowercase().as_str()) {
                if *owner != user {
                    return Err(CommandError::DuplicateUserPrincipalName {
                        user_principal_name: upn.clone(),
                    });
                }
            }
        }
        if let Some(addresses) = &changes.proxy_addresses {
            Self::check_proxy_addresses(addresses)?;
        }
        self.tick();
        if let Some(upn) = changes.user_principal_name {
            let old_key = self.user(user).user_principal_name.to_lowercase();
            self.upn_index.remove(old_key.as_str());
            self.upn_index.insert(upn.to_lowercase().into(), user);
            self.user_mut(user).user_principal_name = upn.into();
        }
        if let Some(display_name) = changes.display_name {
            self.user_mut(user).display_name = display_name.into();
        }
        if let Some(enabled) = changes.account_enabled {
            self.user_mut(user).account_enabled = enabled;
        }
        if let Some(location) = changes.usage_location {
            if self.user(user).usage_location != location {
                self.user_mut(user).usage_location = location;
                self.enqueue_healing(user, |_| RequeueReason::UsageLocationChanged);
            }
        }
        if let Some(addresses) = changes.proxy_addresses {
            let formerly_sharing = self.users_sharing_addresses(user);
            self.unindex_proxy_addresses(user);
            self.user_mut(user).proxy_addresses = addresses.into();
            self.index_proxy_addresses(user);
            self.enqueue_healing(user, |_| RequeueReason::ProxyAddressesChanged);
            for other in self.users_sharing_addresses(user) {
                self.enqueue(other);
            }
            if self.settings.self_healing {
                for other in formerly_sharing {
                    self.enqueue_healing(other, |_| RequeueReason::ProxyAddressFreed);
                }
            }
        }
        Ok(())
    }

    fn delete_user(&mut self, user_id: Uuid, changes: &mut Vec<StateChange>) -> Result<(), CommandError> {
        let user = self.user_ref(user_id)?;
        self.tick();
        self.directory_attributes.remove(&user_id);
        let formerly_sharing = self.users_sharing_addresses(user);
        self.dequeue_bookkeeping(user);
        self.forget_self_healing(user);
        self.commit_user_states(user, Vec::new(), changes);
        let memberships = std::mem::take(&mut self.user_mut(user).memberships);
        for membership in memberships {
            self.group_mut(membership.group).members.remove(&user);
        }
        self.unindex_proxy_addresses(user);
        let removed = self.users[user.0 as usize].take();
        if let Some(removed) = removed {
            self.upn_index
                .remove(removed.user_principal_name.to_lowercase().as_str());
            self.user_index.remove(&removed.id);
        }
        if self.settings.self_healing {
            for other in formerly_sharing {
                self.enqueue_healing(other, |_| RequeueReason::ProxyAddressFreed);
            }
        }
        Ok(())
    }

    pub(crate) fn index_proxy_addresses(&mut self, user: UserRef) {
        let hashes: Vec<u64> = self
            .user(user)
            .proxy_addresses
            .iter()
            .map(|address| proxy_hash(&address.normalized()))
            .collect();
        for hash in hashes {
            match self.proxy_owners.get_mut(&hash) {
                None => {
                    self.proxy_owners.insert(hash, ProxyOwners::One(user));
                }
                Some(ProxyOwners::One(other)) => {
                    let other = *other;
                    self.proxy_owners
                        .insert(hash, ProxyOwners::Many(vec![other, user]));
                    self.user_mut(other).shared_addresses += 1;
                    self.user_mut(user).shared_addresses += 1;
                }
                Some(ProxyOwners::Many(owners)) => {
                    owners.push(user);
                    self.user_mut(user).shared_addresses += 1;
                }
            }
        }
    }

    fn unindex_proxy_addresses(&mut self, user: UserRef) {
        let hashes: Vec<u64> = self
            .user(user)
            .proxy_addresses
            .iter()
            .map(|address| proxy_hash(&address.normalized()))
            .collect();
        for hash in hashes {
            let mut no_longer_shared = None;
            let mut removed_from_many = false;
            let remove_entry = match self.proxy_owners.get_mut(&hash) {
                Some(ProxyOwners::One(owner)) => *owner == user,
                Some(ProxyOwners::Many(owners)) => {
                    if let Some(position) = owners.iter().position(|owner| *owner == user) {
                        owners.remove(position);
                        removed_from_many = true;
                    }
                    if owners.len() == 1 {
                        no_longer_shared = Some(owners[0]);
                    }
                    false
                }
                None => false,
            };
            if removed_from_many {
                self.user_mut(user).shared_addresses -= 1;
            }
            if let Some(last) = no_longer_shared {
                self.proxy_owners.insert(hash, ProxyOwners::One(last));
                self.user_mut(last).shared_addresses -= 1;
            }
            if remove_entry {
                self.proxy_owners.remove(&hash);
            }
        }
    }

    /// The first of the user's proxy addresses that another user also has (compared exactly,
    /// not only by hash), with those other users.
    pub(crate) fn shared_proxy_address(&self, user: UserRef) -> Option<(String, Vec<UserRef>)> {
        if self.user(user).shared_addresses == 0 {
            return None;
        }
        for address in self.user(user).proxy_addresses.iter() {
            let normalized = address.normalized();
            if let Some(ProxyOwners::Many(owners)) = self.proxy_owners.get(&proxy_hash(&normalized)) {
                let others: Vec<UserRef> = owners
                    .iter()
                    .copied()
                    .filter(|other| *other != user)
                    .filter(|other| {
                        self.user(*other)
                            .proxy_addresses
                            .iter()
                            .any(|candidate| candidate.normalized() == normalized)
                    })
                    .collect();
                if !others.is_empty() {
                    return Some((normalized, others));
                }
            }
        }
        None
    }

    fn users_sharing_addresses(&self, user: UserRef) -> Vec<UserRef> {
        let mut others = Vec::new();
        for address in self.user(user).proxy_addresses.iter() {
            if let Some(ProxyOwners::Many(owners)) = self.proxy_owners.get(&proxy_hash(&address.normalized()))
            {
                others.extend(owners.iter().copied().filter(|other| *other != user));
            }
        }
        others.sort();
        others.dedup();
        others
    }

    // ----- groups --------------------------------------------------------------------------

    fn set_directory_attributes(
        &mut self,
        object_id: Uuid,
        attributes: Option<String>,
    ) -> Result<(), CommandError> {
        if !self.user_index.contains_key(&object_id) && !self.group_index.contains_key(&object_id) {
            return Err(CommandError::UnknownUser { user_id: object_id });
        }
        if let Some(text) = &attributes {
            if text.len() > crate::command::MAX_DIRECTORY_ATTRIBUTES_BYTES {
                return Err(CommandError::InvalidValue {
                    field: "directory attributes",
                    reason: format!(
                        "{} bytes, more than the {} a user or group can keep",
                        text.len(),
                        crate::command::MAX_DIRECTORY_ATTRIBUTES_BYTES
                    ),
                });
            }
        }
        self.tick();
        match attributes {
            Some(text) => self.directory_attributes.insert(object_id, text.into()),
            None => self.directory_attributes.remove(&object_id),
        };
        Ok(())
    }

    /// The attributes a provisioning client keeps with a user or group, if any.
    pub fn directory_attributes(&self, object_id: Uuid) -> Option<&str> {
        self.directory_attributes.get(&object_id).map(|text| &**text)
    }

    fn create_group(&mut self, group_id: Uuid, display_name: String) -> Result<(), CommandError> {
        if self.group_index.contains_key(&group_id) {
            return Err(CommandError::DuplicateGroupId { group_id });
        }
        if display_name.trim().is_empty() {
            return Err(CommandError::InvalidValue {
                field: "displayName",
                reason: "a group needs a display name".to_string(),
            });
        }
        self.tick();
        let group = GroupRef(self.groups.len() as u32);
        self.groups.push(Some(Group {
            id: group_id,
            display_name,
            licenses: Vec::new(),
            licensed_since: 0,
            members: FxHashSet::default(),
            error_users: BTreeSet::new(),
            state_records: 0,
            pending_users: 0,
            processing_started: false,
        }));
        self.group_index.insert(group_id, group);
        Ok(())
    }

    fn rename_group(&mut self, group_id: Uuid, display_name: String) -> Result<(), CommandError> {
        let group = self.group_ref(group_id)?;
        if display_name.trim().is_empty() {
            return Err(CommandError::InvalidValue {
                field: "displayName",
                reason: "a group needs a display name".to_string(),
            });
        }
        self.tick();
        self.group_mut(group).display_name = display_name;
        Ok(())
    }

    fn delete_group(&mut self, group_id: Uuid, changes: &mut Vec<StateChange>) -> Result<(), CommandError> {
        let group = self.group_ref(group_id)?;
        let record = self.group(group);
        if !record.licenses.is_empty() {
            return Err(CommandError::GroupHasLicenses {
                group_id,
                sku_count: record.licenses.len(),
            });
        }
        if record.state_records > 0 {
            let user_count = self
                .users
                .iter()
                .flatten()
                .filter(|user| {
                    user.states
                        .iter()
                        .any(|state| state.source == Source::Group(group))
                })
                .count();
            return Err(CommandError::GroupStillGrantsLicenses { group_id, user_count });
        }
        self.tick();
        self.directory_attributes.remove(&group_id);
        let members: Vec<UserRef> = self.group(group).members.iter().copied().collect();
        for member in members {
            self.user_mut(member).memberships.retain(|m| m.group != group);
        }
        // No state comes from the group any more, but an error of another assignment may still
        // name it (as the holder of a conflicting or a dependent plan when the error was
        // recorded). Such a cause stops naming the group at once — a state change written with
        // the deletion, so no stored cause points at a group that no longer exists — and its
        // user is evaluated again to record the cause as it is now.
        let naming: Vec<UserRef> = self
            .users_with_errors
            .iter()
            .copied()
            .filter(|user| {
                self.user(*user).states.iter().any(|state| {
                    state
                        .cause
                        .is_some_and(|cause| self.causes.causes[cause.0 as usize].names_group(group))
                })
            })
            .collect();
        for user in &naming {
            let mut states = self.user(*user).states.clone();
            for state in &mut states {
                let Some(cause) = state.cause else { continue };
                if let Some(forgotten) =
                    self.causes.causes[cause.0 as usize].without_group(group, state.source)
                {
                    state.cause = Some(self.causes.intern(forgotten));
                }
            }
            self.commit_user_states(*user, states, changes);
        }
        self.groups[group.0 as usize] = None;
        self.group_index.remove(&group_id);
        for user in naming {
            self.enqueue(user);
        }
        Ok(())
    }

    fn add_group_member(&mut self, group_id: Uuid, user_id: Uuid) -> Result<(), CommandError> {
        let group = self.group_ref(group_id)?;
        let user = self.user_ref(user_id)?;
        if self.group(group).members.contains(&user) {
            return Err(CommandError::AlreadyMember { group_id, user_id });
        }
        let since = self.tick();
        self.group_mut(group).members.insert(user);
        self.user_mut(user).memberships.push(Membership { group, since });
        if self.queued[user.0 as usize] {
            self.group_mut(group).pending_users += 1;
        } else if !self.group(group).licenses.is_empty() {
            self.enqueue(user);
        }
        Ok(())
    }

    fn remove_group_member(&mut self, group_id: Uuid, user_id: Uuid) -> Result<(), CommandError> {
        let group = self.group_ref(group_id)?;
        let user = self.user_ref(user_id)?;
        if !self.group(group).members.contains(&user) {
            return Err(CommandError::NotAMember { group_id, user_id });
        }
        self.tick();
        self.group_mut(group).members.remove(&user);
        self.user_mut(user).memberships.retain(|m| m.group != group);
        if self.queued[user.0 as usize] {
            self.release_pending(group);
        }
        let has_records = self
            .user(user)
            .states
            .iter()
            .any(|state| state.source == Source::Group(group));
        if has_records || !self.group(group).licenses.is_empty() {
            self.enqueue(user);
        }
        Ok(())
    }

    pub(crate) fn groups_with_sku(&self, sku: SkuRef) -> Vec<GroupRef> {
        self.groups
            .iter()
            .enumerate()
            .filter_map(|(index, group)| {
                let group = group.as_ref()?;
                group
                    .licenses
                    .iter()
                    .any(|license| license.sku == sku)
                    .then_some(GroupRef(index as u32))
            })
            .collect()
    }

    // ----- license assignment commands ------------------------------------------------------

    /// Validates the shape of an assignLicense request and resolves its products.
    fn resolve_license_request(
        &self,
        add_licenses: &[AssignedLicense],
        remove_licenses: &[Uuid],
    ) -> Result<ResolvedLicenseRequest, CommandError> {
        if add_licenses.is_empty() && remove_licenses.is_empty() {
            return Err(CommandError::NoLicenseChanges);
        }
        let mut seen = FxHashSet::default();
        let mut adds = Vec::with_capacity(add_licenses.len());
        for license in add_licenses {
            if !seen.insert(license.sku_id) {
                return Err(CommandError::DuplicateLicenseInRequest {
                    sku_id: license.sku_id,
                });
            }
            let sku = self.sku_ref(license.sku_id)?;
            let definition = self.sku(sku);
            if definition.applies_to != AppliesTo::User {
                return Err(CommandError::SkuNotAssignableToUsers {
                    sku_id: definition.id,
                    sku_part_number: definition.part_number.clone(),
                });
            }
            adds.push((sku, self.disabled_plan_set(sku, &license.disabled_plans)?));
        }
        let mut removes = Vec::with_capacity(remove_licenses.len());
        let mut seen_removes = FxHashSet::default();
        for sku_id in remove_licenses {
            if seen.contains(sku_id) {
                return Err(CommandError::LicenseAddedAndRemoved { sku_id: *sku_id });
            }
            if !seen_removes.insert(*sku_id) {
                return Err(CommandError::DuplicateLicenseInRequest { sku_id: *sku_id });
            }
            removes.push(self.sku_ref(*sku_id)?);
        }
        Ok((adds, removes))
    }

    fn assign_user_licenses(
        &mut self,
        user_id: Uuid,
        add_licenses: &[AssignedLicense],
        remove_licenses: &[Uuid],
        at: Timestamp,
        changes: &mut Vec<StateChange>,
    ) -> Result<(), CommandError> {
        let user = self.user_ref(user_id)?;
        let (adds, removes) = self.resolve_license_request(add_licenses, remove_licenses)?;
        let record = self.user(user);
        for sku in &removes {
            if !record.direct.iter().any(|direct| direct.sku == *sku) {
                let definition = self.sku(*sku);
                let inherited = record.states.iter().any(|state| state.sku == *sku);
                return Err(if inherited {
                    CommandError::LicenseInheritedFromGroup {
                        user_id,
                        sku_id: definition.id,
                        sku_part_number: definition.part_number.clone(),
                    }
                } else {
                    CommandError::LicenseNotAssigned {
                        sku_id: definition.id,
                        sku_part_number: definition.part_number.clone(),
                        target: format!("user {user_id}"),
                    }
                });
            }
        }
        let new_states = self.check_direct_assignment(user, &adds, &removes)?;

        // Everything is valid: record the intent and apply it at once.
        let since = self.tick();
        let mut disabled_ids = Vec::with_capacity(adds.len());
        for (sku, disabled) in &adds {
            disabled_ids.push((*sku, self.plan_sets.intern(*disabled)));
        }
        let user_record = self.user_mut(user);
        user_record.direct.retain(|direct| !removes.contains(&direct.sku));
        for (sku, disabled_plans) in &disabled_ids {
            match user_record.direct.iter_mut().find(|direct| direct.sku == *sku) {
                Some(existing) => existing.disabled_plans = *disabled_plans,
                None => user_record.direct.push(DirectLicense {
                    sku: *sku,
                    disabled_plans: *disabled_plans,
                    since,
                }),
            }
        }
        let mut records: Vec<StateRecord> = self
            .user(user)
            .states
            .iter()
            .filter(|state| {
                !(state.source == Source::Direct
                    && (removes.contains(&state.sku) || adds.iter().any(|(sku, _)| *sku == state.sku)))
            })
            .copied()
            .collect();
        for (sku, granted) in new_states {
            let disabled_plans = disabled_ids
                .iter()
                .find(|(candidate, _)| *candidate == sku)
                .map(|(_, id)| *id)
                .unwrap_or(PlanSetId::EMPTY);
            let granting = self.sku(sku).capability_status.grants_plans();
            let granted_plans = if granting {
                Some(self.plan_sets.intern(granted))
            } else {
                None
            };
            let previous = self
                .user(user)
                .states
                .iter()
                .find(|state| state.source == Source::Direct && state.sku == sku)
                .copied();
            let mut record = StateRecord {
                sku,
                source: Source::Direct,
                status: if granting {
                    AssignmentStatus::Active
                } else {
                    AssignmentStatus::Disabled
                },
                cause: None,
                disabled_plans,
                granted_plans,
                since,
                last_updated: at,
            };
            if let Some(previous) = previous {
                if previous.same_outcome(&record) {
                    record = previous;
                } else if previous.status == record.status && previous.cause == record.cause {
                    record.since = previous.since;
                }
            }
            records.push(record);
        }
        crate::evaluate::sort_records(&mut records);
        self.commit_user_states(user, records, changes);
        // Groups of this user may now apply (a conflicting license is gone) or the freed units
        // may go to others; the background evaluation sorts that out.
        match remove_licenses
            .first()
            .and_then(|sku_id| self.sku_index.get(sku_id).copied())
        {
            Some(removed) => self.enqueue_healing(user, |engine| RequeueReason::DirectLicenseRemoved {
                sku_id: engine.sku(removed).id,
                sku_display_name: engine.sku(removed).display_name.clone(),
            }),
            None => self.enqueue(user),
        }
        Ok(())
    }

    /// The synchronous checks of a direct assignment. Returns the plans each added product grants.
    fn check_direct_assignment(
        &self,
        user: UserRef,
        adds: &[(SkuRef, PlanSet)],
        removes: &[SkuRef],
    ) -> Result<Vec<(SkuRef, PlanSet)>, CommandError> {
        let record = self.user(user);
        let user_id = record.id;
        let changed = |state: &StateRecord| {
            state.source == Source::Direct
                && (removes.contains(&state.sku) || adds.iter().any(|(sku, _)| *sku == state.sku))
        };
        // Plans the user keeps from everything this request does not touch.
        let mut kept = PlanSet::EMPTY;
        for state in record.states.iter().filter(|state| !changed(state)) {
            if let Some(granted) = state.granted_plans {
                kept.union_with(self.plan_sets.get(granted));
            }
        }
        let before: PlanSet = record
            .states
            .iter()
            .filter_map(|state| state.granted_plans)
            .fold(PlanSet::EMPTY, |acc, id| acc.union(self.plan_sets.get(id)));
        if !adds.is_empty() && record.usage_location.is_none() {
            return Err(CommandError::UsageLocationRequired {
                user_id,
                sku_part_number: self.sku(adds[0].0).part_number.clone(),
            });
        }
        let mut claimed: Vec<SkuRef> = Vec::new();
        let mut granted_by_adds = Vec::with_capacity(adds.len());
        let mut new_plans = PlanSet::EMPTY;
        let mut added_plans = PlanSet::EMPTY;
        for (sku, disabled) in adds {
            let definition = self.sku(*sku);
            let enabled = definition.plans.difference(disabled);
            granted_by_adds.push((*sku, enabled));
            if !definition.capability_status.grants_plans() {
                continue;
            }
            let previous = record
                .states
                .iter()
                .find(|state| state.source == Source::Direct && state.sku == *sku)
                .and_then(|state| state.granted_plans)
                .map(|id| *self.plan_sets.get(id))
                .unwrap_or(PlanSet::EMPTY);
            let added = enabled.difference(&previous);
            added_plans.union_with(&added);
            let sku_part_number = definition.part_number.clone();
            if let Some(location) = record.usage_location {
                if let Some(prohibited) = self.prohibited_by_location.get(&location) {
                    if let Some(plan) = added.intersection(prohibited).iter().next() {
                        return Err(CommandError::ProhibitedInUsageLocation {
                            user_id,
                            sku_id: definition.id,
                            sku_part_number,
                            plan: self.plan_name(plan),
                            usage_location: location,
                        });
                    }
                }
            }
            if added.intersects(&self.mailbox_plans) {
                if let Some((address, others)) = self.shared_proxy_address(user) {
                    return Err(CommandError::ProxyAddressInUse {
                        user_id,
                        sku_id: definition.id,
                        sku_part_number,
                        proxy_address: address,
                        other_user_id: self.user(others[0]).id,
                    });
                }
            }
            let others = kept.union(&new_plans).union(&enabled);
            for plan in added.intersection(&self.plans_with_exclusions).iter() {
                if let Some(conflicting) = self.plan(plan).excludes.intersection(&others).iter().next() {
                    return Err(CommandError::MutuallyExclusive {
                        user_id,
                        sku_id: definition.id,
                        sku_part_number,
                        plan: self.plan_name(plan),
                        conflicting_plan: self.plan_name(conflicting),
                    });
                }
            }
            let holds = record
                .states
                .iter()
                .any(|state| state.sku == *sku && state.holds_unit());
            if !holds && !claimed.contains(sku) && definition.consumed_units >= definition.prepaid_units {
                return Err(CommandError::NotEnoughLicenses {
                    user_id,
                    sku_id: definition.id,
                    sku_part_number,
                    prepaid_units: definition.prepaid_units,
                    consumed_units: definition.consumed_units,
                });
            }
            claimed.push(*sku);
            new_plans.union_with(&enabled);
        }
        // Prerequisites on the resulting plan set: a newly enabled plan needs one, and a plan
        // that had one before must keep one (removal refused with DependencyViolation).
        let after = kept.union(&new_plans);
        for plan in after.intersection(&self.plans_with_prerequisites).iter() {
            let requires = &self.plan(plan).requires_any_of;
            let newly_enabled = added_plans.contains(plan);
            let satisfied_before = requires.intersects(&before);
            if !requires.intersects(&after) && (newly_enabled || satisfied_before) {
                let sku = adds
                    .iter()
                    .find(|(sku, _)| self.sku(*sku).plans.contains(plan))
                    .map(|(sku, _)| *sku)
                    .or_else(|| removes.first().copied())
                    .unwrap_or(SkuRef(0));
                let definition = self.sku(sku);
                return Err(CommandError::Dependency {
                    user_id,
                    sku_id: definition.id,
                    sku_part_number: definition.part_number.clone(),
                    plan: self.plan_name(plan),
                    required_plans: self.plan_names(requires),
                });
            }
        }
        Ok(granted_by_adds)
    }

    fn assign_group_licenses(
        &mut self,
        group_id: Uuid,
        add_licenses: &[AssignedLicense],
        remove_licenses: &[Uuid],
    ) -> Result<(), CommandError> {
        let group = self.group_ref(group_id)?;
        let (adds, removes) = self.resolve_license_request(add_licenses, remove_licenses)?;
        let record = self.group(group);
        for sku in &removes {
            if !record.licenses.iter().any(|license| license.sku == *sku) {
                let definition = self.sku(*sku);
                return Err(CommandError::LicenseNotAssigned {
                    sku_id: definition.id,
                    sku_part_number: definition.part_number.clone(),
                    target: format!("group {group_id}"),
                });
            }
        }
        // The resulting assignments of the group, in the order products were added.
        let mut resulting: Vec<(SkuRef, PlanSet)> = record
            .licenses
            .iter()
            .filter(|license| !removes.contains(&license.sku))
            .map(|license| (license.sku, *self.plan_sets.get(license.disabled_plans)))
            .collect();
        for (sku, disabled) in &adds {
            match resulting.iter_mut().find(|(candidate, _)| candidate == sku) {
                Some(existing) => existing.1 = *disabled,
                None => resulting.push((*sku, *disabled)),
            }
        }
        let enabled = resulting.iter().fold(PlanSet::EMPTY, |acc, (sku, disabled)| {
            acc.union(&self.sku(*sku).plans.difference(disabled))
        });
        for plan in enabled.intersection(&self.plans_with_prerequisites).iter() {
            let requires = &self.plan(plan).requires_any_of;
            if !requires.intersects(&enabled) {
                return Err(CommandError::GroupPrerequisiteMissing {
                    group_id,
                    service: self.plan_name(plan),
                    requires_any_of: self.plan_names(requires),
                });
            }
        }
        let now = self.tick();
        let licenses: Vec<GroupLicense> = resulting
            .into_iter()
            .map(|(sku, disabled)| GroupLicense {
                sku,
                disabled_plans: self.plan_sets.intern(disabled),
            })
            .collect();
        let group_record = self.group_mut(group);
        if group_record.licenses.is_empty() && !licenses.is_empty() {
            group_record.licensed_since = now;
        }
        group_record.licenses = licenses;
        let group_id = self.group(group).id;
        for user in self.group_users_in_order(group) {
            self.enqueue_healing(user, |engine| RequeueReason::GroupAssignmentChanged {
                group_id,
                group_display_name: engine.group(group).display_name.clone(),
            });
        }
        Ok(())
    }

    // ----- queue ---------------------------------------------------------------------------

    /// Queues a user for evaluation (once; a queued user stays where it is in the queue).
    pub(crate) fn enqueue(&mut self, user: UserRef) {
        if self.queued[user.0 as usize] {
            return;
        }
        self.queued[user.0 as usize] = true;
        self.queued_count += 1;
        self.queue.push_back(user);
        self.newly_queued.push(user);
        let memberships = std::mem::take(&mut self.user_mut(user).memberships);
        for membership in &memberships {
            self.group_mut(membership.group).pending_users += 1;
        }
        self.user_mut(user).memberships = memberships;
    }

    /// Queues the members of a group, oldest membership first, then former members the group
    /// still grants licenses to.
    pub(crate) fn enqueue_group_users(&mut self, group: GroupRef) {
        for user in self.group_users_in_order(group) {
            self.enqueue(user);
        }
    }

    /// A group's members, oldest membership first, then former members it still grants
    /// licenses to (the order [`Engine::enqueue_group_users`] queues them in).
    fn group_users_in_order(&self, group: GroupRef) -> Vec<UserRef> {
        let record = self.group(group);
        let mut members: Vec<(u64, UserRef)> = record
            .members
            .iter()
            .map(|member| {
                let since = self
                    .user(*member)
                    .memberships
                    .iter()
                    .find(|m| m.group == group)
                    .map(|m| m.since)
                    .unwrap_or(0);
                (since, *member)
            })
            .collect();
        members.sort_unstable();
        let lingering: Vec<UserRef> = record
            .error_users
            .iter()
            .copied()
            .filter(|user| !record.members.contains(user))
            .collect();
        members
            .into_iter()
            .map(|(_, member)| member)
            .chain(lingering)
            .collect()
    }

    fn enqueue_users_where(&mut self, predicate: impl Fn(&Engine, &User) -> bool) {
        let selected: Vec<UserRef> = self
            .users
            .iter()
            .enumerate()
            .filter_map(|(index, user)| {
                let user = user.as_ref()?;
                let relevant =
                    !user.states.is_empty() || !user.direct.is_empty() || !user.memberships.is_empty();
                (relevant && predicate(self, user)).then_some(UserRef(index as u32))
            })
            .collect();
        for user in selected {
            self.enqueue(user);
        }
    }

    fn enqueue_users_with_skus(&mut self, skus: &[SkuRef]) {
        if skus.is_empty() {
            return;
        }
        self.enqueue_users_where(|_, user| user.states.iter().any(|state| skus.contains(&state.sku)));
        for sku in skus {
            for group in self.groups_with_sku(*sku) {
                self.enqueue_group_users(group);
            }
        }
    }

    fn release_pending(&mut self, group: GroupRef) {
        let record = self.group_mut(group);
        record.pending_users = record.pending_users.saturating_sub(1);
        record.processing_started = record.pending_users > 0;
    }

    /// Takes a user out of the queue's bookkeeping (it is evaluated now, or deleted).
    fn dequeue_bookkeeping(&mut self, user: UserRef) {
        if !self.queued[user.0 as usize] {
            return;
        }
        self.queued[user.0 as usize] = false;
        self.queued_count -= 1;
        for index in 0..self.user(user).memberships.len() {
            let group = self.user(user).memberships[index].group;
            self.release_pending(group);
        }
    }

    /// Hands freed or bought units to users waiting for them, first come first served: queues
    /// as many waiting users as there are free units (self-healing; off means wait for reprocess).
    fn hand_off_free_units(&mut self) {
        // Products without a free unit: users blocked only by a sibling now fail on this
        // product themselves; evaluate them again so their error says so.
        let mut to_queue: Vec<UserRef> = Vec::new();
        for sku in &self.skus {
            if sku.consumed_units >= sku.prepaid_units && !sku.blocked_without_unit.is_empty() {
                to_queue.extend(sku.blocked_without_unit.iter().copied());
            }
        }
        for user in to_queue.drain(..) {
            self.enqueue(user);
        }
        if !self.settings.self_healing {
            return;
        }
        let mut seat_of: Vec<Uuid> = Vec::new();
        for sku in &self.skus {
            if sku.waiting.is_empty() || sku.consumed_units >= sku.prepaid_units {
                continue;
            }
            let free = (sku.prepaid_units - sku.consumed_units) as usize;
            to_queue.extend(sku.waiting.iter().take(free).map(|(_, user)| *user));
            seat_of.extend(sku.waiting.iter().take(free).map(|_| sku.id));
        }
        for (user, sku_id) in to_queue.into_iter().zip(seat_of) {
            self.enqueue_healing(user, |engine| RequeueReason::SeatsAvailable {
                sku_id,
                sku_display_name: engine
                    .sku_index
                    .get(&sku_id)
                    .map(|sku| engine.sku(*sku).display_name.clone())
                    .unwrap_or_default(),
            });
        }
    }

    /// Evaluates up to `max_users` queued users, in queue order, and returns the state changes.
    pub fn process_batch(&mut self, max_users: usize, at: Timestamp) -> ProcessReport {
        self.newly_queued.clear();
        let mut report = ProcessReport::default();
        let expected_users = max_users.min(self.queued_count);
        report.evaluated.reserve(expected_users);
        while report.evaluated_users < max_users {
            let Some(user) = self.queue.pop_front() else { break };
            if !self.queued[user.0 as usize] || self.users[user.0 as usize].is_none() {
                continue;
            }
            self.dequeue_bookkeeping(user);
            self.evaluate_user(user, at, &mut report.changes);
            self.record_self_healing(user, at);
            report.evaluated_users += 1;
            report.evaluated.push(self.user(user).id);
            if self.queue.is_empty() {
                self.hand_off_free_units();
            }
        }
        self.hand_off_free_units();
        report.remaining_users = self.queued_users();
        let mut requeued: Vec<UserRef> = std::mem::take(&mut self.newly_queued)
            .into_iter()
            .filter(|user| self.queued[user.0 as usize])
            .collect();
        requeued.dedup();
        report.requeued = requeued.into_iter().map(|user| self.user(user).id).collect();
        report
    }

    /// Processes until the queue is empty.
    pub fn process_all(&mut self, at: Timestamp) -> ProcessReport {
        let mut total = self.process_batch(usize::MAX, at);
        while total.remaining_users > 0 {
            let mut report = self.process_batch(usize::MAX, at);
            total.evaluated_users += report.evaluated_users;
            total.changes.append(&mut report.changes);
            total.evaluated.append(&mut report.evaluated);
            total.requeued = report.requeued;
            total.remaining_users = report.remaining_users;
        }
        total
    }

    /// Number of users waiting for evaluation.
    pub fn queued_users(&self) -> usize {
        self.queued_count
    }

    /// Replaces a user's state records, keeping every derived count and index in step:
    /// consumed units, users waiting for units, groups' error lists, the tenant's error list.
    pub(crate) fn commit_user_states(
        &mut self,
        user: UserRef,
        new_states: Vec<StateRecord>,
        changes: &mut Vec<StateChange>,
    ) {
        self.commit_user_states_inner(user, new_states, Some(changes));
    }

    /// As [`Engine::commit_user_states`]; without a change list when the caller reports the delta
    /// itself (evaluation reports the net change of several passes).
    pub(crate) fn commit_user_states_inner(
        &mut self,
        user: UserRef,
        new_states: Vec<StateRecord>,
        changes: Option<&mut Vec<StateChange>>,
    ) {
        let old_states = std::mem::take(&mut self.user_mut(user).states);
        let user_id = self.user(user).id;
        // Consumed units: one per product with at least one assignment in effect.
        let mut held_before: Vec<SkuRef> = old_states
            .iter()
            .filter(|s| s.holds_unit())
            .map(|s| s.sku)
            .collect();
        held_before.sort_unstable();
        held_before.dedup();
        let mut held_after: Vec<SkuRef> = new_states
            .iter()
            .filter(|s| s.holds_unit())
            .map(|s| s.sku)
            .collect();
        held_after.sort_unstable();
        held_after.dedup();
        for sku in &held_before {
            if !held_after.contains(sku) {
                self.skus[sku.0 as usize].consumed_units -= 1;
            }
        }
        for sku in &held_after {
            if !held_before.contains(sku) {
                self.skus[sku.0 as usize].consumed_units += 1;
            }
        }
        // Waiting users and per-group bookkeeping.
        for state in &old_states {
            if let Some(cause) = state.cause {
                match self.causes.causes[cause.0 as usize] {
                    Cause::Count { sku } => {
                        self.skus[sku.0 as usize].waiting.remove(&(state.since, user));
                    }
                    Cause::BlockedBySibling { .. } => {
                        self.skus[state.sku.0 as usize].blocked_without_unit.remove(&user);
                    }
                    _ => {}
                }
            }
            if let Source::Group(group) = state.source {
                self.group_mut(group).state_records -= 1;
                self.group_mut(group).error_users.remove(&user);
            }
        }
        for state in &new_states {
            if let Some(cause) = state.cause {
                match self.causes.causes[cause.0 as usize] {
                    Cause::Count { sku } => {
                        self.skus[sku.0 as usize].waiting.insert((state.since, user));
                    }
                    Cause::BlockedBySibling { .. } if !held_after.contains(&state.sku) => {
                        self.skus[state.sku.0 as usize].blocked_without_unit.insert(user);
                    }
                    _ => {}
                }
            }
            if let Source::Group(group) = state.source {
                let record = self.group_mut(group);
                record.state_records += 1;
                if state.status.is_error() {
                    record.error_users.insert(user);
                }
            }
        }
        if new_states.iter().any(|state| state.status.is_error()) {
            self.users_with_errors.insert(user);
        } else {
            self.users_with_errors.remove(&user);
        }
        let Some(changes) = changes else {
            self.user_mut(user).states = new_states;
            return;
        };
        // The delta, keyed by (source, product).
        for old in &old_states {
            let after = new_states
                .iter()
                .find(|new| new.source == old.source && new.sku == old.sku)
                .copied();
            if after.as_ref() != Some(old) {
                changes.push(StateChange {
                    user,
                    user_id,
                    sku: old.sku,
                    source: old.source,
                    before: Some(*old),
                    after,
                });
            }
        }
        for new in &new_states {
            if !old_states
                .iter()
                .any(|old| old.source == new.source && old.sku == new.sku)
            {
                changes.push(StateChange {
                    user,
                    user_id,
                    sku: new.sku,
                    source: new.source,
                    before: None,
                    after: Some(*new),
                });
            }
        }
        self.user_mut(user).states = new_states;
    }

    pub(crate) fn advance_clock(&mut self) -> u64 {
        self.tick()
    }
}

#[cold]
// The workspace denies `panic!` outside tests; this is its one exception, an internal invariant
// of the engine's arenas (like an index out of bounds), never reachable from input: every
// command is validated against the live indexes before a handle is taken.
#[allow(clippy::panic)]
fn unreachable_deleted() -> ! {
    // Handles are only ever taken from the live indexes, and a deleted slot is never looked up
    // through one: reaching this is a bug in the engine itself.
    panic!("licensd-engine: a handle pointed at a deleted user or group")
}
